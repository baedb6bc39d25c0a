package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// A database a version 2 build made, with sessions in it, is migrated to
// the current version on Open: its sessions read back with no AuthTime
// (the IdP's word was not kept then) and everything else as stored; a new
// session keeps its AuthTime; and a session an instance of the previous
// release writes during a rolling upgrade (its INSERT names no
// auth_time_ns) reads back without one.
func TestMigrateFromVersion2SessionAuthTime(t *testing.T) {
	ctx := context.Background()
	dsn, conn := databaseAt(t, 2)
	u := store.User{ID: "u-ada", IdP: "corp", Email: "ada@example.com", Active: true, Source: store.SourceJIT}
	data, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	// As version 2 wrote them: the columns of its sessionColumns.
	const v2Insert = `INSERT INTO sso_sessions (hash, user_id, idp, created_ns, expires_ns, last_seen_ns, subject, subject_format, session_id)
		VALUES ($1, 'u-ada', 'corp', $2, $3, $2, 'sub-ada', '', $4)`
	if _, err := conn.Exec(ctx, `INSERT INTO sso_users (id, idp, email_key, data) VALUES ('u-ada', 'corp', 'ada@example.com', $1)`, data); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, v2Insert, "old", t0.UnixNano(), t0.Add(8*time.Hour).UnixNano(), "sid-old"); err != nil {
		t.Fatal(err)
	}

	db := openDSN(t, dsn)
	var version int
	if err := conn.QueryRow(ctx, "SELECT version FROM sso_schema").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != SchemaVersion || SchemaVersion < 3 {
		t.Fatalf("after Open: schema version %d, want %d (at least 3)", version, SchemaVersion)
	}

	at := time.Date(2026, 6, 1, 8, 59, 30, 250_000_000, time.UTC)
	update(t, db, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "new", UserID: u.ID, IdP: "corp", Created: t0, Expires: t0.Add(time.Hour),
			LastSeen: t0, AuthTime: at, Logout: store.LogoutInfo{Subject: "sub-ada", SessionID: "sid-new"}})
	})
	// An instance of the previous release, still running on the migrated database.
	if _, err := conn.Exec(ctx, v2Insert, "rolling", t0.UnixNano(), t0.Add(8*time.Hour).UnixNano(), "sid-rolling"); err != nil {
		t.Fatalf("a version 2 INSERT on the migrated schema: %v", err)
	}

	want := map[string]time.Time{"old": {}, "new": at, "rolling": {}}
	view(t, db, func(tx store.Tx) error {
		ss, err := tx.UserSessions(u.ID)
		if err != nil {
			return err
		}
		if len(ss) != len(want) {
			t.Errorf("UserSessions: %d sessions, want %d", len(ss), len(want))
		}
		for _, s := range ss {
			if w := want[s.Hash]; !s.AuthTime.Equal(w) || s.AuthTime.IsZero() != w.IsZero() {
				t.Errorf("session %s: AuthTime %v, want %v", s.Hash, s.AuthTime, w)
			}
		}
		old, err := tx.Session("old")
		if err != nil {
			return err
		}
		if !old.Created.Equal(t0) || !old.Expires.Equal(t0.Add(8*time.Hour)) || old.Logout.SessionID != "sid-old" {
			t.Errorf("the version 2 session reads back as %+v", old)
		}
		return nil
	})
}
