package bolt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// queued reports how many Updates wait for the leader.
func (db *DB) queued() int {
	db.commit.mu.Lock()
	defer db.commit.mu.Unlock()
	return len(db.commit.pending) + len(db.commit.background)
}

// waitLeading waits until a commit is running and has taken its batch.
func waitLeading(t *testing.T, db *DB) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		db.commit.mu.Lock()
		leading := db.commit.leading && len(db.commit.pending)+len(db.commit.background) == 0
		db.commit.mu.Unlock()
		if leading {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no commit started")
		}
	}
}

// waitQueued waits until n Updates are queued behind the running commit.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); db.queued() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d Updates queued, want %d", db.queued(), n)
		}
	}
}

// TestGroupCommit: Updates that arrive while a commit runs share the next
// one, and a failing fn among them neither fails nor joins the others.
func TestGroupCommit(t *testing.T) {
	db := openTest(t)
	before := commitID(t, db)
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = db.Update(context.Background(), func(store.Tx) error { <-release; return nil })
	})
	waitLeading(t, db)
	const n = 20
	boom := errors.New("boom")
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = db.Update(context.Background(), func(tx store.Tx) error {
				if err := tx.PutUser(&store.User{ID: fmt.Sprint("u", i)}); err != nil {
					return err
				}
				if i == 7 {
					return boom
				}
				return nil
			})
		})
	}
	waitQueued(t, db, n)
	close(release)
	wg.Wait()
	for i, err := range errs {
		if (i == 7) != errors.Is(err, boom) {
			t.Errorf("Update %d: %v", i, err)
		}
	}
	// The blocking one, the batch of 20 (rolled back once for the failing
	// fn, which then ran alone and rolled back too): two commits.
	if got := commitID(t, db) - before; got != 2 {
		t.Errorf("%d commits, want 2", got)
	}
	view(t, db, func(tx store.Tx) error {
		c, _ := tx.Counts()
		if c.Users != n-1 {
			t.Errorf("%d users, want %d", c.Users, n-1)
		}
		return nil
	})
}

// blockedQueue holds the write lock with one Update while a test queues
// others behind it, then releases it and reports the order they ran in.
type blockedQueue struct {
	t       *testing.T
	db      *DB
	release chan struct{}
	wg      sync.WaitGroup
	errs    chan error
	mu      sync.Mutex
	order   []string
}

// blockCommits starts an Update with ctx that holds the write lock until
// run, and waits until it does.
func blockCommits(t *testing.T, db *DB, ctx context.Context) *blockedQueue {
	q := &blockedQueue{t: t, db: db, release: make(chan struct{}), errs: make(chan error, 16)}
	q.wg.Go(func() {
		_ = db.Update(ctx, func(tx store.Tx) error {
			if !rehearsing(tx) {
				<-q.release
			}
			return nil
		})
	})
	waitLeading(t, db)
	return q
}

// queue starts an Update with ctx that records name when it runs, and
// waits until it is queued.
func (q *blockedQueue) queue(ctx context.Context, name string) {
	n := q.db.queued()
	q.wg.Go(func() {
		q.errs <- q.db.Update(ctx, func(tx store.Tx) error {
			if rehearsing(tx) {
				return nil
			}
			q.mu.Lock()
			q.order = append(q.order, name)
			q.mu.Unlock()
			return tx.PutUser(&store.User{ID: name})
		})
	})
	waitQueued(q.t, q.db, n+1)
}

// run releases the lock, waits for every queued Update and returns the
// order they ran in.
func (q *blockedQueue) run() []string {
	q.t.Helper()
	close(q.release)
	q.wg.Wait()
	close(q.errs)
	for err := range q.errs {
		if err != nil {
			q.t.Fatal(err)
		}
	}
	return q.order
}

// TestBackgroundYields: background Updates (store.Background) wait while
// others go first, and run one per transaction, so a sign-in queued behind
// any amount of background work waits for one background batch at most.
// It holds whichever kind of Update leads the commit that they queue
// behind.
func TestBackgroundYields(t *testing.T) {
	bg := store.Background(context.Background())
	for _, blocker := range []struct {
		name string
		ctx  context.Context
	}{{"foreground leading", context.Background()}, {"background leading", bg}} {
		t.Run(blocker.name, func(t *testing.T) {
			db := openTest(t)
			db.commit.maxWait = time.Hour // however slow the machine, nothing waits that long here
			before := commitID(t, db)
			q := blockCommits(t, db, blocker.ctx)
			const nBackground, nForeground = 3, 2
			for i := range nBackground {
				q.queue(bg, fmt.Sprint("bg", i))
			}
			for i := range nForeground {
				q.queue(context.Background(), fmt.Sprint("fg", i))
			}
			order := q.run()
			for i, name := range order {
				if (i < nForeground) != strings.HasPrefix(name, "fg") {
					t.Fatalf("ran in the order %v: the foreground Updates must go first", order)
				}
			}
			// The blocker, one batch of the foreground Updates, then each
			// background Update alone.
			if got, want := commitID(t, db)-before, 1+1+nBackground; got != want {
				t.Errorf("%d commits, want %d", got, want)
			}
		})
	}
}

// TestBackgroundNotStarved: a background Update that has waited
// backgroundMaxWait goes before the foreground Updates queued with it, so
// sign-ins that never leave their line empty slow background work down
// but cannot stop it.
func TestBackgroundNotStarved(t *testing.T) {
	db := openTest(t)
	db.commit.maxWait = 20 * time.Millisecond
	q := blockCommits(t, db, context.Background())
	q.queue(store.Background(context.Background()), "bg")
	time.Sleep(2 * db.commit.maxWait)
	q.queue(context.Background(), "fg")
	if order := q.run(); !slices.Equal(order, []string{"bg", "fg"}) {
		t.Errorf("ran in the order %v: a background Update that waited past its bound must go first", order)
	}
}

// A panic in fn becomes that Update's error; the write lock is released
// and the Updates batched with it commit.
func TestPanicInUpdate(t *testing.T) {
	db := openTest(t)
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = db.Update(context.Background(), func(store.Tx) error { <-release; return nil })
	})
	waitLeading(t, db)
	var panicErr, okErr error
	wg.Go(func() {
		panicErr = db.Update(context.Background(), func(store.Tx) error { panic("fn bug") })
	})
	wg.Go(func() {
		okErr = db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(&store.User{ID: "ok"}) })
	})
	waitQueued(t, db, 2)
	close(release)
	wg.Wait()
	if panicErr == nil || !strings.Contains(panicErr.Error(), "fn bug") || okErr != nil {
		t.Errorf("panicking Update: %v; its neighbour: %v", panicErr, okErr)
	}
	update(t, db, func(tx store.Tx) error { _, err := tx.User("ok"); return err })
}

// An Update whose context ends while it waits in the queue writes nothing.
func TestCancelledWhileQueued(t *testing.T) {
	db := openTest(t)
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = db.Update(context.Background(), func(store.Tx) error { <-release; return nil })
	})
	waitLeading(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	ran := false
	wg.Go(func() {
		err = db.Update(ctx, func(tx store.Tx) error { ran = true; return tx.PutUser(&store.User{ID: "late"}) })
	})
	waitQueued(t, db, 1)
	cancel()
	close(release)
	wg.Wait()
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("cancelled Update: %v, ran %v", err, ran)
	}
}

// OnWrite sees every write transaction, how long it held the lock and
// where the time went: the fns' work apart from the commit's disk writes.
func TestOnWrite(t *testing.T) {
	var mu sync.Mutex
	var holds []WriteHold
	db, err := Open(t.TempDir()+"/sso.db", Options{OnWrite: func(w WriteHold) {
		mu.Lock()
		holds = append(holds, w)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	take := func() []WriteHold {
		mu.Lock()
		defer mu.Unlock()
		h := holds
		holds = nil
		return h
	}
	const work = 20 * time.Millisecond
	update(t, db, func(tx store.Tx) error {
		time.Sleep(work)
		_, err := tx.Consume("test", "one", time.Now().Add(time.Hour))
		return err
	})
	got := take()
	if len(got) != 1 {
		t.Fatalf("OnWrite saw %d writes, want 1", len(got))
	}
	w := got[0]
	if w.Work < work || w.Held < w.Work+w.Disk || w.Disk <= 0 || w.Pages < 1 || w.Calls != 1 || w.Background {
		t.Errorf("a foreground write that worked %v: %+v", work, w)
	}

	// A failed fn (run again alone, as commitBatch does) writes nothing
	// and says so; background work is marked.
	_ = db.Update(context.Background(), func(store.Tx) error { return errors.New("no") })
	for _, w := range take() {
		if w.Pages != 0 || w.Disk != 0 || w.Background {
			t.Errorf("a failed write: %+v", w)
		}
	}
	_ = db.Update(store.Background(context.Background()), func(store.Tx) error { return nil })
	if got := take(); len(got) != 1 || !got[0].Background {
		t.Errorf("a background write: %+v", got)
	}
}

// TestContended: a background batch learns when an Update queues behind
// it (tx.Contended, which store.RunItems reads), so that it can end early; a foreground batch
// does not (sign-ins are never cut short), nor does a background batch
// that went first after waiting backgroundMaxWait, which would otherwise
// do one item per wait under sustained sign-ins.
func TestContended(t *testing.T) {
	contended := func(st store.Tx) bool { return st.(*tx).Contended() }
	bg := store.Background(context.Background())
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"background batch", bg, true},
		{"foreground batch", context.Background(), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			started, release := make(chan bool), make(chan struct{})
			var after bool
			var wg sync.WaitGroup
			wg.Go(func() {
				err := db.Update(tt.ctx, func(tx store.Tx) error {
					if rehearsing(tx) {
						return nil
					}
					started <- contended(tx)
					<-release
					after = contended(tx)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
			if <-started {
				t.Error("contended with no other Update queued")
			}
			wg.Go(func() {
				if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(&store.User{ID: "u"}) }); err != nil {
					t.Error(err)
				}
			})
			waitQueued(t, db, 1)
			close(release)
			wg.Wait()
			if after != tt.want {
				t.Errorf("with an Update queued: Contended = %v, want %v", after, tt.want)
			}
		})
	}
	t.Run("background batch that waited its bound", func(t *testing.T) {
		db := openTest(t)
		db.commit.maxWait = 20 * time.Millisecond
		q := blockCommits(t, db, context.Background())
		told := make(chan bool, 1)
		q.wg.Go(func() {
			q.errs <- db.Update(bg, func(tx store.Tx) error {
				if !rehearsing(tx) {
					told <- contended(tx)
				}
				return nil
			})
		})
		waitQueued(t, db, 1)
		time.Sleep(2 * db.commit.maxWait)
		q.queue(context.Background(), "fg")
		q.run()
		if <-told {
			t.Error("a background batch that went first after its wait was told to yield")
		}
	})
}

// TestSignInCutsBackgroundBatchShort: a sign-in that queues while a
// background batch fills its transaction with store.RunItems waits for
// the item at hand, not for the rest of the batch, and the items done
// before it are committed.
func TestSignInCutsBackgroundBatchShort(t *testing.T) {
	db := openTest(t)
	const batch, signInAt = 1000, 5
	var (
		wg                sync.WaitGroup
		done, doneAtFront int
	)
	err := db.Update(store.Background(context.Background()), func(tx store.Tx) error {
		var err error
		done, _, err = store.RunItems(tx, batch, 0, func(from, k int) (int, error) {
			if from == signInAt && !rehearsing(tx) {
				wg.Go(func() {
					err := db.Update(context.Background(), func(tx store.Tx) error {
						c, err := tx.Counts()
						doneAtFront = c.Users
						return err
					})
					if err != nil {
						t.Error(err)
					}
				})
				waitQueued(t, db, 1)
			}
			for i := range k {
				if err := tx.PutUser(&store.User{ID: fmt.Sprint("u", from+i)}); err != nil {
					return i, err
				}
			}
			return k, nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if done != signInAt+1 {
		t.Errorf("the background batch did %d of %d items; want it to end after the one during which the sign-in queued (%d)", done, batch, signInAt+1)
	}
	if doneAtFront != done {
		t.Errorf("the sign-in saw %d committed items, want %d", doneAtFront, done)
	}
}
