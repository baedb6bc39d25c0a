package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func TestBatchSizer(t *testing.T) {
	b := store.BatchSizer{Target: 10 * time.Millisecond, Min: 4, Max: 100}
	steps := []struct {
		size int // of the batch; 0: Next's
		took time.Duration
		want int // Next after it
	}{
		{3, time.Microsecond, 16},      // ran out of work: no growth, and no shrinking to what was left
		{0, time.Millisecond, 20},      // 16 -> fast: +25%
		{0, time.Millisecond, 25},      // fast
		{0, 8 * time.Millisecond, 25},  // between half and target: stay
		{0, 10 * time.Millisecond, 25}, // exactly target: stay (halved only over it)
		{0, 30 * time.Millisecond, 12}, // slow: halve
		{0, 30 * time.Millisecond, 6},  // slow
		{0, 30 * time.Millisecond, 4},  // not below Min
		{0, 30 * time.Millisecond, 4},  //
		{0, time.Microsecond, 5},       // fast again
	}
	if got := b.Next(); got != 16 {
		t.Fatalf("first Next = %d, want 4*Min", got)
	}
	for i, s := range steps {
		size := s.size
		if size == 0 {
			size = b.Next()
		}
		b.Took(size, s.took)
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
	// Min above a quarter of Max: the first batch, 4*Min, is still at
	// most Max.
	big := store.BatchSizer{Min: 100, Max: 150}
	if got := big.Next(); got != 150 {
		t.Errorf("BatchSizer{Min: 100, Max: 150} first Next = %d, want Max 150", got)
	}
	var zero store.BatchSizer
	if got := zero.Next(); got < 8 || got > 256 {
		t.Errorf("zero BatchSizer Next = %d", got)
	}
}

// TestBatchSizerRestIsAtMostASecond: after one batch stalled (a disk
// hiccup), background work pauses at most a second, not as long again.
func TestBatchSizerRestIsAtMostASecond(t *testing.T) {
	var b store.BatchSizer
	b.Took(8, 5*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	start := time.Now()
	if err := b.Rest(ctx); err != nil {
		t.Fatalf("Rest after a 5 s batch: %v after %v, want nil within a second", err, time.Since(start))
	}
	// Generous: the machine may be loaded; unbounded, Rest would run into
	// the 4 s deadline above.
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("Rest waited %v after a 5 s batch, want at most about a second", d)
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
