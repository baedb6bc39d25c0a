package postgres

import (
	"testing"
	"time"
)

// TestListenPauseWithinItsBound: the listener's pause before reconnecting
// stays between half its step and the step, and so within backoffMax, the
// bound docs/cluster.md gives ("0.1 s up to 5 s"); the jitter once took it
// to 7.5 s.
func TestListenPauseWithinItsBound(t *testing.T) {
	for _, pause := range []time.Duration{backoffMin, time.Second, backoffMax} {
		lo, hi := pause, time.Duration(0)
		for range 2000 {
			w := jittered(pause)
			lo, hi = min(lo, w), max(hi, w)
		}
		if lo < pause/2 || hi > pause {
			t.Errorf("pause %v: waits from %v to %v, want within [%v, %v]", pause, lo, hi, pause/2, pause)
		}
		if hi-lo < pause/4 {
			t.Errorf("pause %v: waits from %v to %v: no jitter to speak of", pause, lo, hi)
		}
	}
}
