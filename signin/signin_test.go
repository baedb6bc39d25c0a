package signin_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// countingStore counts the Update calls that committed: each is one
// durable commit (bbolt batches concurrent ones into fewer fsyncs, never
// into more).
type countingStore struct {
	store.Store
	commits atomic.Int64
}

func (c *countingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := c.Store.Update(ctx, fn)
	if err == nil {
		c.commits.Add(1)
	}
	return err
}

type env struct {
	t        *testing.T
	db       *countingStore
	sessions *session.Manager
	svc      *signin.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := backendtest.OpenBolt(t)
	e := &env{t: t, db: &countingStore{Store: db}}
	e.sessions = session.New(e.db, session.Config{}, nil, nil)
	e.svc = &signin.Service{Store: e.db, Sessions: e.sessions}
	return e
}

func (e *env) idp(protocol, preset string) *signin.IdP {
	e.t.Helper()
	m, err := mapping.New(preset, protocol, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &signin.IdP{Name: protocol + "-idp", Mapper: m, Rules: provision.Rules{JIT: true}}
}

// oidcAssertion is what idp/oidc returns for one callback: the ID token's
// claims, the state to consume, the logout data.
func oidcAssertion(state, family string, overage bool) *idp.Assertion {
	a := &idp.Assertion{IdP: "oidc-idp", Protocol: idp.ProtocolOIDC, Subject: "sub-ada", EmailVerified: true,
		Attributes: map[string][]string{"sub": {"sub-ada"}, "given_name": {"Ada"}, "family_name": {family},
			"email": {"ada@example.com"}, "groups": {"eng"}},
		Logout: idp.LogoutInfo{Subject: "sub-ada", SessionID: "sid-" + state},
		Tokens: &idp.Tokens{IDToken: "eyJ.id-token." + state, AccessToken: "at-" + state, RefreshToken: "rt-" + state,
			Expiry: time.Unix(1_900_000_000, 0)},
		SingleUse: []idp.SingleUse{{Kind: "oidc_state", ID: "oidc-idp/" + state, Until: time.Now().Add(10 * time.Minute), Code: "state_replayed"}},
	}
	if overage {
		delete(a.Attributes, "groups")
		a.Attributes[mapping.OIDCClaimNames] = []string{`{"groups":"src1"}`}
	}
	return a
}

// samlAssertion is what idp/saml returns for one response (Okta-shaped).
func samlAssertion(id, family string, overage bool) *idp.Assertion {
	a := &idp.Assertion{IdP: "saml-idp", Protocol: idp.ProtocolSAML, Subject: "ada@example.com",
		SubjectFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
		Attributes: map[string][]string{"uniqueUserId": {"00u-ada"}, "firstName": {"Ada"}, "lastName": {family},
			"email": {"ada@example.com"}, "groups": {"eng"}},
		Logout:    idp.LogoutInfo{Subject: "ada@example.com", SessionID: "idx-" + id},
		SingleUse: []idp.SingleUse{{Kind: "saml_id", ID: "saml-idp/" + id, Until: time.Now().Add(5 * time.Minute), Code: "saml_replayed"}},
	}
	if overage {
		delete(a.Attributes, "groups")
		a.Attributes[mapping.EntraGroupsLink] = []string{"https://graph.microsoft.com/v1.0/users/x/memberOf"}
	}
	return a
}

// auditEvents lists e's audit events of type typ, oldest first.
func (e *env) auditEvents(typ string) []store.Event {
	e.t.Helper()
	var evs []store.Event
	if err := e.db.View(context.Background(), func(tx store.Tx) (err error) {
		evs, err = tx.AuditEvents(store.AuditQuery{Type: typ, Limit: 1000})
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) auditTypes() []string {
	e.t.Helper()
	var types []string
	for _, ev := range e.auditEvents("") {
		types = append(types, ev.Type)
	}
	return types
}

func (e *env) sessionExists(hash string) bool {
	e.t.Helper()
	err := e.db.View(context.Background(), func(tx store.Tx) error {
		_, err := tx.Session(hash)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

// TestOneDurableCommitPerSignIn: a JIT sign-in that creates the user, and
// one that updates them while ending the browser's previous session and
// recording a groups overage, each commit exactly once, for both
// protocols, and everything they write is there afterwards.
func TestOneDurableCommitPerSignIn(t *testing.T) {
	for _, tc := range []struct {
		protocol, preset string
		assertion        func(n, family string, overage bool) *idp.Assertion
	}{
		{idp.ProtocolOIDC, "generic", oidcAssertion},
		{idp.ProtocolSAML, "okta", samlAssertion},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			e := newEnv(t)
			p := e.idp(tc.protocol, tc.preset)
			ctx := context.Background()

			before := e.db.commits.Load()
			first, err := e.svc.SignIn(ctx, p, tc.assertion("1", "Lovelace", false), "")
			if err != nil || first.Session == nil || !first.Result.Created {
				t.Fatalf("first sign-in: %+v %v", first, err)
			}
			if n := e.db.commits.Load() - before; n != 1 {
				t.Errorf("creating sign-in: %d durable commits, want 1", n)
			}

			before = e.db.commits.Load()
			second, err := e.svc.SignIn(ctx, p, tc.assertion("2", "King", true), session.Hash(first.Session.Token))
			if err != nil || second.Session == nil || !slices.Contains(second.Result.Changed, "last_name") ||
				!second.Result.GroupsOverage || !second.EndedPrevious {
				t.Fatalf("second sign-in: %+v %v", second, err)
			}
			if n := e.db.commits.Load() - before; n != 1 {
				t.Errorf("updating sign-in (previous session ended, overage recorded): %d durable commits, want 1", n)
			}

			want := []string{store.EventUserCreated, store.EventLoginSucceeded,
				store.EventUserUpdated, store.EventLoginSucceeded, store.EventGroupsOverage, store.EventSessionLoggedOut}
			if got := e.auditTypes(); !slices.Equal(got, want) {
				t.Errorf("audit = %v, want %v", got, want)
			}
			if e.sessionExists(first.Session.Session.Hash) {
				t.Error("the previous session survived the new sign-in")
			}
			if !e.sessionExists(second.Session.Session.Hash) {
				t.Error("the new session is not in the store")
			}
			if _, err := e.sessions.Resolve(ctx, first.Session.Token); !errors.Is(err, session.ErrNoSession) {
				t.Errorf("previous cookie still resolves: %v", err)
			}
			if tc.protocol == idp.ProtocolOIDC {
				// The ID token was written in the same commit, sealed.
				tok, err := e.sessions.Tokens(ctx, second.Session.Session.Hash)
				if err != nil || tok == nil || tok.IDToken != "eyJ.id-token.2" {
					t.Errorf("sealed ID token = %v, %v", tok, err)
				}
				// No route passes tokens here: the access and refresh
				// tokens the IdP issued are not kept.
				if tok != nil && (tok.AccessToken != "" || tok.RefreshToken != "" || !tok.Expiry.IsZero()) {
					t.Errorf("tokens no route passes were kept: %v", tok)
				}
			}
		})
	}
}

// TestTokensKept: a session keeps the ID token always, the access token
// (with its expiry) only when a route passes it, and the refresh token only
// with offline_access on top.
func TestTokensKept(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		access, refresh       bool
		wantAccess, wantFresh bool
	}{
		{"id token only", false, false, false, false},
		{"refresh alone keeps nothing more", false, true, false, false},
		{"access token", true, false, true, false},
		{"access and refresh token", true, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.idp(idp.ProtocolOIDC, "okta")
			p.KeepAccessToken, p.KeepRefreshToken = tc.access, tc.refresh
			out, err := e.svc.SignIn(context.Background(), p, oidcAssertion("k", "Lovelace", false), "")
			if err != nil || out.Session == nil {
				t.Fatalf("sign-in: %+v %v", out, err)
			}
			tok, err := e.sessions.Tokens(context.Background(), out.Session.Session.Hash)
			if err != nil || tok == nil {
				t.Fatalf("tokens: %v %v", tok, err)
			}
			if tok.IDToken != "eyJ.id-token.k" {
				t.Errorf("ID token not kept: %v", tok)
			}
			if got := tok.AccessToken == "at-k" && tok.Expiry.Equal(time.Unix(1_900_000_000, 0)); got != tc.wantAccess {
				t.Errorf("access token kept = %v, want %v (%v)", got, tc.wantAccess, tok)
			}
			if got := tok.RefreshToken == "rt-k"; got != tc.wantFresh {
				t.Errorf("refresh token kept = %v, want %v", got, tc.wantFresh)
			}
		})
	}
}

// TestAuthTimeKept: the session keeps when the person last authenticated
// at the IdP (OIDC auth_time, SAML AuthnInstant), which the identity JWT's
// auth_time reads, in the record the sign-in writes and in the cached
// copy; an IdP that did not say leaves it zero.
func TestAuthTimeKept(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		a        *idp.Assertion
		preset   string
		authTime time.Time
	}{
		{"oidc auth_time", oidcAssertion("1", "Lovelace", false), "generic", at},
		{"saml AuthnInstant", samlAssertion("1", "Lovelace", false), "okta", at},
		{"not said", oidcAssertion("1", "Lovelace", false), "generic", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			tc.a.AuthTime = tc.authTime
			out, err := e.svc.SignIn(ctx, e.idp(tc.a.Protocol, tc.preset), tc.a, "")
			if err != nil || out.Session == nil {
				t.Fatalf("sign-in: %+v %v", out, err)
			}
			var s *store.Session
			if err := e.db.View(ctx, func(tx store.Tx) (err error) {
				s, err = tx.Session(out.Session.Session.Hash)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if !s.AuthTime.Equal(tc.authTime) || s.AuthTime.IsZero() != tc.authTime.IsZero() {
				t.Errorf("stored session's AuthTime %v, want %v", s.AuthTime, tc.authTime)
			}
			if id, err := e.sessions.Resolve(ctx, out.Session.Token); err != nil || !id.AuthTime.Equal(tc.authTime) {
				t.Errorf("resolved identity: %+v, %v; want AuthTime %v", id, err, tc.authTime)
			}
		})
	}
}

// TestReplayRefused: the same assertion twice makes one session; the
// second is refused with the code its single-use ID names and writes
// nothing (the route records it with Refusals, within its budget).
func TestReplayRefused(t *testing.T) {
	e := newEnv(t)
	p := e.idp(idp.ProtocolSAML, "okta")
	ctx := context.Background()
	a := samlAssertion("once", "Lovelace", false)
	if out, err := e.svc.SignIn(ctx, p, a, ""); err != nil || out.Session == nil {
		t.Fatalf("first: %+v %v", out, err)
	}
	before := e.auditTypes()
	out, err := e.svc.SignIn(ctx, p, a, "")
	if err != nil || out.Replay == nil || out.Replay.Code != "saml_replayed" || out.Session != nil {
		t.Fatalf("replay: %+v %v", out, err)
	}
	// The replay of a sign-in this browser began (its flow cookie opened
	// the callback) is audited as a login in progress, in the bound
	// budget, not as traffic bound to no login (UnboundFlow).
	if !out.Replay.Bound {
		t.Error("the replay's refusal is not bound to the login in progress")
	}
	if got := e.auditTypes(); !slices.Equal(got, before) {
		t.Errorf("the replay wrote audit events: %v, before %v", got, before)
	}
	// An IdP-initiated response's replay opened no login of this
	// browser: it is refused as unbound, in the unbound budget.
	u := samlAssertion("unsolicited", "Lovelace", false)
	u.Unbound = true
	if out, err := e.svc.SignIn(ctx, p, u, ""); err != nil || out.Session == nil {
		t.Fatalf("first IdP-initiated: %+v %v", out, err)
	}
	if out, err := e.svc.SignIn(ctx, p, u, ""); err != nil || out.Replay == nil || out.Replay.Bound {
		t.Errorf("IdP-initiated replay: %+v %v; want a replay refused as unbound", out, err)
	}
}

// TestReplayCommitsNothing: a replayed assertion writes nothing, and its
// transaction rolls back: whoever holds a captured answer can repeat it
// at will, and an empty commit still rewrites bbolt's meta page and
// fdatasyncs it, ahead of real sign-ins in the commit queue (a logout
// message seen before rolls back likewise; its audit event, written by the
// caller's Refusals, has a budget). Counted by bolt's OnWrite, called once
// per write transaction committed or rolled back, with the pages it wrote
// (none for a rollback). For SP-initiated (bound) and IdP-initiated
// (unbound) sign-ins alike.
func TestReplayCommitsNothing(t *testing.T) {
	var commits, pages atomic.Int64
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{OnWrite: func(h bolt.WriteHold) {
		if h.Pages > 0 { // a rollback writes no page; a commit at least its meta page
			commits.Add(1)
		}
		pages.Add(h.Pages)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sessions := session.New(db, session.Config{}, nil, nil)
	svc := &signin.Service{Store: db, Sessions: sessions}
	e := &env{t: t}
	p := e.idp(idp.ProtocolSAML, "okta")
	ctx := context.Background()
	// The counter tells commits from rollbacks: an Update whose fn fails
	// (as EndSessions' for a logout message seen before) writes no page.
	_ = db.Update(ctx, func(store.Tx) error { return errors.New("rolled back") })
	if commits.Load() != 0 || pages.Load() != 0 {
		t.Fatalf("a rolled-back Update counted as %d commits, %d pages", commits.Load(), pages.Load())
	}
	for _, unbound := range []bool{false, true} {
		a := samlAssertion("once-"+map[bool]string{false: "sp", true: "idp"}[unbound], "Lovelace", false)
		a.Unbound = unbound
		if out, err := svc.SignIn(ctx, p, a, ""); err != nil || out.Session == nil {
			t.Fatalf("first: %+v %v", out, err)
		}
		c0, p0 := commits.Load(), pages.Load()
		const n = 200
		for range n {
			out, err := svc.SignIn(ctx, p, a, "")
			if err != nil || out.Replay == nil {
				t.Fatalf("replay: %+v %v", out, err)
			}
		}
		if c, pg := commits.Load()-c0, pages.Load()-p0; c != 0 || pg != 0 {
			t.Errorf("unbound=%v: %d replays of one assertion cost %d bbolt write transactions writing %d pages; want none (a replay writes nothing)",
				unbound, n, c, pg)
		}
	}
}

// TestConcurrentReplaysOneSession: 50 sign-ins with one assertion at once,
// sharing commits through the store's batching, end with exactly one
// session: the single-use ID is consumed in the same transaction that
// writes the session.
func TestConcurrentReplaysOneSession(t *testing.T) {
	for _, a := range []*idp.Assertion{oidcAssertion("s", "Lovelace", false), samlAssertion("id", "Lovelace", false)} {
		t.Run(a.Protocol, func(t *testing.T) {
			e := newEnv(t)
			p := e.idp(a.Protocol, map[string]string{idp.ProtocolOIDC: "generic", idp.ProtocolSAML: "okta"}[a.Protocol])
			var wg sync.WaitGroup
			var sessions, replays atomic.Int64
			for range 50 {
				wg.Go(func() {
					out, err := e.svc.SignIn(context.Background(), p, a, "")
					switch {
					case err != nil:
						t.Error(err)
					case out.Session != nil:
						sessions.Add(1)
					case out.Replay != nil:
						replays.Add(1)
					}
				})
			}
			wg.Wait()
			if sessions.Load() != 1 || replays.Load() != 49 {
				t.Fatalf("%d sessions and %d refused replays, want 1 and 49", sessions.Load(), replays.Load())
			}
			var stored int
			err := e.db.View(context.Background(), func(tx store.Tx) error {
				return tx.ForEachSession("", func(*store.Session) error { stored++; return nil })
			})
			if err != nil || stored != 1 {
				t.Fatalf("%d sessions stored (%v), want 1", stored, err)
			}
		})
	}
}

// TestMissingSubjectDenied: an assertion the mapping finds no user ID in
// is denied with reason missing_subject (the code the page shows and the
// audit records), in one commit, and consumes its single-use ID. Its
// login.denied event, naming what arrived, is the only trace it leaves.
func TestMissingSubjectDenied(t *testing.T) {
	e := newEnv(t)
	p := e.idp(idp.ProtocolSAML, "okta")
	a := samlAssertion("no-subject", "Lovelace", false)
	delete(a.Attributes, "uniqueUserId")
	before := e.db.commits.Load()
	out, err := e.svc.SignIn(context.Background(), p, a, "")
	if err != nil || out.Denial == nil || out.Denial.Reason != provision.ReasonMissingSubject || out.Unmapped == nil {
		t.Fatalf("got %+v %v", out, err)
	}
	if n := e.db.commits.Load() - before; n != 1 {
		t.Errorf("%d commits, want 1", n)
	}
	evs := e.auditEvents("")
	if len(evs) != 1 || evs[0].Type != store.EventLoginDenied || evs[0].Reason != provision.ReasonMissingSubject ||
		evs[0].IdP != p.Name || evs[0].Detail["received"] == "" {
		t.Errorf("audit = %+v, want one login.denied missing_subject naming the attributes received", evs)
	}
	if out, _ := e.svc.SignIn(context.Background(), p, a, ""); out == nil || out.Replay == nil {
		t.Errorf("the denied assertion was not consumed: %+v", out)
	}
}

// TestRefusalsBoundedWrites: refusals without a login in progress, which
// anyone can send, write no more than their own budget, whatever their
// IdP, reason and source; those of a login in progress are audited up to
// theirs, which the others cannot use up, and the first event after the
// window says how many were left out.
func TestRefusalsBoundedWrites(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	r := &signin.Refusals{Store: e.db, Now: func() time.Time { return now }, AuditPerMinute: 3, UnboundAuditPerMinute: 2}
	ctx := context.Background()
	before := e.db.commits.Load()
	for i := range 1000 {
		r.Record(ctx, fmt.Sprintf("idp-%d", i%7), &idp.LoginError{Code: fmt.Sprintf("code_%d", i%13)}, fmt.Sprintf("192.0.2.%d", i%250), "")
	}
	if n := e.db.commits.Load() - before; n != 2 {
		t.Fatalf("1000 refusals without a flow cookie made %d commits, want 2 (their budget)", n)
	}
	for range 10 {
		r.Record(ctx, "okta", &idp.LoginError{Code: "id_token_signature", Bound: true}, "192.0.2.1", "")
	}
	if n := e.db.commits.Load() - before; n != 2+3 {
		t.Fatalf("10 refusals of logins in progress made %d commits, want 3 (the budget)", n-2)
	}
	now = now.Add(time.Minute)
	r.Record(ctx, "okta", &idp.LoginError{Code: "id_token_signature", Bound: true}, "192.0.2.1", "")
	last, err := lastLoginFailed(ctx, e.db)
	if err != nil || last.Detail["not_audited_last_minute"] != "7" {
		t.Fatalf("summary event = %+v, %v", last, err)
	}
}

// lastLoginFailed is the latest login.failed event in db.
func lastLoginFailed(ctx context.Context, db store.Store) (store.Event, error) {
	var last store.Event
	err := db.View(ctx, func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Type: store.EventLoginFailed, Limit: 1000})
		if len(events) > 0 {
			last = events[len(events)-1]
		}
		return err
	})
	return last, err
}

// TestBoundRefusalsInstanceCap: whoever begins a login (one GET gives a
// real flow cookie) can post made-up callbacks refused for any reason at
// any IdP, each "bound"; their events are capped together per instance,
// beyond each IdP's and reason's own budget, and the refusals bound to no
// login keep their separate budget, so that the instance writes at most
// DefaultBoundAuditPerMinute + DefaultUnboundAuditPerMinute (the 40 of
// docs/security.md) a minute. The next bound event after a full minute
// counts what the cap left out, and its own IdP's and reason's left out.
func TestBoundRefusalsInstanceCap(t *testing.T) {
	if total := signin.DefaultBoundAuditPerMinute + signin.DefaultUnboundAuditPerMinute; total != 40 {
		t.Fatalf("an instance writes up to %d refusal events a minute; docs/security.md says 40", total)
	}
	e := newEnv(t)
	now := time.Now()
	r := &signin.Refusals{Store: e.db, Now: func() time.Time { return now }}
	ctx := context.Background()
	before := e.db.commits.Load()
	for i := range 7 * 13 * 20 {
		r.Record(ctx, fmt.Sprintf("idp-%d", i%7), &idp.LoginError{Code: fmt.Sprintf("code_%d", i%13), Bound: true}, "192.0.2.1", "")
	}
	if n := e.db.commits.Load() - before; n != signin.DefaultBoundAuditPerMinute {
		t.Fatalf("1820 bound refusals (7 IdPs, 13 reasons) made %d commits in a minute, want %d (the instance cap)", n, signin.DefaultBoundAuditPerMinute)
	}
	for i := range 1000 {
		r.Record(ctx, "idp-0", &idp.LoginError{Code: fmt.Sprintf("code_%d", i%13)}, "192.0.2.2", "")
	}
	if n := e.db.commits.Load() - before; n != signin.DefaultBoundAuditPerMinute+signin.DefaultUnboundAuditPerMinute {
		t.Fatalf("with the bound cap used up, unbound refusals made %d commits, want their own %d", n-signin.DefaultBoundAuditPerMinute, signin.DefaultUnboundAuditPerMinute)
	}

	now = now.Add(time.Minute)
	r.Record(ctx, "idp-6", &idp.LoginError{Code: "code_12", Bound: true}, "192.0.2.1", "")
	last, err := lastLoginFailed(ctx, e.db)
	// Each of the 91 IdP-and-reason budgets let 10 through (910), of
	// which the cap wrote 30; idp-6/code_12 left out 10 of its 20.
	if err != nil || last.Detail["not_audited_instance_cap"] != "880" || last.Detail["not_audited_last_minute"] != "10" {
		t.Fatalf("first bound event of the next minute: %+v, %v; want 880 left out by the cap, 10 by its own budget", last.Detail, err)
	}
	now = now.Add(time.Second)
	r.Record(ctx, "idp-0", &idp.LoginError{Code: "code_0", Bound: true}, "192.0.2.1", "")
	last, err = lastLoginFailed(ctx, e.db)
	if err != nil || last.Detail["not_audited_instance_cap"] != "" || last.Detail["not_audited_last_minute"] != "10" {
		t.Errorf("the next bound event: %+v, %v; want the cap's count reported once, and its own budget's 10", last.Detail, err)
	}
}

// TestMissingSubjectReceivedListCapped: the login.denied event of an
// assertion without a user ID names the attributes that arrived, the
// first 20 of them and "…": an IdP that sends hundreds does not make the
// event as large.
func TestMissingSubjectReceivedListCapped(t *testing.T) {
	e := newEnv(t)
	p := e.idp(idp.ProtocolSAML, "okta")
	a := samlAssertion("many", "Lovelace", false)
	delete(a.Attributes, "uniqueUserId")
	for i := range 30 {
		a.Attributes[fmt.Sprintf("extra%02d", i)] = []string{"x"}
	}
	out, err := e.svc.SignIn(context.Background(), p, a, "")
	if err != nil || out.Denial == nil || out.Denial.Reason != provision.ReasonMissingSubject {
		t.Fatalf("got %+v %v", out, err)
	}
	evs := e.auditEvents(store.EventLoginDenied)
	if len(evs) != 1 {
		t.Fatalf("%d login.denied events, want 1", len(evs))
	}
	got := strings.Split(evs[0].Detail["received"], ",")
	if len(got) != 21 || got[20] != "…" || !slices.Equal(got[:20], out.Unmapped.Received[:20]) {
		t.Errorf("received = %q, want the first 20 of the %d names received and …", got, len(out.Unmapped.Received))
	}
}

// TestPaddedGroupsWarningNamesThree: the warning about padded group names
// names the first three of them, however many the user has: an IdP that
// pads every one of hundreds of groups does not make one line as long.
func TestPaddedGroupsWarningNamesThree(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.WarnLevel)
	e.svc.Logger = zap.New(core)
	a := oidcAssertion("padded", "Lovelace", false)
	a.Attributes["groups"] = []string{"a ", "b ", "c ", "d ", "e "}
	if out, err := e.svc.SignIn(context.Background(), e.idp("oidc", ""), a, ""); err != nil || out.Session == nil {
		t.Fatalf("sign-in: %v %+v", err, out)
	}
	got := logs.FilterMessageSnippet("invisible character at an end").All()
	if len(got) != 1 {
		t.Fatalf("%d warnings, want 1", len(got))
	}
	if g := fmt.Sprint(got[0].ContextMap()["groups"]); g != `["a " "b " "c "]` {
		t.Errorf("groups named %s, want the first three", g)
	}
}
