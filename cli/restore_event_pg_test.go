package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres"
)

// refuseEvent makes the database at dsn refuse the INSERT of audit events
// of typ, as a full disk (53100) would at that moment, until the returned
// func drops the trigger.
func refuseEvent(t *testing.T, dsn, typ string) (allow func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, `CREATE FUNCTION test_refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.type = '`+typ+`' THEN
				RAISE EXCEPTION 'could not extend file (simulated)' USING ERRCODE = '53100';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER test_refuse_event BEFORE INSERT ON sso_audit FOR EACH ROW EXECUTE FUNCTION test_refuse_event();`)
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := conn.Exec(ctx, `DROP TRIGGER test_refuse_event ON sso_audit`); err != nil {
			t.Fatal(err)
		}
	}
}

// markedUnfinished reports whether db holds the mark of an import that did
// not finish, which Caddy and the other commands refuse to open.
func markedUnfinished(t *testing.T, db *postgres.DB) bool {
	t.Helper()
	var marked bool
	err := db.View(context.Background(), func(tx store.Tx) error {
		marked = false
		return tx.ForEachSecret(func(name string, _ []byte) error {
			marked = marked || name == store.UnfinishedImport
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return marked
}

// TestCLIReplacedEventRefusedPostgres: a restore or migrate into
// PostgreSQL whose store.restored / store.migrated event the database
// refuses. The event used to be written in a transaction after the
// import's last, so the command said it failed ("record the store.restored
// event"), printed neither "restored from" nor what the restore undid,
// and left a complete, openable database without the event; the same
// command again was then refused as a database that holds records. Now
// the event commits with the import's end: the command fails, the database
// stays marked unfinished (nothing opens it), and the rerun the error asks
// for finishes, with the event.
func TestCLIReplacedEventRefusedPostgres(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		typ  string
		// setup returns the target's DSN and store, what it must hold
		// afterwards less the event, and the command that replaces its
		// content (force: over what it holds).
		setup func(t *testing.T) (string, *postgres.DB, string, func(t *testing.T, dsn string, force bool) (string, error))
	}{
		{
			name: "restore --force over the database backed up",
			typ:  account.EventStoreRestored,
			setup: func(t *testing.T) (string, *postgres.DB, string, func(*testing.T, string, bool) (string, error)) {
				dsn, db, _, file := backedUpPG(t)
				want := sourceContents(contents(t, db))
				gone := lastUserOf(t, db) // a change the restore undoes
				if err := db.Update(ctx, func(tx store.Tx) error { return tx.DeleteUser(gone.ID) }); err != nil {
					t.Fatal(err)
				}
				return dsn, db, want, restoreInto(file)
			},
		},
		{
			name: "restore into an empty database",
			typ:  account.EventStoreRestored,
			setup: func(t *testing.T) (string, *postgres.DB, string, func(*testing.T, string, bool) (string, error)) {
				_, src, _, file := backedUpPG(t)
				want := sourceContents(contents(t, src))
				dsn, db := openPG(t)
				return dsn, db, want, restoreInto(file)
			},
		},
		{
			name: "migrate into an empty database",
			typ:  account.EventStoreMigrated,
			setup: func(t *testing.T) (string, *postgres.DB, string, func(*testing.T, string, bool) (string, error)) {
				srcDSN, src := openPG(t)
				fillJIT(t, src, "m-", 50, sourceKeys)
				want := sourceContents(contents(t, src))
				dsn, db := openPG(t)
				return dsn, db, want, func(t *testing.T, dsn string, force bool) (string, error) {
					args := []string{"migrate", "--from=postgres:" + srcDSN, "--to=postgres:" + dsn}
					if force {
						args = append(args, "--force")
					}
					return cli(ctx, args...)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn, db, want, run := tc.setup(t)
			force := strings.Contains(tc.name, "--force")
			allow := refuseEvent(t, dsn, tc.typ)
			out, err := run(t, dsn, force)
			if err == nil {
				t.Fatalf("the command succeeded although the database refused its %s event:\n%s", tc.typ, out)
			}
			if strings.Contains(out, "restored from") || strings.Contains(out, "copied ") {
				t.Errorf("a failed command said it was done:\n%s", out)
			}
			// Reported failed: the database must not be a finished one
			// without its event.
			if !markedUnfinished(t, db) {
				t.Fatalf("reported failed (%v), yet the database is not marked unfinished: a replaced store without its %s event", err, tc.typ)
			}
			if lout, lerr := cli(ctx, "users", "list", "--store=postgres:"+dsn); lerr == nil {
				t.Errorf("users list opened the unfinished database:\n%s", lout)
			}
			if !strings.Contains(err.Error(), "run it again, forced") {
				t.Errorf("the error does not say how to finish: %v", err)
			}

			// The cause gone, the rerun the error asks for finishes.
			allow()
			out, err = run(t, dsn, true)
			if err != nil {
				t.Fatalf("the rerun, forced: %v\n%s", err, out)
			}
			if markedUnfinished(t, db) {
				t.Error("still marked unfinished after the rerun")
			}
			if got := replacedContents(t, db, tc.typ); got != want {
				t.Errorf("after the rerun the database is not the source plus one %s event", tc.typ)
			}
		})
	}
}

// restoreInto runs restore of file into the PostgreSQL database at dsn.
func restoreInto(file string) func(t *testing.T, dsn string, force bool) (string, error) {
	return func(t *testing.T, dsn string, force bool) (string, error) {
		args := []string{"restore", file, "--store=postgres:" + dsn}
		if force {
			args = append(args, "--force")
		}
		return cli(context.Background(), args...)
	}
}
