package postgres

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// When the server refuses this instance a new connection (max_connections,
// or the role's or database's CONNECTION LIMIT, is reached: other
// clients, a reload that briefly holds two pools, another instance
// starting; docs/cluster.md, Sizing), pgxpool returns the connect error to
// the caller at once, although the pool holds connections that its other
// callers are about to give back. A burst of sign-ins beyond the
// connections the server lets this instance open would thus fail at once
// (a 503) instead of queueing, as it does on a full pool. waitRefused
// makes it queue: the caller waits for one of the pool's connections to
// be given back (or, now and then, tries again to open one, in case
// another client's have gone), within the bound it already has (see
// DB.bound).
//
// Reserving the pool at start (MinConns = MaxConns) was the alternative;
// it holds pool_size connections per instance even when idle, makes a
// reload's second pool open them all at once (where the limit is most
// likely reached), and does not help after the pool has closed a
// connection (lifetime, a broken one) and must open a new one.
const (
	// refusedPause is the first pause before opening a connection is
	// tried again; it doubles (with jitter) up to refusedPauseMax. A
	// connection given back to the pool ends the longest waiter's pause.
	refusedPause    = 20 * time.Millisecond
	refusedPauseMax = 500 * time.Millisecond
	// refusedWarnEvery throttles the warning that the server refuses
	// connections: one per this interval per store.
	refusedWarnEvery = time.Minute
)

// refusal is DB's state for waiting out a refused connection.
type refusal struct {
	mu sync.Mutex
	// queue holds the waiters' wake-up channels, longest waiting first.
	// connFreed wakes one per connection given back, so that a release
	// sends one waiter, not all, to the pool (the others would find no
	// idle connection and ask the server for a new one in vain).
	queue []chan struct{}
	// waiting counts the callers in line: queued, or woken and on their
	// way to the pool. A caller that finds it non-zero gets in line
	// behind them instead of going to the pool: connFreed runs after the
	// connection is back in the pool, so a caller going straight to it
	// (the releaser's next transaction) would take the connection before
	// the woken waiter got there, every time, and the waiter would fail at
	// its bound while others ran dozens of transactions. pgxpool's own
	// queue, on a full pool, is fair the same way.
	waiting atomic.Int32
	// warned is when the last warning was logged (UnixNano).
	warned atomic.Int64
	// pauseMin and pauseMax, when set, replace refusedPause and
	// refusedPauseMax: tests lengthen them to see wake-ups alone.
	pauseMin, pauseMax time.Duration
}

// connFreed wakes the longest waiting of waitRefused's callers: a
// connection has gone back to the pool (or been destroyed, which leaves
// room to open one). Call it after a transaction's commit or rollback,
// or a statement run on the pool. Without waiters it costs one atomic
// load.
func (db *DB) connFreed() {
	r := &db.refusal
	if r.waiting.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) > 0 {
		close(r.queue[0])
		r.queue = slices.Delete(r.queue, 0, 1)
	}
}

// enqueue adds a waiter, at the front when it had been woken and was
// refused again (a caller outside the line, retrying after its pause,
// took the connection first): it keeps its turn.
func (r *refusal) enqueue(front bool) chan struct{} {
	ch := make(chan struct{})
	r.mu.Lock()
	defer r.mu.Unlock()
	if front {
		r.queue = slices.Insert(r.queue, 0, ch)
	} else {
		r.queue = append(r.queue, ch)
	}
	return ch
}

// leave takes ch out of the queue; false when connFreed has already
// woken it.
func (r *refusal) leave(ch chan struct{}) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.Index(r.queue, ch)
	if i < 0 {
		return false
	}
	r.queue = slices.Delete(r.queue, i, i+1)
	return true
}

// pauses returns the first and the longest pause before a caller in
// line tries the pool again.
func (r *refusal) pauses() (first, most time.Duration) {
	first, most = refusedPause, refusedPauseMax
	if r.pauseMin > 0 {
		first = r.pauseMin
	}
	if r.pauseMax > 0 {
		most = r.pauseMax
	}
	return first, most
}

// refusedConnection reports whether err is the server refusing a new
// connection for lack of resources: SQLSTATE class 53 (53300
// too_many_connections: max_connections or a CONNECTION LIMIT reached) or
// 57P03 cannot_connect_now (starting up, shutting down, in recovery).
// Only a pgconn.ConnectError: nothing was sent, so the operation can run
// again.
func refusedConnection(err error) bool {
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	if !errors.As(err, &ce) || !errors.As(err, &pe) {
		return false
	}
	return strings.HasPrefix(pe.Code, "53") || pe.Code == "57P03"
}

// refusedWhy says why the server refused a connection, by the SQLSTATE
// of err (one refusedConnection accepts): blaming max_connections for a
// server that is starting, stopping or in recovery (a failover) would
// send the operator to the wrong setting.
func refusedWhy(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return "the server refused it"
	}
	switch pe.Code {
	case "53300":
		return "max_connections, or the role's or database's CONNECTION LIMIT, is reached; see docs/cluster.md, Sizing"
	case "57P03":
		return "the server is starting up, shutting down or in recovery, as in a restart or a failover"
	default:
		return "the server lacks resources, SQLSTATE " + pe.Code
	}
}

// waitRefused runs op (which acquires a connection from the pool) and,
// while it fails because the server refused a new connection and the pool
// holds connections that will be given back, waits in line for one to be
// given back (connFreed) or, after a growing pause, tries again to open
// one (another client may have gone), until op succeeds or fails
// otherwise, or bctx (ctx limited by DB.bound) ends. Holding no
// connection, it fails at once. While others wait in line, it gets in
// line behind them before running op (see refusal.waiting). Errors are
// not scrubbed: the caller does. After op succeeds, the caller calls
// connFreed once it has given the connection back.
func (db *DB) waitRefused(ctx, bctx context.Context, op func() error) error {
	if db.refusal.waiting.Load() == 0 {
		err := op()
		if err == nil {
			return nil
		}
		if !refusedConnection(err) {
			db.opFailed()
			return err
		}
		return db.inLine(ctx, bctx, op, err)
	}
	return db.inLine(ctx, bctx, op, nil)
}

// inLine is waitRefused once the caller gets in line: refused by the
// server (err), or, with err nil, arriving while others wait.
func (db *DB) inLine(ctx, bctx context.Context, op func() error, err error) error {
	r := &db.refusal
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	pause, most := r.pauses()
	woken, retriedIdle := false, false
	var held int32
	for {
		if err != nil {
			// Connections being opened count: they are given back too
			// once open, and if they fail, the next refusal sees none.
			held = db.pool.Stat().TotalConns()
			db.warnRefused(err, held)
			if held == 0 {
				return fmt.Errorf("the server refused a new connection (%s) and this instance holds none to wait for: %w",
					refusedWhy(err), err)
			}
		}
		ch := r.enqueue(woken)
		// A connection given back between op's refusal and enqueue woke
		// no one: take it. Not twice in a row, so that this cannot spin.
		// Not on arrival: an idle connection then is the woken waiter's.
		if err != nil && !retriedIdle && db.pool.Stat().IdleConns() > 0 {
			woken = !r.leave(ch)
			retriedIdle = true
		} else {
			retriedIdle = false
			// The pause also covers a connection that went back, or was
			// closed, with no connFreed (pgxpool closing an idle one, a
			// caller that got in line when the last waiter had just been
			// woken): after at most 1.5 times it, the caller tries the
			// pool itself.
			timer := time.NewTimer(pause/2 + time.Duration(mrand.Int64N(int64(pause)))) //nolint:gosec // G404: jitter, not a secret
			select {
			case <-ch:
				woken = true
			case <-timer.C:
				woken = !r.leave(ch)
				pause = min(2*pause, most)
			case <-bctx.Done():
				woken = !r.leave(ch)
			}
			timer.Stop()
			if bctx.Err() != nil {
				if woken {
					// Woken for a connection this caller will not
					// take: pass the turn on, or the next waiter sleeps
					// out its pause beside an idle connection.
					db.connFreed()
				}
				return db.noneFree(ctx, err, held)
			}
		}
		refused := err
		err = op()
		if err == nil {
			return nil
		}
		if !refusedConnection(err) {
			db.opFailed()
			if bctx.Err() != nil && ctx.Err() == nil {
				// The bound ran out during this attempt (a connection
				// being opened, or a pool acquire, cut short): it is
				// still the refusal that kept the caller waiting.
				return db.noneFree(ctx, refused, held)
			}
			return err
		}
	}
}

// noneFree is inLine's failure once the bound on the wait ran out:
// refused is the server's last refusal (nil when the caller got in line
// behind others without one of its own), held the connections this
// instance had then.
func (db *DB) noneFree(ctx context.Context, refused error, held int32) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("waiting for a connection after the server refused a new one: %w", ctx.Err())
	case refused == nil:
		return fmt.Errorf("no connection of this instance's was free within %v, while others waited for one "+
			"after the server refused new ones", db.answerWithin)
	}
	return fmt.Errorf("the server refused a new connection (%s) and none of this instance's %d was free within %v: %w",
		refusedWhy(refused), held, db.answerWithin, refused)
}

// opFailed is connFreed after op failed otherwise than by a refusal: it
// may have taken a connection that then went back to the pool or was
// destroyed (pgxpool destroys one whose BEGIN failed), or its caller was
// woken for a connection it did not take; either way a waiter may take
// it. Where neither holds, the waiter woken in vain is refused and keeps
// its turn, at the cost of one connection attempt; a wake-up lost would
// cost it its pause.
func (db *DB) opFailed() { db.connFreed() }

// warnRefused logs, at most once per refusedWarnEvery, that the server
// refuses connections, so that the operator learns why sign-ins wait or
// fail.
func (db *DB) warnRefused(err error, held int32) {
	r := &db.refusal
	now := time.Now().UnixNano()
	last := r.warned.Load()
	if last != 0 && now-last < int64(refusedWarnEvery) || !r.warned.CompareAndSwap(last, now) {
		return
	}
	db.logger.Warn("the database refused a new connection ("+refusedWhy(err)+"); sign-ins wait for this "+
		"instance's open connections, or fail if it holds none",
		zap.Int32("open_connections", held),
		zap.Int32("pool_size", db.pool.Config().MaxConns),
		zap.Error(db.scrub(err)))
}
