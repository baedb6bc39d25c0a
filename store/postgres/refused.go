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
	// waiting is len(queue), for connFreed to read without the lock.
	waiting atomic.Int32
	// warned is when the last warning was logged (UnixNano).
	warned atomic.Int64
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
		r.waiting.Add(-1)
	}
}

// enqueue adds a waiter, at the front when it had been woken and a
// newcomer took the connection first (it keeps its turn).
func (r *refusal) enqueue(front bool) chan struct{} {
	ch := make(chan struct{})
	r.mu.Lock()
	defer r.mu.Unlock()
	if front {
		r.queue = slices.Insert(r.queue, 0, ch)
	} else {
		r.queue = append(r.queue, ch)
	}
	r.waiting.Add(1)
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
	r.waiting.Add(-1)
	return true
}

// refusedConnection reports whether err is the server refusing a new
// connection for lack of resources: SQLSTATE class 53 (53300
// too_many_connections: max_connections or a CONNECTION LIMIT reached) or
// 57P03 cannot_connect_now (starting up, shutting down). Only a
// pgconn.ConnectError: nothing was sent, so the operation can run again.
func refusedConnection(err error) bool {
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	if !errors.As(err, &ce) || !errors.As(err, &pe) {
		return false
	}
	return strings.HasPrefix(pe.Code, "53") || pe.Code == "57P03"
}

// waitRefused runs op (which acquires a connection from the pool) and,
// while it fails because the server refused a new connection and the pool
// holds connections that will be given back, waits in line for one to be
// given back (connFreed) or, after a growing pause, tries again to open
// one (another client may have gone), until op succeeds or fails
// otherwise, or bctx (ctx limited by DB.bound) ends. Holding no
// connection, it fails at once. Errors are not scrubbed: the caller does.
func (db *DB) waitRefused(ctx, bctx context.Context, op func() error) error {
	r := &db.refusal
	pause := refusedPause
	woken, retriedIdle := false, false
	for {
		err := op()
		if err == nil || !refusedConnection(err) {
			return err
		}
		// Connections being opened count: they are given back too once
		// open, and if they fail, the next refusal sees none.
		held := db.pool.Stat().TotalConns()
		db.warnRefused(err, held)
		if held == 0 {
			return fmt.Errorf("the server refused a new connection and this instance holds none to wait for "+
				"(max_connections, or the role's or database's CONNECTION LIMIT, is reached; see docs/cluster.md, Sizing): %w", err)
		}
		ch := r.enqueue(woken)
		// A connection given back between op's refusal and enqueue woke
		// no one: take it. Not twice in a row, so that this cannot spin.
		if !retriedIdle && db.pool.Stat().IdleConns() > 0 {
			woken = !r.leave(ch)
			retriedIdle = true
			continue
		}
		retriedIdle = false
		timer := time.NewTimer(pause/2 + time.Duration(mrand.Int64N(int64(pause)))) //nolint:gosec // G404: jitter, not a secret
		select {
		case <-ch:
			woken = true
		case <-timer.C:
			woken = !r.leave(ch)
			pause = min(2*pause, refusedPauseMax)
		case <-bctx.Done():
			if !r.leave(ch) {
				db.connFreed() // pass the wake-up on
			}
		}
		timer.Stop()
		if bctx.Err() != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for a connection after the server refused a new one: %w", ctx.Err())
			}
			return fmt.Errorf("the server refused a new connection and none of this instance's %d was free within %v "+
				"(max_connections, or the role's or database's CONNECTION LIMIT, is reached; see docs/cluster.md, Sizing): %w",
				held, db.answerWithin, err)
		}
	}
}

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
	db.logger.Warn("the database refused a new connection: max_connections, or the role's or database's "+
		"CONNECTION LIMIT, is reached; sign-ins wait for this instance's open connections, or fail "+
		"if it holds none (see docs/cluster.md, Sizing)",
		zap.Int32("open_connections", held),
		zap.Int32("pool_size", db.pool.Config().MaxConns),
		zap.Error(db.scrub(err)))
}
