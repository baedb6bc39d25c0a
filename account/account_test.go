package account_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

var _ account.Cache = (*session.Manager)(nil)

var t0 = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

// env is the account service over a real bolt file and a real session
// manager (the cache), with IdP "entra" managed by SCIM and "okta" not.
type env struct {
	t        *testing.T
	db       *bolt.DB
	sessions *session.Manager
	acc      *account.Service
	now      time.Time
	n        int // sessions created, for distinct session IDs
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := backendtest.OpenBolt(t)
	e := &env{t: t, db: db, now: t0}
	clock := func() time.Time { return e.now }
	e.sessions = session.New(db, session.Config{}, nil, clock)
	e.acc = &account.Service{Store: db, Cache: e.sessions, Now: clock,
		SCIMManaged: func(idp string) bool { return idp == "entra" }}
	return e
}

// signIn signs a JIT user in through idp and returns them and a session
// cookie token, resolved once so that the cache holds it.
func (e *env) signIn(idp, subject string, rules provision.Rules) (*store.User, string) {
	e.t.Helper()
	u, err := e.login(idp, subject, rules)
	if err != nil {
		e.t.Fatal(err)
	}
	e.n++
	tok, _, err := e.sessions.Create(context.Background(), u, idp, logoutInfo(subject, fmt.Sprint("idx-", e.n)))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.sessions.Resolve(context.Background(), tok); err != nil {
		e.t.Fatal(err)
	}
	return u, tok
}

func (e *env) login(idp, subject string, rules provision.Rules) (*store.User, error) {
	p := &provision.Provisioner{Store: e.db, Now: func() time.Time { return e.now }}
	prof := mapping.Profile{UniqueUserID: subject, FirstName: "Ada", LastName: "Lovelace", Email: idp + "." + subject + "@example.com"}
	return p.Login(context.Background(), idp, rules, prof, true)
}

func (e *env) user(id string) *store.User {
	e.t.Helper()
	var u *store.User
	err := e.db.View(context.Background(), func(tx store.Tx) error {
		var err error
		u, err = tx.User(id)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) events(typ string) []store.Event {
	e.t.Helper()
	var out []store.Event
	err := e.db.View(context.Background(), func(tx store.Tx) error {
		var err error
		out, err = tx.AuditEvents(store.AuditQuery{Type: typ, Limit: 1000})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) signedOut(tok string) bool {
	_, err := e.sessions.Resolve(context.Background(), tok)
	return errors.Is(err, session.ErrNoSession)
}

// put writes a user as an administrator or SCIM would have.
var jit = provision.Rules{JIT: true}

func TestDeactivateEndsSessionsAtOnce(t *testing.T) {
	e := newEnv(t)
	u, tok := e.signIn("okta", "sub-1", jit)
	_, tok2 := e.signIn("okta", "sub-1", jit)
	res, err := e.acc.Deactivate(context.Background(), u.ID, account.ByAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Sessions != 2 || res.User.Active || e.user(u.ID).Active {
		t.Errorf("deactivate = %+v", res)
	}
	// The cache, not only the store, lets go: the very next request is refused.
	if !e.signedOut(tok) || !e.signedOut(tok2) {
		t.Error("a session survived deactivation")
	}
	deact, revoked := e.events(store.EventUserDeactivated), e.events(store.EventSessionRevoked)
	if len(deact) != 1 || deact[0].Reason != account.ByAdmin || deact[0].UserID != u.ID || deact[0].IdP != "okta" {
		t.Errorf("deactivation events = %+v", deact)
	}
	if len(revoked) != 1 || revoked[0].Reason != account.ReasonDeactivated || revoked[0].Detail["by"] != account.ByAdmin || revoked[0].Detail["sessions"] != "2" {
		t.Errorf("revocation events = %+v", revoked)
	}
	// Again: nothing to do, nothing written.
	if res, err := e.acc.Deactivate(context.Background(), u.ID, account.BySCIM); err != nil || res.Changed {
		t.Errorf("second deactivate = %+v, %v", res, err)
	}
	if n := len(e.events(store.EventUserDeactivated)); n != 1 {
		t.Errorf("%d deactivation events after a no-op", n)
	}
	if _, err := e.login("okta", "sub-1", jit); err == nil {
		t.Error("a deactivated user signed in")
	}
}

// TestActivateApprovesPending: the one rule for the admin's enable and
// SCIM's active=true.
func TestActivateApprovesPending(t *testing.T) {
	for _, by := range []string{account.ByAdmin, account.BySCIM} {
		t.Run(by, func(t *testing.T) {
			e := newEnv(t)
			if _, err := e.login("okta", "sub-p", provision.Rules{JIT: true, CreatePending: true}); err == nil {
				t.Fatal("a pending user signed in")
			}
			var pending store.User
			err := e.db.View(context.Background(), func(tx store.Tx) error {
				u, err := tx.UserByLink("okta", "sub-p")
				if err == nil {
					pending = *u
				}
				return err
			})
			if err != nil || !pending.Pending || !pending.Active {
				t.Fatalf("pending user = %+v, %v", pending, err)
			}
			res, err := e.acc.Activate(context.Background(), pending.ID, by)
			if err != nil || !res.Changed || res.User.Pending || !res.User.Active {
				t.Fatalf("activate = %+v, %v", res, err)
			}
			if u := e.user(pending.ID); u.Pending || !u.Active {
				t.Errorf("stored = %+v", u)
			}
			ev := e.events(store.EventUserActivated)
			if len(ev) != 1 || ev[0].Reason != by || ev[0].Detail["approved"] != "true" {
				t.Errorf("activation events = %+v", ev)
			}
			if _, err := e.login("okta", "sub-p", provision.Rules{JIT: true, CreatePending: true}); err != nil {
				t.Errorf("approved user cannot sign in: %v", err)
			}
			if res, err := e.acc.Activate(context.Background(), pending.ID, by); err != nil || res.Changed {
				t.Errorf("activating an active user = %+v, %v", res, err)
			}
		})
	}
}

func TestTombstones(t *testing.T) {
	u := &store.User{ID: "u1", IdP: "entra", ExternalID: "oid-1",
		Links: []store.Link{{IdP: "entra", Subject: "oid-1"}, {IdP: "entra", Subject: "pairwise-sub"}, {IdP: "okta", Subject: "00u1"}}}
	type pair struct{ idp, subject string }
	for _, c := range []struct {
		name    string
		managed func(string) bool
		want    []pair
	}{
		{"entra managed", func(idp string) bool { return idp == "entra" }, []pair{{"entra", "oid-1"}, {"entra", "pairwise-sub"}}},
		{"none managed", func(string) bool { return false }, nil},
		{"both managed", func(string) bool { return true }, []pair{{"entra", "oid-1"}, {"entra", "pairwise-sub"}, {"okta", "00u1"}}},
		{"not known (offline)", nil, []pair{{"entra", "oid-1"}, {"entra", "pairwise-sub"}, {"okta", "00u1"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &account.Service{SCIMManaged: c.managed}
			var got []pair
			for _, ts := range s.Tombstones(u, t0) {
				if ts.UserID != "u1" || !ts.Deleted.Equal(t0) {
					t.Errorf("tombstone %+v", ts)
				}
				got = append(got, pair{ts.IdP, ts.Subject})
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("tombstones %v, want %v", got, c.want)
			}
		})
	}
}

// TestDeleteKeepsJITOut: a deleted user of a SCIM-managed IdP is refused
// at their next sign-in (deprovisioned), whoever deleted them; at an IdP
// without SCIM, JIT creates them anew.
func TestDeleteKeepsJITOut(t *testing.T) {
	scimAndJIT := provision.Rules{JIT: true, SCIMManaged: true}
	for _, by := range []string{account.ByAdmin, account.BySCIM} {
		t.Run(by, func(t *testing.T) {
			e := newEnv(t)
			u, tok := e.signIn("entra", "oid-1", scimAndJIT)
			res, err := e.acc.Delete(context.Background(), u.ID, by)
			if err != nil || res.Tombstones != 1 || res.Sessions != 1 {
				t.Fatalf("delete = %+v, %v", res, err)
			}
			if !e.signedOut(tok) {
				t.Error("the session survived deletion")
			}
			_, err = e.login("entra", "oid-1", scimAndJIT)
			var d *provision.Denial
			if !errors.As(err, &d) || d.Reason != provision.ReasonDeprovisioned {
				t.Errorf("sign-in after deletion: %v, want %s", err, provision.ReasonDeprovisioned)
			}
			del := e.events(store.EventUserDeleted)
			if len(del) != 1 || del[0].Reason != by || del[0].Detail["tombstones"] != "1" || del[0].Subject != "oid-1" {
				t.Errorf("deletion events = %+v", del)
			}
		})
	}
	t.Run("IdP without SCIM", func(t *testing.T) {
		e := newEnv(t)
		u, _ := e.signIn("okta", "00u1", jit)
		if res, err := e.acc.Delete(context.Background(), u.ID, account.ByAdmin); err != nil || res.Tombstones != 0 {
			t.Fatalf("delete = %+v, %v", res, err)
		}
		again, err := e.login("okta", "00u1", jit)
		if err != nil || again.ID == u.ID {
			t.Errorf("JIT after deletion: %+v, %v", again, err)
		}
	})
}

func TestEndSessions(t *testing.T) {
	e := newEnv(t)
	u, tok := e.signIn("okta", "sub-1", jit)
	other, otherTok := e.signIn("okta", "sub-2", jit)
	res, err := e.acc.EndSessions(context.Background(), u.ID, account.ByAdmin)
	if err != nil || res.Sessions != 1 || !e.user(u.ID).Active {
		t.Fatalf("end sessions = %+v, %v", res, err)
	}
	if !e.signedOut(tok) || e.signedOut(otherTok) {
		t.Errorf("ended: own %v, other's %v (user %s)", e.signedOut(tok), e.signedOut(otherTok), other.ID)
	}
	ev := e.events(store.EventSessionRevoked)
	if len(ev) != 1 || ev[0].Reason != account.ReasonRevoked || ev[0].Detail["by"] != account.ByAdmin {
		t.Errorf("revocation events = %+v", ev)
	}
}

func TestOperationsOnAMissingUser(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for name, op := range map[string]func() error{
		"deactivate":   func() error { _, err := e.acc.Deactivate(ctx, "nobody", account.ByAdmin); return err },
		"activate":     func() error { _, err := e.acc.Activate(ctx, "nobody", account.ByAdmin); return err },
		"delete":       func() error { _, err := e.acc.Delete(ctx, "nobody", account.ByAdmin); return err },
		"end sessions": func() error { _, err := e.acc.EndSessions(ctx, "nobody", account.ByAdmin); return err },
		"show":         func() error { _, err := e.acc.User(ctx, "nobody", "", 0); return err },
	} {
		err := op()
		if !errors.Is(err, store.ErrNotFound) || err.Error() != `user "nobody" not found` {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestAuditCarriesNoProfile: no event an operation writes holds an email
// or any other profile value.
func TestAuditCarriesNoProfile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	scimAndJIT := provision.Rules{JIT: true, SCIMManaged: true}
	u, _ := e.signIn("entra", "oid-1", scimAndJIT)
	for _, op := range []func() (*account.Result, error){
		func() (*account.Result, error) { return e.acc.EndSessions(ctx, u.ID, account.ByAdmin) },
		func() (*account.Result, error) { return e.acc.Deactivate(ctx, u.ID, account.ByAdmin) },
		func() (*account.Result, error) { return e.acc.Activate(ctx, u.ID, account.BySCIM) },
		func() (*account.Result, error) { return e.acc.Delete(ctx, u.ID, account.ByAdmin) },
	} {
		if _, err := op(); err != nil {
			t.Fatal(err)
		}
	}
	all := e.events("")
	if len(all) < 5 {
		t.Fatalf("only %d events", len(all))
	}
	for _, ev := range all {
		b, _ := json.Marshal(ev)
		for _, v := range []string{u.Email, "@", u.FirstName, u.LastName} {
			if strings.Contains(string(b), v) {
				t.Errorf("event %s holds %q", b, v)
			}
		}
	}
}

// TestViaIsInEveryEvent: Service.Via (how the operation came: admin API,
// offline CLI) is the detail "via" of every event the operations write.
func TestViaIsInEveryEvent(t *testing.T) {
	e := newEnv(t)
	e.acc.Via = account.ViaOffline
	ctx := context.Background()
	u, _ := e.signIn("entra", "oid-1", provision.Rules{JIT: true, SCIMManaged: true})
	for _, op := range []func() (*account.Result, error){
		func() (*account.Result, error) { return e.acc.Deactivate(ctx, u.ID, account.ByAdmin) },
		func() (*account.Result, error) { return e.acc.Activate(ctx, u.ID, account.ByAdmin) },
		func() (*account.Result, error) { return e.acc.Delete(ctx, u.ID, account.ByAdmin) },
	} {
		if _, err := op(); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []string{store.EventUserDeactivated, store.EventUserActivated, store.EventUserDeleted, store.EventSessionRevoked} {
		evs := e.events(typ)
		if len(evs) != 1 || evs[0].Detail["via"] != account.ViaOffline {
			t.Errorf("%s: events %+v, want one with via=%s", typ, evs, account.ViaOffline)
		}
	}
}

// TestStoredSCIMPasswordDroppedInAnySpelling: a password that
// provision/scim stored before it folded the core URN, under whatever
// case the client used for the URN or the attribute, is shown neither in
// the user's detail nor in the list, and the user's next write here drops
// it from the store; nothing empty is left in its place.
func TestStoredSCIMPasswordDroppedInAnySpelling(t *testing.T) {
	const core = "urn:ietf:params:scim:schemas:core:2.0:User"
	for _, c := range []struct{ name, stored, want string }{
		{"qualified name in upper case", `{"` + core + `:PASSWORD":"Sekr1t","nickName":"Al"}`, `{"nickName":"Al"}`},
		{"core URN in another case", `{"URN:IETF:params:scim:schemas:core:2.0:user":{"Password":"Sekr1t"},"nickName":"Al"}`, `{"nickName":"Al"}`},
		{"core URN object left empty", `{"` + core + `":{"password":"Sekr1t"},"nickName":"Al"}`, `{"nickName":"Al"}`},
		{"core URN object keeps the rest", `{"` + core + `":{"password":"Sekr1t","title":"Dr"}}`, `{"` + core + `":{"title":"Dr"}}`},
		{"password alone", `{"PassWord":"Sekr1t"}`, ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			u := &store.User{Email: "al@corp.example", Active: true, Source: store.SourceSCIM, IdP: "entra", ExternalID: "oid-al",
				SCIMAttributes: []byte(c.stored)}
			if err := e.db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
				t.Fatal(err)
			}
			d, err := e.acc.User(ctx, u.ID, "", 0)
			if err != nil || string(d.User.SCIMAttributes) != c.want {
				t.Errorf("detail shows %s (%v), want %s", d.User.SCIMAttributes, err, c.want)
			}
			page, err := e.acc.ListUsers(ctx, "", "", 0)
			if err != nil || len(page.Users) != 1 || string(page.Users[0].SCIMAttributes) != c.want {
				t.Errorf("list shows %+v (%v), want %s", page, err, c.want)
			}
			if _, err := e.acc.Deactivate(ctx, u.ID, account.ByAdmin); err != nil {
				t.Fatal(err)
			}
			if got := string(e.user(u.ID).SCIMAttributes); got != c.want {
				t.Errorf("after a write the store holds %s, want %s", got, c.want)
			}
		})
	}
}

func TestUserDetailPagesSessions(t *testing.T) {
	e := newEnv(t)
	u, _ := e.signIn("okta", "sub-1", jit)
	for range 4 {
		e.now = e.now.Add(time.Minute)
		e.signIn("okta", "sub-1", jit)
	}
	var seen []time.Time
	after := ""
	for pages := 0; ; pages++ {
		d, err := e.acc.User(context.Background(), u.ID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if d.SessionCount != 5 || len(d.Sessions) > 2 || pages > 3 {
			t.Fatalf("page %d: %d of %d sessions", pages, len(d.Sessions), d.SessionCount)
		}
		for _, s := range d.Sessions {
			seen = append(seen, s.Created)
		}
		if d.NextSessions == "" {
			break
		}
		after = d.NextSessions
	}
	if len(seen) != 5 || !slices.IsSortedFunc(seen, func(a, b time.Time) int { return b.Compare(a) }) {
		t.Errorf("sessions %v: want all 5, newest first", seen)
	}
	if _, err := e.acc.User(context.Background(), u.ID, "x", 2); !errors.Is(err, account.ErrBadQuery) {
		t.Errorf("after=x: %v", err)
	}
}

func TestCheckEventType(t *testing.T) {
	if err := account.CheckEventType("user.disabled"); err == nil || !strings.Contains(err.Error(), store.EventUserDeactivated) {
		t.Errorf("user.disabled: %v", err)
	}
	for _, typ := range append([]string{""}, account.EventTypes...) {
		if err := account.CheckEventType(typ); err != nil {
			t.Errorf("%q: %v", typ, err)
		}
	}
	if _, err := (&account.Service{}).Audit(context.Background(), store.AuditQuery{Type: "nope"}); !errors.Is(err, account.ErrBadQuery) {
		t.Errorf("audit of an unknown type: %v", err)
	}
}

// TestOneTimePerOperation: the events one operation writes (the user's,
// and the session.revoked of the sessions it ended) carry one time, even
// on a clock that moves between two reads of it.
func TestOneTimePerOperation(t *testing.T) {
	ops := []struct {
		name, event string
		run         func(*account.Service, string) (*account.Result, error)
	}{
		{"deactivate", store.EventUserDeactivated, func(s *account.Service, id string) (*account.Result, error) {
			return s.Deactivate(context.Background(), id, account.ByAdmin)
		}},
		{"delete", store.EventUserDeleted, func(s *account.Service, id string) (*account.Result, error) {
			return s.Delete(context.Background(), id, account.ByAdmin)
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			e := newEnv(t)
			u, _ := e.signIn("okta", "sub-1", jit)
			ticks := e.acc.Now
			e.acc.Now = func() time.Time { // a microsecond on at every read
				e.now = e.now.Add(time.Microsecond)
				return ticks()
			}
			if _, err := op.run(e.acc, u.ID); err != nil {
				t.Fatal(err)
			}
			user, revoked := e.events(op.event), e.events(store.EventSessionRevoked)
			if len(user) != 1 || len(revoked) != 1 || !user[0].Time.Equal(revoked[0].Time) {
				t.Errorf("%s at %v, session.revoked at %v; want one time", op.event, user, revoked)
			}
		})
	}
}

// lostAnswerStore commits each write and then reports its outcome unknown
// (store.ErrOutcomeUnknown), as PostgreSQL does when the connection is
// lost while the answer to COMMIT is on its way.
type lostAnswerStore struct{ store.Store }

func (l lostAnswerStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := l.Store.Update(ctx, fn); err != nil {
		return err
	}
	return fmt.Errorf("commit: %w", store.ErrOutcomeUnknown)
}

// TestOutcomeUnknownForgetsCachedSessions: an operation whose commit's
// answer was lost may have ended sessions; the caches (this instance's,
// and by its broadcast the others') let go of them all the same, so that
// a session the store has ended is not served from a cache for up to
// CacheTTL. Forgetting one the store still has costs a read. The
// operation's lines are not logged: they would say what may not have
// happened (the audit trail has it if it did).
func TestOutcomeUnknownForgetsCachedSessions(t *testing.T) {
	for _, tt := range []struct {
		name string
		op   func(acc *account.Service, id string) (*account.Result, error)
	}{
		{"deactivate", func(acc *account.Service, id string) (*account.Result, error) {
			return acc.Deactivate(context.Background(), id, account.ByAdmin)
		}},
		{"end sessions", func(acc *account.Service, id string) (*account.Result, error) {
			return acc.EndSessions(context.Background(), id, account.ByAdmin)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			u, tok := e.signIn("okta", "sub-1", jit)
			acc := *e.acc
			acc.Store = lostAnswerStore{e.db}
			core, logs := observer.New(zapcore.InfoLevel)
			acc.Logger = zap.New(core)
			if _, err := tt.op(&acc, u.ID); !errors.Is(err, store.ErrOutcomeUnknown) {
				t.Fatalf("%s = %v, want ErrOutcomeUnknown", tt.name, err)
			}
			for _, l := range logs.All() {
				t.Errorf("logged %q %v for an operation whose outcome is unknown, want no line", l.Message, l.ContextMap())
			}
			if !e.signedOut(tok) {
				t.Errorf("the session the store ended (its answer lost) is still served from the cache")
			}
		})
	}
}
