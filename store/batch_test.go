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

// contendedTx is a transaction that reports Contended once a given number
// of items have run.
type contendedTx struct {
	store.Tx
	ran   *int
	after int // -1: never
}

func (c contendedTx) Contended() bool { return c.after >= 0 && *c.ran >= c.after }

func TestRunItems(t *testing.T) {
	errItem := errors.New("item failed")
	tests := []struct {
		name           string
		n              int
		work           int // items that find something to do
		contendedAfter int // -1: never
		failAt         int // -1: never
		done           int
		drained        bool
		err            error
	}{
		{"whole batch", 5, 10, -1, -1, 5, false, nil},
		{"runs out of work", 5, 3, -1, -1, 3, true, nil},
		{"no work", 5, 0, -1, -1, 0, true, nil},
		{"a waiting Update ends the batch", 5, 10, 2, -1, 2, false, nil},
		{"at least one item however contended", 5, 10, 0, -1, 1, false, nil},
		{"an error stops it", 5, 10, -1, 1, 1, false, errItem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran := 0
			tx := contendedTx{ran: &ran, after: tt.contendedAfter}
			done, drained, err := store.RunItems(tx, tt.n, func(i int) (bool, error) {
				if i != ran {
					t.Fatalf("item %d called after %d items", i, ran)
				}
				if i == tt.failAt {
					return false, errItem
				}
				if i >= tt.work {
					return false, nil
				}
				ran++
				return true, nil
			})
			if done != tt.done || drained != tt.drained || !errors.Is(err, tt.err) {
				t.Errorf("RunItems = %d, %v, %v; want %d, %v, %v", done, drained, err, tt.done, tt.drained, tt.err)
			}
			if done != ran {
				t.Errorf("reported %d items done, %d ran", done, ran)
			}
		})
	}
}
