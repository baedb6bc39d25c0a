package account_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// judged is the running gateway's cache as account sees it: a session
// Manager with its config, judging sessions (gateway.Live does this by way
// of the running app's Manager).
type judged struct{ *session.Manager }

func (j judged) SessionEnds(s *store.Session) (time.Time, bool) { return j.Ends(s) }

var _ account.SessionJudge = judged{}

// A *session.Manager alone is not a judge: the offline CLI makes one with
// no config, whose lifetime and idle timeout are not the operator's.

func TestManagerIsNoJudge(t *testing.T) {
	if _, ok := any((*session.Manager)(nil)).(account.SessionJudge); ok {
		t.Fatal("*session.Manager is an account.SessionJudge: the offline CLI's Manager (default config) would judge sessions")
	}
}

// newJudgedEnv is newEnv with the Manager judging sessions, as online.
func newJudgedEnv(t *testing.T) *env {
	e := newEnv(t)
	e.acc.Cache = judged{e.sessions}
	return e
}

func (e *env) storedSessions(userID string) int {
	e.t.Helper()
	var n int
	err := e.db.View(context.Background(), func(tx store.Tx) error {
		ss, err := tx.UserSessions(userID)
		n = len(ss)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// A session idle past idle_timeout (1h by default) is refused at its next
// request, but the store keeps it until the sweep: the admin API neither
// lists nor counts it, and ending it reports and audits nothing, though it
// is deleted.
func TestUserDetailOmitsIdleSessions(t *testing.T) {
	e := newJudgedEnv(t)
	ctx := context.Background()
	u, _ := e.signIn("okta", "sub-1", jit)
	e.now = e.now.Add(30 * time.Minute)
	_, tok2 := e.signIn("okta", "sub-1", jit) // in use, below
	d, err := e.acc.User(ctx, u.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.SessionCount != 2 || len(d.Sessions) != 2 {
		t.Fatalf("session_count %d, %d listed; want both sessions, neither idle yet", d.SessionCount, len(d.Sessions))
	}
	// 89 minutes after the first was last used, 59 after the second,
	// which is used now (one process: idleness is exact, no lag allowed).
	e.now = e.now.Add(59 * time.Minute)
	if _, err := e.sessions.Resolve(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	d, err = e.acc.User(ctx, u.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.SessionCount != 1 || len(d.Sessions) != 1 {
		t.Fatalf("session_count %d, %d listed; want 1: the other has been idle 89 minutes (idle_timeout 1h)", d.SessionCount, len(d.Sessions))
	}
	if got, want := d.Sessions[0].Created, t0.Add(30*time.Minute); !got.Equal(want) {
		t.Errorf("listed the session created %v, want the one in use (created %v)", got, want)
	}
	if e.storedSessions(u.ID) != 2 {
		t.Fatal("want the idle session still stored (not swept yet) for this test to mean anything")
	}

	// Now let the second one idle too: ending the user's sessions ends none.
	e.now = e.now.Add(61*time.Minute + 2*session.DefaultTouchInterval)
	d, err = e.acc.User(ctx, u.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.SessionCount != 0 || len(d.Sessions) != 0 {
		t.Errorf("session_count %d, %d listed for a user whose sessions are all idle", d.SessionCount, len(d.Sessions))
	}
	res, err := e.acc.EndSessions(ctx, u.ID, account.ByAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions != 0 || res.Changed {
		t.Errorf("EndSessions reported %d sessions ended (changed %v) of a user whose sessions had all ended", res.Sessions, res.Changed)
	}
	if evs := e.events(store.EventSessionRevoked); len(evs) != 0 {
		t.Errorf("session.revoked events %+v for sessions that had ended", evs)
	}
	if n := e.storedSessions(u.ID); n != 0 {
		t.Errorf("%d sessions still stored: the ended ones are deleted all the same", n)
	}
}

// Ending sessions counts and audits the live ones only, and a deactivation
// says the same.
func TestEndSessionsCountsLiveOnes(t *testing.T) {
	e := newJudgedEnv(t)
	ctx := context.Background()
	u, _ := e.signIn("okta", "sub-1", jit)
	e.now = e.now.Add(2 * time.Hour) // the first is idle
	e.signIn("okta", "sub-1", jit)
	res, err := e.acc.Deactivate(ctx, u.ID, account.ByAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions != 1 {
		t.Errorf("deactivation ended %d sessions, want 1 (the other was idle)", res.Sessions)
	}
	evs := e.events(store.EventSessionRevoked)
	if len(evs) != 1 || evs[0].Detail["sessions"] != "1" {
		t.Errorf("session.revoked events %+v, want one of 1 session", evs)
	}
	if evs := e.events(store.EventUserDeactivated); len(evs) != 1 || evs[0].Detail["sessions"] != "1" {
		t.Errorf("user.deactivated events %+v, want one with sessions=1", evs)
	}
}

// A reload that shortens the lifetime ends sessions signed in under the
// longer one sooner: the detail shows the new end, and leaves out those
// past it.
func TestUserDetailShowsShortenedLifetime(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u, _ := e.signIn("okta", "sub-1", jit) // lifetime 8h (the default)
	e.now = e.now.Add(30 * time.Minute)
	e.signIn("okta", "sub-1", jit)
	// The reload: a new Manager over the same store, lifetime 1h, idle
	// timeouts off so that only the lifetime counts.
	clock := func() time.Time { return e.now }
	m := session.New(e.db, session.Config{Lifetime: time.Hour, IdleTimeout: -1}, nil, clock)
	e.acc.Cache = judged{m}
	e.now = t0.Add(45 * time.Minute)
	d, err := e.acc.User(ctx, u.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Sessions) != 2 {
		t.Fatalf("%d sessions listed, want 2", len(d.Sessions))
	}
	for _, s := range d.Sessions {
		if want := s.Created.Add(time.Hour); !s.Expires.Equal(want) {
			t.Errorf("session created %v expires %v, want %v (lifetime shortened to 1h)", s.Created, s.Expires, want)
		}
	}
	e.now = t0.Add(75 * time.Minute) // past the first one's new end
	d, err = e.acc.User(ctx, u.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.SessionCount != 1 || len(d.Sessions) != 1 || !d.Sessions[0].Created.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("session_count %d, sessions %+v; want only the one signed in at 30m", d.SessionCount, d.Sessions)
	}
}

// Offline no config is read: only the stored end is held against now. An
// idle session is still shown (its idle timeout is not known), one past
// its stored end is not.
func TestUserDetailOfflineUsesStoredEnd(t *testing.T) {
	e := newEnv(t) // Cache: a bare Manager, as the offline CLI's
	ctx := context.Background()
	u, _ := e.signIn("okta", "sub-1", jit)
	e.now = e.now.Add(2 * time.Hour)
	d, err := e.acc.User(ctx, u.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.SessionCount != 1 || !d.Sessions[0].Expires.Equal(t0.Add(session.DefaultLifetime)) {
		t.Errorf("offline: session_count %d, sessions %+v; want the idle session with its stored end", d.SessionCount, d.Sessions)
	}
	e.now = t0.Add(session.DefaultLifetime)
	for _, c := range []account.Cache{e.sessions, nil} {
		e.acc.Cache = c
		d, err = e.acc.User(ctx, u.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if d.SessionCount != 0 {
			t.Errorf("offline (cache %T): session_count %d past the stored end", c, d.SessionCount)
		}
	}
	res, err := e.acc.EndSessions(ctx, u.ID, account.ByAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions != 0 {
		t.Errorf("offline: ended %d sessions past their stored end, want 0", res.Sessions)
	}
}

// Paging runs over the live sessions only: next_sessions and the count
// agree with what is listed.
func TestUserDetailPagesLiveSessions(t *testing.T) {
	e := newJudgedEnv(t)
	ctx := context.Background()
	u, _ := e.signIn("okta", "sub-1", jit)
	e.now = e.now.Add(2 * time.Hour)
	for range 3 {
		e.signIn("okta", "sub-1", jit)
	}
	d, err := e.acc.User(ctx, u.ID, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if d.SessionCount != 3 || len(d.Sessions) != 2 || d.NextSessions != "2" {
		t.Fatalf("page 1: count %d, %d listed, next %q", d.SessionCount, len(d.Sessions), d.NextSessions)
	}
	d, err = e.acc.User(ctx, u.ID, strconv.Itoa(2), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Sessions) != 1 || d.NextSessions != "" || d.Sessions[0].Created.Before(t0.Add(time.Hour)) {
		t.Errorf("page 2: %+v, next %q; want the last live session and no more", d.Sessions, d.NextSessions)
	}
}
