package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func TestBatchSizer(t *testing.T) {
	b := store.BatchSizer{Target: 10 * time.Millisecond, Min: 4, Max: 100}
	steps := []struct {
		took time.Duration
		want int // Next after it
	}{
		{time.Millisecond, 20},      // 16 -> fast: +25%
		{time.Millisecond, 25},      // fast
		{8 * time.Millisecond, 25},  // between half and target: stay
		{30 * time.Millisecond, 12}, // slow: halve
		{30 * time.Millisecond, 6},  // slow
		{30 * time.Millisecond, 4},  // not below Min
		{30 * time.Millisecond, 4},  //
		{time.Microsecond, 5},       // fast again
	}
	if got := b.Next(); got != 16 {
		t.Fatalf("first Next = %d, want 4*Min", got)
	}
	for i, s := range steps {
		b.Took(b.Next(), s.took)
		if got := b.Next(); got != s.want {
			t.Errorf("step %d: took %v, Next = %d, want %d", i, s.took, got, s.want)
		}
	}
	for range 100 {
		b.Took(b.Next(), 0)
	}
	if got := b.Next(); got != 100 {
		t.Errorf("after many fast batches Next = %d, want Max 100", got)
	}
	var zero store.BatchSizer
	if got := zero.Next(); got < 8 || got > 256 {
		t.Errorf("zero BatchSizer Next = %d", got)
	}
}

// contendedTx is a transaction that can be contended, and is once a
// given number of items have run.
type contendedTx struct {
	store.Tx
	ran   *int
	after int // -1: never
}

func (c contendedTx) Contended() bool { return c.after >= 0 && *c.ran >= c.after }

// plainTx is a transaction of a store that does not share commits.
type plainTx struct{ store.Tx }

func TestRunItems(t *testing.T) {
	errWork := errors.New("work failed")
	tests := []struct {
		name           string
		plain          bool // a transaction without Contended
		n              int
		work           int // items there are to do
		contendedAfter int // -1: never
		failAt         int // -1: never
		done           int
		drained        bool
		err            error
		calls          int
		budget         time.Duration
	}{
		{"whole batch, item by item", false, 5, 10, -1, -1, 5, false, nil, 5, 0},
		{"runs out of work", false, 5, 3, -1, -1, 3, true, nil, 4, 0},
		{"no work", false, 5, 0, -1, -1, 0, true, nil, 1, 0},
		{"a waiting Update ends the batch", false, 5, 10, 2, -1, 2, false, nil, 2, 0},
		{"at least one item however contended", false, 5, 10, 0, -1, 1, false, nil, 1, 0},
		{"an error stops it", false, 5, 10, -1, 1, 1, false, errWork, 2, 0},
		{"a store that cannot be contended: one call", true, 5, 10, -1, -1, 5, false, nil, 1, 0},
		{"one call that runs out", true, 5, 3, -1, -1, 3, true, nil, 1, 0},
		// Any item takes longer than a nanosecond.
		{"a batch past its budget ends", false, 5, 10, -1, -1, 1, false, nil, 1, time.Nanosecond},
		{"a budget does not split one call", true, 5, 10, -1, -1, 5, false, nil, 1, time.Nanosecond},
		{"a generous budget lets the batch run", false, 5, 10, -1, -1, 5, false, nil, 5, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran, calls := 0, 0
			var tx store.Tx = contendedTx{ran: &ran, after: tt.contendedAfter}
			if tt.plain {
				tx = plainTx{}
			}
			done, drained, err := store.RunItems(tx, tt.n, tt.budget, func(from, k int) (int, error) {
				calls++
				if from != ran {
					t.Fatalf("work from item %d after %d items", from, ran)
				}
				if from <= tt.failAt && tt.failAt < from+k {
					ran = tt.failAt
					return tt.failAt - from, errWork
				}
				if tt.budget == time.Nanosecond {
					time.Sleep(time.Microsecond) // past the budget on any clock
				}
				did := max(0, min(k, tt.work-from))
				ran += did
				return did, nil
			})
			if done != tt.done || drained != tt.drained || !errors.Is(err, tt.err) {
				t.Errorf("RunItems = %d, %v, %v; want %d, %v, %v", done, drained, err, tt.done, tt.drained, tt.err)
			}
			if done != ran {
				t.Errorf("reported %d items done, %d ran", done, ran)
			}
			if calls != tt.calls {
				t.Errorf("work called %d times, want %d", calls, tt.calls)
			}
		})
	}
}
