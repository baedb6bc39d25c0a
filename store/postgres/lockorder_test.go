package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
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

// interleave runs inA in one transaction of instance a, which calls hold
// where it holds the locks under test; the first hold starts inB in a
// transaction of instance b and returns once b waits for one of a's locks
// (pg_stat_activity), and a goes on. It fails the test when either
// transaction fails, and when either met a deadlock (40P01) on the way,
// rerun or not, saying why: what locked out of order against what.
func interleave(t *testing.T, a, b *DB, inA func(tx store.Tx, hold func()) error, inB func(store.Tx) error, why string) {
	t.Helper()
	ctx := context.Background()
	var deadlocks deadlockLog // who met 40P01, rerun or not
	bDone := make(chan error, 1)
	var once sync.Once
	hold := func() {
		once.Do(func() {
			go func() {
				bDone <- b.Update(ctx, func(tx store.Tx) error { return deadlocks.saw("B", inB(tx)) })
			}()
			waitForLockWait(t, a, bDone)
		})
	}
	aErr := a.Update(ctx, func(tx store.Tx) error { return deadlocks.saw("A", inA(tx, hold)) })
	neverHeld := false
	once.Do(func() { neverHeld = true }) // a no-op once hold ran
	if neverHeld {
		t.Fatalf("A: %v, without holding: B never ran", aErr)
	}
	bErr := <-bDone
	t.Logf("A: %v; B: %v; 40P01 met by %v; reruns A %d, B %d", aErr, bErr, &deadlocks, a.Reruns(), b.Reruns())
	if aErr != nil || bErr != nil {
		t.Fatalf("A: %v; B: %v", aErr, bErr)
	}
	if deadlocks.count() > 0 || a.Reruns()+b.Reruns() > 0 {
		t.Errorf("%v met a deadlock (40P01): %s", &deadlocks, why)
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
			a, b := twoInstances(t)
			u := &store.User{}
			putUser(t, a, u)
			for _, h := range []string{hi, lo} { // the table's order: hi first
				update(t, a, func(tx store.Tx) error {
					return tx.PutSession(&store.Session{Hash: h, UserID: u.ID, Expires: time.Now().Add(time.Hour)})
				})
			}
			interleave(t, a, b, func(tx store.Tx, hold func()) error {
				if err := tx.TouchSessions([]store.SessionTouch{{Hash: lo, At: time.Now()}}); err != nil {
					return err
				}
				hold()
				return tx.TouchSessions([]store.SessionTouch{{Hash: hi, At: time.Now()}})
			}, func(tx store.Tx) error { return tc.second(tx, u.ID) },
				fmt.Sprintf("between a flush holding %s and %s over %s and %s: B locked them out of hash order", lo, tc.name, lo, hi))
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

// TestUserKeyChangeLockOrderInterleaving holds the lock order of a user's
// row (syncMembers) against a change of the user's email, userName or
// externalId, as a SCIM PUT or PATCH of the user or a sign-in with a new
// email claim (update force) makes it: the change reads the user (User:
// FOR NO KEY UPDATE), and its write of a unique column then needs FOR
// UPDATE, which waits for the FOR KEY SHARE lock of any transaction that
// has pointed a row at the user meanwhile (the foreign key). A transaction
// that took that KEY SHARE and then waits for the user's NO KEY UPDATE
// deadlocks with it (40P01), which PostgreSQL breaks after deadlock_timeout
// by failing one, and Update reruns it: a group change that inserted the
// member rows of all its members before it locked them (regroup) did.
//
// The interleaving is fixed with pg_stat_activity: instance A runs its
// first step on user b and holds its transaction open; instance B starts
// its own and waits for A's lock; only then does A go on, in the same
// transaction, and commit. As every transaction here locks a user before
// it points a row at them (lockMembers before the member rows; Write in
// package session reads the user before it inserts the session), B holds
// nothing on b while it waits, and A's write goes through. The display
// name row is the control: a write that keeps every key takes no lock that
// a KEY SHARE holds up.
func TestUserKeyChangeLockOrderInterleaving(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change is what the change of b does to it.
		change func(u *store.User)
		// keyChangeFirst: A changes b (reads it, holds, writes it back)
		// and B is the other transaction; else A is the other one (holds
		// after its write) and B changes b.
		keyChangeFirst bool
		// other is the transaction that points a row at b: a SCIM group
		// change adding b (join) or a sign-in's new session.
		join bool
	}{
		{"group change during an email change", func(u *store.User) { u.Email = "b2@x.io" }, true, true},
		{"group change during a userName change", func(u *store.User) { u.UserName = "b2" }, true, true},
		{"group change during an externalId change", func(u *store.User) { u.ExternalID = "ext-b2" }, true, true},
		{"group change during a display name change", func(u *store.User) { u.DisplayName = "B" }, true, true},
		{"sign-in during an email change", func(u *store.User) { u.Email = "b2@x.io" }, true, false},
		{"email change during a sign-in", func(u *store.User) { u.Email = "b2@x.io" }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := twoInstances(t)
			putUser(t, a, &store.User{ID: "a", IdP: "okta", Email: "a@x.io", UserName: "a", ExternalID: "ext-a", Active: true})
			putUser(t, a, &store.User{ID: "b", IdP: "okta", Email: "b@x.io", UserName: "b", ExternalID: "ext-b", Active: true})
			update(t, a, func(tx store.Tx) error {
				return tx.PutGroup(&store.Group{IdP: "okta", DisplayName: "staff", Members: []string{"a"}})
			})
			sessions := session.New(a, session.Config{}, nil, nil)

			// The change of b in two steps: read, then write back.
			var read *store.User
			readB := func(tx store.Tx) (err error) {
				read, err = tx.User("b")
				return err
			}
			writeB := func(tx store.Tx) error {
				tc.change(read)
				return tx.PutUser(read)
			}
			// The other transaction, in one step.
			other := func(tx store.Tx) error {
				if tc.join {
					g, err := tx.GroupByName("okta", "staff")
					if err != nil {
						return err
					}
					g.Members = append(g.Members, "b")
					return tx.PutGroup(g)
				}
				n, err := sessions.Prepare("okta", store.LogoutInfo{}, nil)
				if err != nil {
					return err
				}
				return n.Write(tx, &store.User{ID: "b"})
			}
			first, then, second := readB, writeB, other
			if !tc.keyChangeFirst {
				first, then, second = other, func(store.Tx) error { return nil }, func(tx store.Tx) error {
					if err := readB(tx); err != nil {
						return err
					}
					return writeB(tx)
				}
			}
			interleave(t, a, b, func(tx store.Tx, hold func()) error {
				if err := first(tx); err != nil {
					return err
				}
				hold()
				return then(tx)
			}, second, "in "+tc.name+": the two locked user b's row in opposite orders")
			view(t, a, func(tx store.Tx) error {
				u, err := tx.User("b")
				if err != nil {
					return err
				}
				want := *u
				tc.change(&want)
				if u.Email != want.Email || u.UserName != want.UserName || u.ExternalID != want.ExternalID || u.DisplayName != want.DisplayName {
					t.Errorf("b afterwards: %q %q %q %q, want the change", u.Email, u.UserName, u.ExternalID, u.DisplayName)
				}
				if inGroup := slices.Contains(u.Groups, "staff"); inGroup != tc.join {
					t.Errorf("b's groups %v; in staff: %v, want %v", u.Groups, inGroup, tc.join)
				}
				wantSessions := 1 // the sign-in's
				if tc.join {
					wantSessions = 0
				}
				ss, err := tx.UserSessions("b")
				if err == nil && len(ss) != wantSessions {
					t.Errorf("b has %d sessions, want %d", len(ss), wantSessions)
				}
				return err
			})
		})
	}
}

// hookStore is a DB whose Update hands fn the transaction wrap makes.
type hookStore struct {
	*DB
	wrap func(store.Tx) store.Tx
}

func (h hookStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return h.DB.Update(ctx, func(tx store.Tx) error { return fn(h.wrap(tx)) })
}

// afterDeleteSessionTx runs after once a DeleteSession has deleted.
type afterDeleteSessionTx struct {
	store.Tx
	after func()
}

func (a afterDeleteSessionTx) DeleteSession(hash string) error {
	err := a.Tx.DeleteSession(hash)
	if err == nil {
		a.after()
	}
	return err
}

// TestSignInEndingSessionsLockOrder: a sign-in (signin.SignIn) ends the
// session the browser came with (here another user's, v's "h2") and then,
// at max_sessions_per_user, the user's oldest ("h1"); or, with a cap lower
// than the user's sessions, several of the user's, oldest first. Each
// deletion locked its session as it went, out of the hash order a flush
// of last-seen times locks in (TestSessionLockOrderInterleaving): the
// sign-in held "h2" and asked for "h1" while a flush of both on another
// instance held "h1" and waited for "h2", a deadlock (40P01) that
// PostgreSQL broke after deadlock_timeout by failing one of them. The
// sign-in is held after its first deletion until the flush waits for its
// lock (pg_stat_activity). The sessions it may end are now locked in one
// statement in hash order before any goes (session.LockEnding,
// store.Tx.LockSessions): the flush waits at "h1", holding nothing.
func TestSignInEndingSessionsLockOrder(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name     string
		cap      int
		sessions []store.Session // Created is when; v's and u's
		previous string
		ended    []string // by the cap
	}{
		{"previous session, then the cap", 2, []store.Session{
			{Hash: "h1", UserID: "u", Created: old},
			{Hash: "h3", UserID: "u", Created: old.Add(time.Minute)},
			{Hash: "h2", UserID: "v", Created: old},
		}, "h2", []string{"h1"}},
		{"the cap ends two, the older the higher hash", 1, []store.Session{
			{Hash: "h1", UserID: "u", Created: old.Add(time.Minute)},
			{Hash: "h2", UserID: "u", Created: old},
		}, "", []string{"h1", "h2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := twoInstances(t)
			putUser(t, a, &store.User{ID: "u", IdP: "okta", Email: "u@x.io", Active: true, Source: store.SourceJIT,
				Links: []store.Link{{IdP: "okta", Subject: "sub-u"}}})
			putUser(t, a, &store.User{ID: "v", IdP: "okta", Email: "v@x.io", Active: true})
			for _, s := range tc.sessions {
				s.LastSeen, s.Expires = s.Created, time.Now().Add(time.Hour)
				update(t, a, func(tx store.Tx) error { return tx.PutSession(&s) })
			}
			m, err := mapping.New("generic", idp.ProtocolOIDC, nil)
			if err != nil {
				t.Fatal(err)
			}
			p := &signin.IdP{Name: "okta", Mapper: m, Rules: provision.Rules{JIT: true}}
			assertion := &idp.Assertion{IdP: "okta", Protocol: idp.ProtocolOIDC, Subject: "sub-u",
				Attributes: map[string][]string{"sub": {"sub-u"}, "given_name": {"U"}, "family_name": {"User"}, "email": {"u@x.io"}}}

			ctx := context.Background()
			var deadlocks deadlockLog
			flushDone := make(chan error, 1)
			var once sync.Once
			hooked := hookStore{DB: a, wrap: func(tx store.Tx) store.Tx {
				return afterDeleteSessionTx{Tx: tx, after: func() {
					once.Do(func() {
						go func() {
							at := time.Now()
							flushDone <- b.Update(ctx, func(tx store.Tx) error {
								return deadlocks.saw("flush", tx.TouchSessions([]store.SessionTouch{{Hash: "h1", At: at}, {Hash: "h2", At: at}}))
							})
						}()
						waitForLockWait(t, a, flushDone)
					})
				}}
			}}
			svc := &signin.Service{Store: hooked, Sessions: session.New(a, session.Config{MaxPerUser: tc.cap}, nil, nil)}
			out, err := svc.SignIn(ctx, p, assertion, tc.previous)
			fErr := <-flushDone
			if err != nil || out.Session == nil {
				t.Fatalf("sign-in: %+v, %v; flush: %v", out, err, fErr)
			}
			ended := slices.Sorted(slices.Values(out.Session.Ended))
			t.Logf("sign-in ended %v (previous %v); flush: %v; 40P01 met by %v; reruns a %d b %d",
				ended, out.EndedPrevious, fErr, deadlocks.met, a.Reruns(), b.Reruns())
			if fErr != nil {
				t.Fatalf("flush: %v", fErr)
			}
			if r := a.Reruns() + b.Reruns(); r > 0 || deadlocks.count() > 0 {
				t.Errorf("%v met a deadlock (40P01), %d reruns: the sign-in deleted the sessions out of hash order, the flush locked them in it", deadlocks.met, r)
			}
			if !slices.Equal(ended, tc.ended) || out.EndedPrevious != (tc.previous != "") {
				t.Errorf("ended %v over the cap, previous %v; want %v, %v", ended, out.EndedPrevious, tc.ended, tc.previous != "")
			}
			view(t, a, func(tx store.Tx) error {
				for _, h := range []string{"h1", "h2"} {
					if _, err := tx.Session(h); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("session %s after the sign-in: %v, want ErrNotFound", h, err)
					}
				}
				return nil
			})
		})
	}
}
