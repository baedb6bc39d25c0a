package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestCommitLostConnection: the connection is lost once COMMIT is on its
// way, and the server commits. Update must not report it as a failure that
// wrote nothing (a sign-in page "Nothing was changed" while the user,
// session and audit event exist): it says the outcome is unknown.
func TestCommitLostConnection(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	direct := openDSN(t, dsn)
	cut := pgtest.NewCommitCutter(t, dsn, nil)
	db := openDSN(t, cut.DSN)
	u := &store.User{Email: "ada@example.com", Active: true, IdP: "okta", ExternalID: "ada", Source: store.SourceJIT}
	err := db.Update(context.Background(), func(tx store.Tx) error {
		cut.Arm()
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.Audit(store.Event{Type: store.EventLoginSucceeded, UserID: u.ID})
	})
	if !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Errorf("Update with the connection lost during COMMIT = %v; want store.ErrOutcomeUnknown", err)
	}
	if err == nil || strings.Contains(err.Error(), "password") {
		t.Fatalf("Update = %v; want the lost connection reported", err)
	}
	// The server committed: the change is there for the next reader.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found error
		view(t, direct, func(tx store.Tx) error { _, found = tx.User(u.ID); return nil })
		if found == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user the lost COMMIT carried is not in the database: %v", found)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The handle goes on with a new connection.
	putUser(t, db, &store.User{Email: "bob@example.com", Active: true})
}
