package portable

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// TestSessionAuthTimeCarried: a session's AuthTime goes into a backup (as
// the session record's auth_time) and comes back from a restore, and a
// copy between backends (bolt to PostgreSQL by restore, back by migrate)
// keeps it; a session without one stays without.
func TestSessionAuthTimeCarried(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 11, 58, 0, 123_000_000, time.UTC)
	t0 := at.Add(2 * time.Minute)
	first := backendtest.OpenBolt(t)
	u := &store.User{Email: "ada@example.com", IdP: "okta", Active: true, Source: store.SourceJIT, Created: t0, Updated: t0}
	err := first.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		for hash, a := range map[string]time.Time{"with": at, "without": {}} {
			if err := tx.PutSession(&store.Session{Hash: hash, UserID: u.ID, IdP: "okta", Created: t0,
				Expires: t0.Add(time.Hour), LastSeen: t0, AuthTime: a}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := dump(t, first)
	if n := strings.Count(want, `"auth_time":"2026-03-01T11:58:00.123Z"`); n != 1 {
		t.Fatalf("the backup holds %d auth_time, want 1:\n%s", n, want)
	}
	check := func(step string, st store.Store) {
		t.Helper()
		if d, _ := dump(t, st); d != want {
			t.Errorf("%s differs:\n%s", step, storetest.FirstLineDiff(want, d, 2))
		}
		_ = st.View(ctx, func(tx store.Tx) error {
			for hash, w := range map[string]time.Time{"with": at, "without": {}} {
				s, err := tx.Session(hash)
				if err != nil || !s.AuthTime.Equal(w) || s.AuthTime.IsZero() != w.IsZero() {
					t.Errorf("%s: session %s: %+v, %v; want AuthTime %v", step, hash, s, err, w)
				}
			}
			return nil
		})
	}
	pg := openPostgres(t)
	if _, err := Import(ctx, pg, bytes.NewReader(export(t, first)), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	check("PostgreSQL restored from the bolt backup", pg)
	last := backendtest.OpenBolt(t)
	if _, err := Migrate(ctx, pg, last, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	check("bolt migrated from PostgreSQL", last)
}
