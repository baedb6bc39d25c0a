package store

import (
	"context"
	"time"
)

// BatchSizer sizes the batches of background work (session sweeps,
// last-seen flushes, Housekeep) so that each transaction takes about Target:
// what a batch of a given size costs depends on the disk and on how the
// store's pages lie, so the size follows the measured time instead of
// being a constant. A sign-in that arrives during a batch waits for it
// (for the item at hand only, when the store reports it waiting: see
// RunItems), so Target bounds that wait. The zero value is ready to use.
type BatchSizer struct {
	Target   time.Duration // 0: DefaultBatchTarget
	Min, Max int           // 0: 8 and 256
	size     int
	last     time.Duration
}

// DefaultBatchTarget is the time one background transaction aims at. A
// sign-in that arrives during one waits for it at most (see Background and
// RunItems), so it is kept to a small part of the 5 ms a sign-in may
// take at p99 on a store of a million users (docs/architecture.md,
// "Performance budgets"); on a disk whose commits cost more, batches stay
// at the minimum size.
const DefaultBatchTarget = 2 * time.Millisecond

// FinalBatchTarget is the target of work done while the gateway stops (the
// last flush of last-seen times): only the stop waits for it, so on a slow
// disk its batches may grow well past DefaultBatchTarget's, which would
// otherwise cost a commit per few sessions, and still stay far below the
// 50 ms a write may hold the lock.
const FinalBatchTarget = 20 * time.Millisecond

func (b *BatchSizer) bounds() (time.Duration, int, int) {
	target, lo, hi := b.Target, b.Min, b.Max
	if target <= 0 {
		target = DefaultBatchTarget
	}
	if lo <= 0 {
		lo = 8
	}
	if hi <= 0 {
		// A fast disk would otherwise let batches grow until one costs a
		// lot of CPU, which a busy machine stretches far past Target.
		hi = 256
	}
	return target, lo, max(hi, lo)
}

// Budget is the time a batch's transaction may run (Target, or its
// default), for RunItems.
func (b *BatchSizer) Budget() time.Duration {
	target, _, _ := b.bounds()
	return target
}

// Next returns the size of the next batch.
func (b *BatchSizer) Next() int {
	_, lo, hi := b.bounds()
	if b.size == 0 {
		b.size = lo * 4
	}
	return min(max(b.size, lo), hi)
}

// Took records how long a batch of the given size took, from the call of
// Update to its return, and adjusts the next size: halved when it took over
// Target, grown by a quarter when it took under half of it.
func (b *BatchSizer) Took(size int, d time.Duration) {
	b.last = d
	target, lo, hi := b.bounds()
	switch {
	case d > target:
		b.size = max(size/2, lo)
	case d < target/2 && size >= b.Next():
		b.size = min(size+max(size/4, 1), hi)
	}
}

// Rest waits as long as the last batch took (at most a second), or until
// ctx ends: background work then has the disk at most half the time, and
// sign-ins commit between its batches instead of behind them.
func (b *BatchSizer) Rest(ctx context.Context) error {
	t := time.NewTimer(min(b.last, time.Second))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// contender is a transaction that can tell it is in a sign-in's way:
// Contended reports whether another Update waits for the write lock it
// holds. Only a store that shares commits (store/bolt) has it, and reports
// true only to a background Update that went because no other Update was
// waiting: one that went first after waiting long (see Background) keeps
// its turn.
type contender interface{ Contended() bool }

// RunItems is how background work fills one transaction with up to n
// items. work(from, k) does up to k items starting at item from and
// returns how many it did: fewer than k means it ran out of work. In a
// transaction that can be Contended, RunItems hands out one item at a
// time and stops, once one is done, as soon as another Update waits, so a
// sign-in that arrives during a batch waits for one item and the commit,
// not for the whole batch; and as soon as the batch has run for budget
// (when not zero), since an item whose pages must come from a cold disk
// can take milliseconds, and the count a BatchSizer chose would then hold
// the write lock many times its target. Elsewhere it hands out all n at
// once (on PostgreSQL, one statement instead of n). It returns the items
// done and whether work ran out.
func RunItems(tx Tx, n int, budget time.Duration, work func(from, k int) (int, error)) (done int, drained bool, err error) {
	c, yields := tx.(contender)
	step := n
	if yields {
		step = 1
	}
	start := time.Now()
	for done < n {
		if done > 0 && (yields && c.Contended() || budget > 0 && time.Since(start) >= budget) {
			return done, false, nil
		}
		k := min(step, n-done)
		did, err := work(done, k)
		done += did
		if err != nil {
			return done, false, err
		}
		if did < k {
			return done, true, nil
		}
	}
	return done, false, nil
}

type backgroundKey struct{}

// Background marks ctx for background work: an Update with it may wait
// while other Updates go first. A store that shares commits (store/bolt)
// runs such Updates one per transaction and only when no other Update is
// waiting (or when one has waited long: sign-ins that never stop must not
// stop sweeps and flushes), so a sign-in waits for one background batch
// at most, however much background work is queued, and for one item of it
// when the batch fills its transaction with RunItems. Stores that do not
// share commits ignore it.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// IsBackground reports whether ctx was marked by Background.
func IsBackground(ctx context.Context) bool {
	bg, _ := ctx.Value(backgroundKey{}).(bool)
	return bg
}
