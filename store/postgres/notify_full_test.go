package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestNotifyQueueFullAtCommit: PostgreSQL checks for room in its NOTIFY
// queue (8 GB, cluster-wide) only at COMMIT, and refuses a transaction that
// sent a notice there with 54000 when a listener that does not read (a
// frozen instance, anywhere on the cluster) holds the queue full. A
// sign-in that ended the browser's previous session then failed with
// "Sign-in is unavailable" on every instance, since the savepoint in
// BroadcastAtCommit never sees that error. The change must commit on one
// rerun without the notice (told false: the caller broadcasts after the
// commit); a transaction that queued no notice is not rerun, nor is the
// rerun itself.
//
// A deferred constraint trigger stands in for the full queue (filling it
// takes 8 GB): it raises 54000 at COMMIT while a sequence it draws from
// is at most the armed count, so that each refusal outlives the rollback.
func TestNotifyQueueFullAtCommit(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	db := openDSN(t, dsn)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `
		CREATE TABLE test_queue_full (shots int NOT NULL);
		INSERT INTO test_queue_full VALUES (0);
		CREATE SEQUENCE test_queue_full_fired;
		CREATE FUNCTION test_queue_full() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('test_queue_full_fired') <= (SELECT shots FROM test_queue_full) THEN
				RAISE EXCEPTION 'too many notifications in the NOTIFY queue' USING ERRCODE = '54000';
			END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER test_queue_full AFTER INSERT ON sso_sessions
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_queue_full();
	`); err != nil {
		t.Fatal(err)
	}
	arm := func(t *testing.T, shots int) {
		t.Helper()
		if _, err := conn.Exec(ctx, "SELECT setval('test_queue_full_fired', 1, false)"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "UPDATE test_queue_full SET shots = $1", shots); err != nil {
			t.Fatal(err)
		}
	}
	other := openDSN(t, dsn)
	l := listen(t, other)
	if inv := l.next(t, 10*time.Second); !inv.All {
		t.Fatalf("first call %+v, want All", inv)
	}

	for _, tc := range []struct {
		name   string
		notice bool
		shots  int
		// want: the change committed on a second run, not told.
		want bool
		runs int
	}{
		{name: "sign-in, queue full once", notice: true, shots: 1, want: true, runs: 2},
		{name: "sign-in, queue full on the rerun too", notice: true, shots: 2, want: false, runs: 2},
		{name: "no notice", notice: false, shots: 1, want: false, runs: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := &store.User{Email: tc.name + "@x.io", Active: true}
			putUser(t, db, user)
			old := &store.Session{Hash: randomHex(32), UserID: user.ID, IdP: "oidc",
				Created: time.Now(), Expires: time.Now().Add(time.Hour), LastSeen: time.Now()}
			arm(t, 0)
			update(t, db, func(tx store.Tx) error { return tx.PutSession(old) })
			l.quiet(t, 100*time.Millisecond)
			arm(t, tc.shots)

			// A second sign-in in the browser: the new session ends the
			// old one, and the other instances are told at the commit.
			fresh := *old
			fresh.Hash = randomHex(32)
			var runs int
			var told []bool
			err := db.Update(ctx, func(tx store.Tx) error {
				runs++
				if err := tx.DeleteSession(old.Hash); err != nil {
					return err
				}
				if err := tx.PutSession(&fresh); err != nil {
					return err
				}
				if !tc.notice {
					return nil
				}
				ok, err := tx.(store.TxBroadcaster).BroadcastAtCommit(store.Invalidation{Sessions: []string{old.Hash}})
				told = append(told, ok)
				return err
			})
			if runs != tc.runs {
				t.Errorf("fn ran %d times, want %d", runs, tc.runs)
			}
			var written bool
			view(t, db, func(tx store.Tx) error {
				_, err := tx.Session(fresh.Hash)
				written = err == nil
				return nil
			})
			if tc.want {
				if err != nil || !written {
					t.Fatalf("Update: %v (new session written: %v), want it committed on the rerun", err, written)
				}
				if len(told) != 2 || !told[0] || told[1] {
					t.Errorf("told %v, want [true false]: the rerun must leave the broadcast to the caller", told)
				}
				// The refused notice was rolled back with the first run.
				l.quiet(t, 300*time.Millisecond)
				return
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "54000" {
				t.Fatalf("Update: %v, want the 54000 at COMMIT returned", err)
			}
			if written {
				t.Error("the failed Update wrote the new session")
			}
		})
	}
}
