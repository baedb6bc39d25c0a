package postgres

import (
	"testing"
	"time"
)

// TestQueueWatch: the listener warns about the NOTIFY queue as soon as its
// usage rises above half, then at most once a minute while it stays
// there, and at once again after it fell and rose anew. Nothing warned
// before the queue was full, when every notice-sending sign-in failed.
func TestQueueWatch(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var w queueWatch
	for _, step := range []struct {
		after time.Duration // since start
		usage float64
		want  bool
	}{
		{0, 0, false},
		{5 * time.Second, 0.5, false},
		{10 * time.Second, 0.51, true},
		{15 * time.Second, 0.6, false},
		{69 * time.Second, 0.99, false},
		{70 * time.Second, 0.99, true},
		{75 * time.Second, 1, false},
		{80 * time.Second, 0, false},
		{85 * time.Second, 0.7, true},
		{90 * time.Second, 0.7, false},
	} {
		if got := w.warn(step.usage, start.Add(step.after)); got != step.want {
			t.Errorf("at +%v, usage %.2f: warn %v, want %v", step.after, step.usage, got, step.want)
		}
	}
}
