package store_test

import (
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
	if got := zero.Next(); got < 8 || got > 1000 {
		t.Errorf("zero BatchSizer Next = %d", got)
	}
}
