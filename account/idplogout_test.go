package account_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// logoutEnv is one user's sessions on a real bbolt store, for the tests of
// IdPLogout: commits counts the store's durable commits.
type logoutEnv struct {
	t        *testing.T
	db       *bolt.DB
	sessions *session.Manager
	user     *store.User
	commits  int
}

func newLogoutEnv(t *testing.T) *logoutEnv {
	e := &logoutEnv{t: t, user: &store.User{Email: "ada@example.com", Active: true}}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{OnWrite: func(bolt.WriteHold) { e.commits++ }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db, e.sessions = db, session.New(db, session.Config{}, nil, nil)
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(e.user) }); err != nil {
		t.Fatal(err)
	}
	return e
}

// signIn makes a session of the user at idpName, with what the IdP's
// logout names it by.
func (e *logoutEnv) signIn(idpName, subject, sid string) string {
	token, _, err := e.sessions.Create(context.Background(), e.user, idpName, store.LogoutInfo{Subject: subject, SessionID: sid})
	if err != nil {
		e.t.Fatal(err)
	}
	return token
}

func (e *logoutEnv) signedIn(token string) bool {
	_, err := e.sessions.Resolve(context.Background(), token)
	if err != nil && !errors.Is(err, session.ErrNoSession) {
		e.t.Fatal(err)
	}
	return err == nil
}

// TestIdPLogoutUsesMessageOnce: a logout message's single-use ID is
// used up in the transaction that ends its sessions, on a real store. A
// message whose sessions could not be ended stays unused, so the IdP's
// retry ends them; once used, the message ends nothing more, not even the
// sessions signed in since.
func TestIdPLogoutUsesMessageOnce(t *testing.T) {
	ctx := context.Background()
	e := newLogoutEnv(t)
	db, sessions := e.db, e.sessions
	signIn := func() string { return e.signIn("okta", "sub-ada", "") }
	signedIn := e.signedIn
	first, second := signIn(), signIn()
	ender := account.IdPLogout{Accounts: &account.Service{Store: db, Cache: sessions}}
	once := &idp.SingleUse{Kind: "oidc_logout", ID: "okta/jti-1", Until: time.Now().Add(10 * time.Minute), Code: "logout_token_replayed"}

	// Ending fails (a message naming neither subject nor session): the
	// transaction rolls back, and the ID with it.
	if _, err := ender.EndSessions(ctx, "okta", "", nil, once); err == nil {
		t.Fatal("a message naming no session was accepted")
	}
	if n, err := ender.EndSessions(ctx, "okta", "sub-ada", nil, once); err != nil || n != 2 {
		t.Fatalf("the retry ended %d sessions (%v), want 2", n, err)
	}
	if signedIn(first) || signedIn(second) {
		t.Error("a session survived the logout")
	}

	third := signIn()
	n, err := ender.EndSessions(ctx, "okta", "sub-ada", nil, once)
	var le *idp.LoginError
	if !errors.As(err, &le) || le.Code != once.Code || !le.Logout || n != 0 {
		t.Fatalf("the replayed message: %d sessions, %v; want a refusal with %s", n, err, once.Code)
	}
	if !signedIn(third) {
		t.Error("the replayed message ended a session signed in after the logout")
	}
	// Without a single-use ID (front-channel logout, SAML SLO), the
	// sessions simply end.
	if n, err := ender.EndSessions(ctx, "okta", "sub-ada", nil, nil); err != nil || n != 1 || signedIn(third) {
		t.Errorf("without a single-use ID: ended %d (%v), want 1", n, err)
	}
}

// TestIdPLogoutUnknownSessionWritesNothing: anyone can name a session
// in a front-channel logout (a GET with a sid); one that names none costs
// a read, not a durable commit.
func TestIdPLogoutUnknownSessionWritesNothing(t *testing.T) {
	ctx := context.Background()
	e := newLogoutEnv(t)
	db := e.db
	ender := account.IdPLogout{Accounts: &account.Service{Store: db}}
	before := e.commits
	for i := range 5 {
		if n, err := ender.EndSessions(ctx, "okta", "", []string{fmt.Sprintf("made-up-sid-%d", i)}, nil); err != nil || n != 0 {
			t.Fatalf("EndSessions of an unknown sid = %d, %v", n, err)
		}
	}
	if e.commits != before {
		t.Errorf("%d commits for sids that name no session, want 0", e.commits-before)
	}
}

// TestIdPLogoutSeveralSessionIDs: a message naming several session IDs (a
// SAML LogoutRequest with several SessionIndex values) ends all of them,
// and only them, in the one transaction that uses the message up; sent
// again it ends nothing. Without a subject, each session ID names its
// sessions; an empty session ID narrows nothing.
func TestIdPLogoutSeveralSessionIDs(t *testing.T) {
	ctx := context.Background()
	e := newLogoutEnv(t)
	db, sessions, signIn, signedIn := e.db, e.sessions, e.signIn, e.signedIn
	a1, a2, a3 := signIn("okta", "sub-ada", "idx-1"), signIn("okta", "sub-ada", "idx-2"), signIn("okta", "sub-ada", "idx-3")
	bob := signIn("okta", "sub-bob", "idx-1")    // same session ID, another subject
	entra := signIn("entra", "sub-ada", "idx-2") // same subject and session ID, another IdP
	acc := &account.Service{Store: db, Cache: sessions}
	ender := account.IdPLogout{Accounts: acc}
	once := &idp.SingleUse{Kind: "saml_id", ID: "okta/LogoutRequest:id-1", Until: time.Now().Add(10 * time.Minute), Code: "saml_replayed"}

	before := e.commits
	n, err := ender.EndSessions(ctx, "okta", "sub-ada", []string{"idx-2", "idx-1", "idx-2", "idx-unknown"}, once)
	if err != nil || n != 2 {
		t.Fatalf("ended %d sessions (%v), want 2", n, err)
	}
	if e.commits-before != 1 {
		t.Errorf("%d e.commits, want 1", e.commits-before)
	}
	if signedIn(a1) || signedIn(a2) {
		t.Error("a named session survived")
	}
	if !signedIn(a3) || !signedIn(bob) || !signedIn(entra) {
		t.Error("a session the message did not name ended")
	}
	var events []store.Event
	if err := db.View(ctx, func(tx store.Tx) error {
		events, err = tx.AuditEvents(store.AuditQuery{Type: store.EventSessionLoggedOut, Limit: 10})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Reason != account.ReasonIdPLogout {
		t.Errorf("logout events = %+v, want 2 with reason %s", events, account.ReasonIdPLogout)
	}

	a1 = signIn("okta", "sub-ada", "idx-1")
	n, err = ender.EndSessions(ctx, "okta", "sub-ada", []string{"idx-1", "idx-2"}, once)
	var le *idp.LoginError
	if !errors.As(err, &le) || le.Code != once.Code || n != 0 || !signedIn(a1) {
		t.Fatalf("the message again: %d sessions, %v; want a refusal with %s and nothing ended", n, err, once.Code)
	}

	// Without a subject: each session ID, of any subject of this IdP, once
	// however often it is named.
	if n, err := ender.EndSessions(ctx, "okta", "", []string{"idx-3", "idx-1", "idx-3"}, nil); err != nil || n != 3 ||
		signedIn(a1) || signedIn(a3) || signedIn(bob) || !signedIn(entra) {
		t.Fatalf("by session IDs alone: ended %d (%v), want 3", n, err)
	}
	// An empty session ID narrows nothing: every session of the subject.
	e1, e2 := entra, signIn("entra", "sub-ada", "idx-5")
	if n, err := ender.EndSessions(ctx, "entra", "sub-ada", []string{"idx-9", ""}, nil); err != nil || n != 2 || signedIn(e1) || signedIn(e2) {
		t.Fatalf("with an empty session ID: ended %d (%v), want 2", n, err)
	}
	// Session IDs that name nothing cost a read, not a commit.
	before = e.commits
	if n, err := ender.EndSessions(ctx, "okta", "", []string{"made-up-1", "made-up-2"}, nil); err != nil || n != 0 {
		t.Fatalf("unknown session IDs: %d, %v", n, err)
	}
	if e.commits != before {
		t.Errorf("%d e.commits for session IDs that name no session, want 0", e.commits-before)
	}
	if _, err := ender.EndSessions(ctx, "okta", "", []string{""}, nil); err == nil {
		t.Error("a message naming neither a subject nor a session ID was accepted")
	}
}
