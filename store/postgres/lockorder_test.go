package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// lockOrderSessions writes n sessions of one user, in a shuffled order so
// that the table's physical order (which a plan's scan follows) is not
// the hashes' order, and returns their hashes.
func lockOrderSessions(t *testing.T, db *DB, n int) (string, []string) {
	t.Helper()
	u := &store.User{}
	putUser(t, db, u)
	hashes := make([]string, n)
	for i := range hashes {
		hashes[i] = fmt.Sprintf("h%04d", i)
	}
	order := rand.Perm(n)
	update(t, db, func(tx store.Tx) error {
		for _, i := range order {
			if err := tx.PutSession(&store.Session{Hash: hashes[i], UserID: u.ID, Expires: time.Now().Add(time.Hour)}); err != nil {
				return err
			}
		}
		return nil
	})
	return u.ID, hashes
}

// touchesAt are the last-seen times of hashes at round, in a shuffled
// order: the caller's order must not matter.
func touchesAt(hashes []string, round int) []store.SessionTouch {
	touches := make([]store.SessionTouch, len(hashes))
	for i, h := range hashes {
		touches[i] = store.SessionTouch{Hash: h, At: time.Unix(0, int64(round+1)*1e9+int64(i))}
	}
	rand.Shuffle(len(touches), func(i, j int) { touches[i], touches[j] = touches[j], touches[i] })
	return touches
}

// TestConcurrentLastSeenFlushesDoNotDeadlock: with a round-robin balancer
// every active session is cached on every instance, and each instance
// flushes its last-seen times once a minute (instances started together
// flush together). Two flushes of the same sessions must not deadlock:
// each deadlock costs PostgreSQL's deadlock_timeout (1 s) with the rows
// locked (a sign-out of one of those sessions waits) and a rerun.
func TestConcurrentLastSeenFlushesDoNotDeadlock(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	const n, rounds = 300, 10
	_, hashes := lockOrderSessions(t, a, n)
	start := time.Now()
	for round := range rounds {
		var wg sync.WaitGroup
		for _, db := range []*DB{a, b} {
			wg.Go(func() {
				touches := touchesAt(hashes, round)
				if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.TouchSessions(touches) }); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if r := a.Reruns() + b.Reruns(); r > 0 {
		t.Errorf("%d reruns (deadlocks) in %d rounds of two concurrent flushes of the same %d sessions, %v", r, rounds, n, time.Since(start))
	}
	// Every session holds the last round's time: the ordered lock loses no
	// touch and moves none back.
	view(t, a, func(tx store.Tx) error {
		for i, h := range hashes {
			s, err := tx.Session(h)
			if err != nil {
				return err
			}
			if want := time.Unix(0, int64(rounds)*1e9+int64(i)); !s.LastSeen.Equal(want) {
				t.Errorf("%s: last seen %v, want %v", h, s.LastSeen, want)
			}
		}
		return nil
	})
}

// TestLastSeenFlushDuringSignOutsDoesNotDeadlock: an instance flushes the
// last-seen times of a user's sessions while another ends all of them
// (users sessions revoke, a deactivation) or sweeps them as expired. The
// deletions lock the rows in the flush's order (the hashes'), not in the
// table's, so one waits for the other.
func TestLastSeenFlushDuringSignOutsDoesNotDeadlock(t *testing.T) {
	const n, rounds = 300, 6
	for _, tc := range []struct {
		name string
		del  func(tx store.Tx, userID string) ([]string, error)
	}{
		{"DeleteUserSessions", func(tx store.Tx, userID string) ([]string, error) { return tx.DeleteUserSessions(userID) }},
		{"DeleteExpiredSessions", func(tx store.Tx, _ string) ([]string, error) {
			return tx.DeleteExpiredSessions(time.Now().Add(2*time.Hour), 0, n)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			a, b := openDSN(t, dsn), openDSN(t, dsn)
			start := time.Now()
			for round := range rounds {
				userID, hashes := lockOrderSessions(t, a, n)
				var wg sync.WaitGroup
				wg.Go(func() {
					touches := touchesAt(hashes, round)
					if err := a.Update(context.Background(), func(tx store.Tx) error { return tx.TouchSessions(touches) }); err != nil {
						t.Error(err)
					}
				})
				var gone []string
				wg.Go(func() {
					if err := b.Update(context.Background(), func(tx store.Tx) (err error) {
						gone, err = tc.del(tx, userID)
						return err
					}); err != nil {
						t.Error(err)
					}
				})
				wg.Wait()
				if len(gone) != n {
					t.Fatalf("round %d: deleted %d sessions, want %d", round, len(gone), n)
				}
			}
			if r := a.Reruns() + b.Reruns(); r > 0 {
				t.Errorf("%d reruns (deadlocks) in %d rounds of a flush of %d sessions during their deletion, %v", r, rounds, n, time.Since(start))
			}
		})
	}
}

// TestSweepSparesSessionTouchedMeanwhile: a sweep that finds a session
// idle locks it and checks again; a flush that moved its last use forward
// first, while the sweep waited, keeps it.
func TestSweepSparesSessionTouchedMeanwhile(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	u := &store.User{}
	putUser(t, a, u)
	t0 := time.Now().Add(-time.Hour)
	update(t, a, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "idle", UserID: u.ID, Created: t0, LastSeen: t0, Expires: time.Now().Add(time.Hour)})
	})
	ctx := context.Background()
	touched, release := make(chan struct{}), make(chan struct{})
	flushed := make(chan error, 1)
	go func() {
		flushed <- a.Update(ctx, func(tx store.Tx) error {
			if err := tx.TouchSessions([]store.SessionTouch{{Hash: "idle", At: time.Now()}}); err != nil {
				return err
			}
			close(touched)
			<-release
			return nil
		})
	}()
	<-touched
	swept := make(chan []string, 1)
	go func() {
		var gone []string
		err := b.Update(ctx, func(tx store.Tx) (err error) {
			gone, err = tx.DeleteExpiredSessions(time.Now(), 30*time.Minute, 10)
			return err
		})
		if err != nil {
			t.Error(err)
		}
		swept <- gone
	}()
	time.Sleep(300 * time.Millisecond) // the sweep waits for the flush's lock
	close(release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if gone := <-swept; len(gone) != 0 {
		t.Errorf("the sweep deleted %v, used since it looked", gone)
	}
}

// TestSessionLockOrderInterleaving fixes the interleaving that the two
// tests above only hope to meet: instance A flushes the last-seen time of
// a user's lower session hash and holds its transaction open; instance B
// then runs a statement over both of the user's sessions (a flush of both,
// the deletion of every session of the user, an expiry sweep) and waits
// for A's lock (pg_stat_activity says so); only then does A, in the same
// transaction, flush the higher hash. The sessions are written higher hash
// first, so that a plan that visits them in the table's order reaches the
// higher one first: B locking in that order would hold it and wait for the
// lower one, while A waits for it, a deadlock (40P01) that PostgreSQL
// breaks after deadlock_timeout by failing one of them. Locking in hash
// order, B holds nothing while it waits, and A goes on and commits, then B.
func TestSessionLockOrderInterleaving(t *testing.T) {
	const lo, hi = "h1", "h2"
	for _, tc := range []struct {
		name string
		// second is B's statement over both sessions of userID.
		second func(tx store.Tx, userID string) error
		// gone is whether it deletes them.
		gone bool
	}{
		{"TouchSessions", func(tx store.Tx, _ string) error {
			at := time.Now().Add(time.Hour)
			return tx.TouchSessions([]store.SessionTouch{{Hash: hi, At: at}, {Hash: lo, At: at}})
		}, false},
		{"DeleteUserSessions", func(tx store.Tx, userID string) error {
			_, err := tx.DeleteUserSessions(userID)
			return err
		}, true},
		{"DeleteExpiredSessions", func(tx store.Tx, _ string) error {
			_, err := tx.DeleteExpiredSessions(time.Now().Add(2*time.Hour), 0, 10)
			return err
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			a := openDSN(t, dsn)
			b := openConfig(t, Config{DSN: dsn, StatementTimeout: time.Minute})
			u := &store.User{}
			putUser(t, a, u)
			for _, h := range []string{hi, lo} { // the table's order: hi first
				update(t, a, func(tx store.Tx) error {
					return tx.PutSession(&store.Session{Hash: h, UserID: u.ID, Expires: time.Now().Add(time.Hour)})
				})
			}
			ctx := context.Background()
			var mu sync.Mutex
			var deadlocked []string // who met 40P01, rerun or not
			met := func(who string, err error) error {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
					mu.Lock()
					deadlocked = append(deadlocked, who)
					mu.Unlock()
				}
				return err
			}
			secondDone := make(chan error, 1)
			var once sync.Once
			err := a.Update(ctx, func(tx store.Tx) error {
				if err := tx.TouchSessions([]store.SessionTouch{{Hash: lo, At: time.Now()}}); err != nil {
					return met("A (first flush)", err)
				}
				once.Do(func() {
					go func() {
						secondDone <- b.Update(ctx, func(tx store.Tx) error { return met("B", tc.second(tx, u.ID)) })
					}()
					waitForLockWait(t, a, secondDone)
				})
				return met("A (second flush)", tx.TouchSessions([]store.SessionTouch{{Hash: hi, At: time.Now()}}))
			})
			bErr := <-secondDone
			t.Logf("A: %v; B: %v; 40P01 met by %v; reruns A %d, B %d", err, bErr, deadlocked, a.Reruns(), b.Reruns())
			if err != nil || bErr != nil {
				t.Fatalf("A: %v; B: %v", err, bErr)
			}
			if len(deadlocked) > 0 || a.Reruns()+b.Reruns() > 0 {
				t.Errorf("%v met a deadlock (40P01) between a flush holding %s and %s over %s and %s: B locked them out of hash order",
					deadlocked, lo, tc.name, lo, hi)
			}
			view(t, a, func(tx store.Tx) error {
				ss, err := tx.UserSessions(u.ID)
				if tc.gone && len(ss) != 0 {
					t.Errorf("after B's %s: %d sessions left, want none", tc.name, len(ss))
				}
				if !tc.gone && len(ss) != 2 {
					t.Errorf("after B's %s: %d sessions, want 2", tc.name, len(ss))
				}
				return err
			})
		})
	}
}
