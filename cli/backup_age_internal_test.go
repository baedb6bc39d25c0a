package cli

import (
	"testing"
	"time"
)

// TestBackupAge: how long ago a restored backup was taken, as the restore
// prints it.
func TestBackupAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		20 * time.Second:                               "less than a minute ago",
		3*time.Minute + 59*time.Second:                 "3m ago",
		5*time.Hour + 7*time.Minute:                    "5h 7m ago",
		27*time.Hour + 5*time.Minute:                   "1 day 3h ago",
		40*24*time.Hour + 30*time.Minute:               "40 days 0h ago",
		-(2*time.Hour + 1*time.Minute + 3*time.Second): "in the future by 2h 1m: is this machine's clock right?",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestBackupTakenLine: a backup whose header has no time (written by hand,
// say) is not said to be two thousand years old.
func TestBackupTakenLine(t *testing.T) {
	now := time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		r    restored
		want string
	}{
		{restored{taken: now.Add(-27 * time.Hour)}, "backup taken 2026-12-02 10:00:00 UTC (1 day 3h ago)"},
		{restored{taken: now.Add(-time.Hour), fileTime: true}, "backup file last modified 2026-12-03 12:00:00 UTC (1h 0m ago)"},
		{restored{}, "the backup does not say when it was taken"},
	} {
		if got := c.r.takenLine(now); got != c.want {
			t.Errorf("takenLine = %q, want %q", got, c.want)
		}
	}
}
