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

// TestIdPLogoutUsesMessageOnce: a logout message's single-use ID is
// used up in the transaction that ends its sessions, on a real store. A
// message whose sessions could not be ended stays unused, so the IdP's
// retry ends them; once used, the message ends nothing more, not even the
// sessions signed in since.
func TestIdPLogoutUsesMessageOnce(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sessions := session.New(db, session.Config{}, nil, nil)
	u := &store.User{Email: "ada@example.com", Active: true}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	signIn := func() string {
		token, _, err := sessions.Create(ctx, u, "okta", store.LogoutInfo{Subject: "sub-ada"})
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	signedIn := func(token string) bool {
		_, err := sessions.Resolve(ctx, token)
		if err != nil && !errors.Is(err, session.ErrNoSession) {
			t.Fatal(err)
		}
		return err == nil
	}
	first, second := signIn(), signIn()
	ender := account.IdPLogout{Accounts: &account.Service{Store: db, Cache: sessions}}
	once := &idp.SingleUse{Kind: "oidc_logout", ID: "okta/jti-1", Until: time.Now().Add(10 * time.Minute), Code: "logout_token_replayed"}

	// Ending fails (a message naming neither subject nor session): the
	// transaction rolls back, and the ID with it.
	if _, err := ender.EndSessions(ctx, "okta", "", "", once); err == nil {
		t.Fatal("a message naming no session was accepted")
	}
	if n, err := ender.EndSessions(ctx, "okta", "sub-ada", "", once); err != nil || n != 2 {
		t.Fatalf("the retry ended %d sessions (%v), want 2", n, err)
	}
	if signedIn(first) || signedIn(second) {
		t.Error("a session survived the logout")
	}

	third := signIn()
	n, err := ender.EndSessions(ctx, "okta", "sub-ada", "", once)
	var le *idp.LoginError
	if !errors.As(err, &le) || le.Code != once.Code || !le.Logout || n != 0 {
		t.Fatalf("the replayed message: %d sessions, %v; want a refusal with %s", n, err, once.Code)
	}
	if !signedIn(third) {
		t.Error("the replayed message ended a session signed in after the logout")
	}
	// Without a single-use ID (front-channel logout, SAML SLO), the
	// sessions simply end.
	if n, err := ender.EndSessions(ctx, "okta", "sub-ada", "", nil); err != nil || n != 1 || signedIn(third) {
		t.Errorf("without a single-use ID: ended %d (%v), want 1", n, err)
	}
}

// TestIdPLogoutUnknownSessionWritesNothing: anyone can name a session
// in a front-channel logout (a GET with a sid); one that names none costs
// a read, not a durable commit.
func TestIdPLogoutUnknownSessionWritesNothing(t *testing.T) {
	ctx := context.Background()
	var commits int
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{OnWrite: func(bolt.WriteHold) { commits++ }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ender := account.IdPLogout{Accounts: &account.Service{Store: db}}
	before := commits
	for i := range 5 {
		if n, err := ender.EndSessions(ctx, "okta", "", fmt.Sprintf("made-up-sid-%d", i), nil); err != nil || n != 0 {
			t.Fatalf("EndSessions of an unknown sid = %d, %v", n, err)
		}
	}
	if commits != before {
		t.Errorf("%d commits for sids that name no session, want 0", commits-before)
	}
}
