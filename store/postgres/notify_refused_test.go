package postgres

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestNoticeRefusedInsideTransaction: a pg_notify the server refuses (the
// instance's role may not run it) does not cost the change it was to
// announce: BroadcastAtCommit reports it will not tell, the transaction
// commits what it wrote, and a notice that goes through is delivered at
// the commit. Failing the change instead made every re-sign-in fail
// with "Sign-in is unavailable" while a sign-out, which broadcasts after
// its commit, went through.
func TestNoticeRefusedInsideTransaction(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
		t.Skipf("pgtest gave a DSN this test cannot rewrite: %q", dsn)
	}
	name := strings.TrimPrefix(u.Path, "/")
	role := name + "_role"
	superuser := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	superuser("CREATE ROLE " + role + " LOGIN")
	t.Cleanup(func() {
		superuser("REASSIGN OWNED BY " + role + " TO CURRENT_USER; DROP OWNED BY " + role + "; DROP ROLE " + role)
	})
	superuser("ALTER DATABASE " + name + " OWNER TO " + role)
	superuser("ALTER SCHEMA public OWNER TO " + role)
	u.User = url.User(role)
	db := openDSN(t, u.String())
	l := listen(t, openDSN(t, dsn))
	if inv := l.next(t, 10*time.Second); !inv.All {
		t.Fatalf("first call %+v, want All", inv)
	}

	tellAndWrite := func(id string) bool {
		t.Helper()
		var told bool
		update(t, db, func(tx store.Tx) error {
			if err := tx.PutUser(&store.User{ID: id, Active: true}); err != nil {
				return err
			}
			var err error
			told, err = tx.(store.TxBroadcaster).BroadcastAtCommit(store.Invalidation{Users: []string{id}})
			return err
		})
		view(t, db, func(tx store.Tx) error {
			if _, err := tx.User(id); err != nil {
				t.Errorf("user %s after the commit: %v", id, err)
			}
			return nil
		})
		return told
	}

	if !tellAndWrite("u-told") {
		t.Fatal("a notice the server takes: reported as not told")
	}
	if inv := l.next(t, 10*time.Second); len(inv.Users) != 1 || inv.Users[0] != "u-told" {
		t.Errorf("heard %+v, want u-told", inv)
	}

	superuser("REVOKE EXECUTE ON FUNCTION pg_notify(text, text) FROM PUBLIC")
	if tellAndWrite("u-refused") {
		t.Error("a refused notice: reported as told")
	}
	l.quiet(t, 300*time.Millisecond)
}
