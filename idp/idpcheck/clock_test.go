package idpcheck

import (
	"testing"
	"time"
)

// TestClockOffset: a Date has one-second resolution and was set while the
// request was under way (earlier still by its Age, from a cache): the
// offset reported is the least the answers allow, so an IdP clock in step
// with this host's is never reported off, however slow its answers.
func TestClockOffset(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 700e6, time.UTC) // request sent
	for _, tc := range []struct {
		name string
		seen []dated
		want time.Duration
	}{
		// In step: the Date is the second the IdP answered in.
		{"in step", []dated{{date: t0.Truncate(time.Second), sent: t0, got: t0.Add(50 * time.Millisecond)}}, 0},
		// A slow answer (20 s): the Date may come from any moment of it.
		{"slow answer", []dated{{date: t0.Add(19 * time.Second).Truncate(time.Second), sent: t0, got: t0.Add(20 * time.Second)}}, 0},
		{"ahead", []dated{{date: t0.Add(5 * time.Minute).Truncate(time.Second), sent: t0, got: t0.Add(time.Second)}}, 5*time.Minute - 1700*time.Millisecond},
		{"behind", []dated{{date: t0.Add(-5 * time.Minute).Truncate(time.Second), sent: t0, got: t0.Add(time.Second)}}, -5*time.Minute + 300*time.Millisecond},
		// A cached answer 4 minutes old, from an IdP in step.
		{"cached", []dated{{date: t0.Add(-4 * time.Minute).Truncate(time.Second), age: 4 * time.Minute, sent: t0, got: t0.Add(time.Second)}}, 0},
		// Of two answers, the one closer to this host's clock decides.
		{"two answers", []dated{
			{date: t0.Add(10 * time.Minute).Truncate(time.Second), sent: t0, got: t0},
			{date: t0.Add(2 * time.Minute).Truncate(time.Second), sent: t0, got: t0},
		}, 2*time.Minute - 700*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{seen: tc.seen}
			if got, ok := c.offset(); !ok || got != tc.want {
				t.Errorf("offset = %v, %v; want %v", got, ok, tc.want)
			}
		})
	}
	if _, ok := (&clock{}).offset(); ok {
		t.Error("an offset without any Date")
	}
}
