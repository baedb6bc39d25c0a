package bolt

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// Update's group commit. Every commit costs an fsync or two, which under a
// burst of sign-ins is most of a sign-in's time; so concurrent Updates
// share commits. There is no timer: the first caller to find no commit in
// progress leads, runs every Update queued by then in one transaction and
// commits it, and hands the lead to the next caller in line. A lone Update
// therefore commits at once, and under load each commit takes everything
// that arrived during the previous one (bbolt's own Batch waits a fixed
// delay instead, which a lone sign-in pays in full).
//
// Background work (store.Background: session sweeps, last-seen flushes,
// housekeeping) waits in a line of its own. Its Updates run one per
// transaction, and only when no other Update waits, so a sign-in waits
// for at most the background batch in progress and then goes first,
// however much background work is queued. Nor does it wait for the whole
// batch: the batch's transaction reports Contended as soon as the sign-in
// queues, and store.RunItems then ends the batch after the item at hand
// (one session deleted, one last-seen time written), so the sign-in waits
// for one item and a commit. Under sign-ins that never leave their line
// empty, a background Update runs once it has waited backgroundMaxWait:
// sign-ins are what a person waits for, but a storm of them (or a machine
// too slow for the load) must slow sweeps and flushes down, not stop
// them, or expired sessions would never go and last-seen times would
// pile up in memory.
//
// As with bbolt's Batch, fn may run more than once: when one fn of a batch
// fails, the batch is rolled back, the others run again without it, and the
// failed one then runs alone, so that its error is its own.

// maxBatch bounds the Updates one commit takes, so that a commit (and the
// write lock) is not held for long by a pile-up.
const maxBatch = 256

// backgroundMaxWait is how long a background Update waits behind other
// Updates before it goes first: under sustained sign-ins, background work
// then still gets one batch in about every backgroundMaxWait, which costs
// the sign-ins of that moment one short batch.
const backgroundMaxWait = 100 * time.Millisecond

// call is one Update waiting for a commit.
type call struct {
	ctx    context.Context
	fn     func(store.Tx) error
	done   chan result // buffered: at most one result is pending
	queued time.Time   // for background calls: when Update queued it
	// yields: a background call that went because no other call waited;
	// its transaction reports Contended when one queues.
	yields bool
}

// result answers a call: its error, or the order to lead the next batch.
type result struct {
	err  error
	lead bool
}

// committer queues Updates for the leader: foreground calls in pending,
// background calls in background.
type committer struct {
	mu         sync.Mutex
	pending    []*call
	background []*call
	leading    bool
	// maxWait, when not zero, replaces backgroundMaxWait (for tests).
	maxWait time.Duration
}

// Update runs fn in a read-write transaction and commits when fn returns
// nil, sharing the commit with concurrent Updates (see above); fn may then
// run more than once (see the store package doc). An error from fn rolls
// back everything fn did and is returned as it is; a failed commit is
// returned wrapped, naming the file.
func (db *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.readOnly {
		return fmt.Errorf("bolt: update %s: opened read-only: %w", db.path, store.ErrReadOnly)
	}
	if err := db.refused(); err != nil {
		return err
	}
	if db.rehearses(ctx) {
		db.rehearse(ctx, fn)
	}
	c := &call{ctx: ctx, fn: fn, done: make(chan result, 1)}
	db.commit.mu.Lock()
	if store.IsBackground(ctx) {
		c.queued = time.Now()
		db.commit.background = append(db.commit.background, c)
	} else {
		db.commit.pending = append(db.commit.pending, c)
	}
	lead := !db.commit.leading
	db.commit.leading = true
	db.commit.mu.Unlock()
	for {
		if lead {
			db.lead()
		}
		// Either c's result, or the lead: c may be handed it while other
		// calls go first, and then leads their batch before its own.
		r := <-c.done
		if !r.lead {
			return r.err
		}
		lead = true
	}
}

// lead commits the next batch (up to maxBatch foreground calls, or else
// one background call, which goes first once it has waited
// backgroundMaxWait) and passes the lead on.
func (db *DB) lead() {
	db.commit.mu.Lock()
	var batch []*call
	n := min(len(db.commit.pending), maxBatch)
	bg := db.commit.background
	maxWait := cmp.Or(db.commit.maxWait, backgroundMaxWait)
	if len(bg) > 0 && (n == 0 || time.Since(bg[0].queued) >= maxWait) {
		batch = bg[:1:1]
		db.commit.background = bg[1:]
		batch[0].yields = n == 0
	} else if n > 0 {
		batch = db.commit.pending[:n:n]
		db.commit.pending = db.commit.pending[n:]
	}
	db.commit.mu.Unlock()

	if len(batch) > 0 {
		db.commitBatch(batch)
	}

	db.commit.mu.Lock()
	defer db.commit.mu.Unlock()
	switch {
	case len(db.commit.pending) > 0:
		db.commit.pending[0].done <- result{lead: true}
	case len(db.commit.background) > 0:
		db.commit.background[0].done <- result{lead: true}
	default:
		db.commit.leading = false
		db.commit.pending, db.commit.background = nil, nil
	}
}

// commitBatch runs the calls in one transaction. A call whose fn fails is
// taken out, the rest run again, and it runs alone afterwards.
func (db *DB) commitBatch(batch []*call) {
	var failed []*call
	for len(batch) > 0 {
		bad, err := db.runTx(batch)
		if bad < 0 {
			for _, c := range batch {
				c.done <- result{err: err}
			}
			break
		}
		failed = append(failed, batch[bad])
		batch = append(batch[:bad:bad], batch[bad+1:]...)
	}
	for _, c := range failed {
		_, err := db.runTx([]*call{c})
		c.done <- result{err: err}
	}
}

// runTx runs calls in one read-write transaction. When one fn fails it
// rolls back and returns its index, and the fn's own error when it was the
// only call. Otherwise it commits and returns -1 and the commit's error.
// Calls whose context ended before their turn get the context's error and
// write nothing.
func (db *DB) runTx(calls []*call) (int, error) {
	if err := db.refused(); err != nil { // queued before the store failed closed
		return -1, err
	}
	btx, err := db.bdb.Begin(true)
	if err != nil {
		return -1, fmt.Errorf("bolt: begin write to %s: %w", db.path, err)
	}
	start, faults := time.Now(), countFaults()
	defer faults.stop()
	for i, c := range calls {
		if err := c.ctx.Err(); err != nil {
			_ = btx.Rollback()
			if len(calls) == 1 {
				return 0, err
			}
			return i, err
		}
		t := &tx{btx: btx, writable: true}
		if c.yields {
			t.contended = db.foregroundWaiting
		}
		if err := safeCall(c.fn, t); err != nil {
			worked := time.Now()
			_ = btx.Rollback()
			db.observe(btx, calls[:i+1], start, worked, faults.stop())
			if len(calls) == 1 {
				return 0, err
			}
			return i, err
		}
	}
	worked := time.Now()
	id := btx.ID() // the header's transaction ID, once written
	err = btx.Commit()
	db.observe(btx, calls, start, worked, faults.stop())
	if err != nil {
		return -1, db.commitError(id, err)
	}
	return -1, nil
}

// safeCall turns a panic in fn into an error: the panicking goroutine may
// be leading other callers' commit, and an HTTP server that recovers the
// panic would otherwise leave the write lock held forever.
func safeCall(fn func(store.Tx) error, t store.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bolt: panic in update: %v", p)
		}
	}()
	return fn(t)
}

// WriteHold is what one write transaction did while it held the write
// lock. A long hold has one of two causes with different remedies: long
// work in the transaction (a batch too large, cold pages read from disk),
// or a slow disk under the commit's syncs; Work and Disk tell them apart
// (docs/operations.md, "Limits and behaviour under failure").
type WriteHold struct {
	// Held runs from the start of the first Update fn to the end of the
	// commit or rollback.
	Held time.Duration
	// Work is the time in the Update fns, pages read from disk included.
	Work time.Duration
	// Build is bbolt's rebalancing of the changed nodes and their
	// spilling into pages, at commit.
	Build time.Duration
	// Disk is the writing of the pages and of the meta page, with the
	// fdatasync after each.
	Disk time.Duration
	// Pages counts the pages written, a page with its overflow as one.
	Pages int64
	// Faults counts the pages the transaction read from disk (major page
	// faults of its thread): cold pages its rehearsal did not reach
	// (rehearse.go). Counted on Linux only.
	Faults int64
	// Calls counts the Update calls that ran in the transaction.
	Calls int
	// Background is set for a batch of background work (store.Background):
	// a sweep, a last-seen flush, housekeeping.
	Background bool
}

// observe reports a transaction to OnWrite, and a cold store to the
// rehearsal (rehearse.go); worked is when its last fn returned, and
// faults counts the pages the transaction read from disk.
func (db *DB) observe(btx *bolt.Tx, calls []*call, start, worked time.Time, faults int64) {
	db.noteFaults(calls[0].ctx, faults)
	if db.onWrite == nil {
		return
	}
	stats := btx.Stats()
	db.onWrite(WriteHold{
		Held:       time.Since(start),
		Work:       worked.Sub(start),
		Build:      stats.GetRebalanceTime() + stats.GetSpillTime(),
		Disk:       stats.GetWriteTime(),
		Pages:      stats.GetWrite(),
		Calls:      len(calls),
		Background: store.IsBackground(calls[0].ctx),
		Faults:     faults,
	})
}

// foregroundWaiting reports whether a call other than background work is
// queued: a yielding background batch then ends early.
func (db *DB) foregroundWaiting() bool {
	db.commit.mu.Lock()
	defer db.commit.mu.Unlock()
	return len(db.commit.pending) > 0
}
