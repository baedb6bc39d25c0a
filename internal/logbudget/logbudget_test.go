package logbudget_test

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/logbudget"
)

// TestBudget: one WARN per key per window, the rest at DEBUG, keys apart.
func TestBudget(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	var b logbudget.Budget
	t0 := time.Unix(1_700_000_000, 0)
	for i, at := range []time.Duration{0, time.Second, 59 * time.Second, logbudget.Window} {
		b.Warn(log, "a", t0.Add(at), "refused", zap.Int("n", i))
	}
	b.Warn(log, "b", t0, "refused")
	var levels []zapcore.Level
	for _, e := range logs.All() {
		levels = append(levels, e.Level)
	}
	want := []zapcore.Level{zapcore.WarnLevel, zapcore.DebugLevel, zapcore.DebugLevel, zapcore.WarnLevel, zapcore.WarnLevel}
	if len(levels) != len(want) {
		t.Fatalf("levels %v, want %v", levels, want)
	}
	for i := range want {
		if levels[i] != want[i] {
			t.Fatalf("levels %v, want %v", levels, want)
		}
	}
}

// TestBudgetRepeatCount: the next line at the key's level says how many
// went to DEBUG since the last, at the level asked for, one line included.
func TestBudgetRepeatCount(t *testing.T) {
	for _, held := range []int{1, 4} {
		t.Run(fmt.Sprint(held, " held back"), func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			log := zap.New(core)
			var b logbudget.Budget
			t0 := time.Unix(1_700_000_000, 0)
			for i := range held + 1 {
				b.Error(log, "idp/idp_unavailable", t0.Add(time.Duration(i)*time.Second), "starting sign-in")
			}
			b.Error(log, "idp/idp_unavailable", t0.Add(logbudget.Window), "starting sign-in")
			all := logs.All()
			if all[0].Level != zapcore.ErrorLevel || all[held+1].Level != zapcore.ErrorLevel || all[1].Level != zapcore.DebugLevel {
				t.Fatalf("levels %v %v %v", all[0].Level, all[1].Level, all[held+1].Level)
			}
			if got := all[held+1].ContextMap()["repeated_last_minute"]; got != int64(held) {
				t.Errorf("repeated_last_minute %v, want %d", got, held)
			}
			if _, ok := all[0].ContextMap()["repeated_last_minute"]; ok {
				t.Errorf("the first line has a repeat count")
			}
		})
	}
}

// TestBudgetForgottenKeysCounted: when more keys than MaxKeys come, those
// forgotten to make room are not lost: the next line says how many of
// their lines went to DEBUG, and from how many keys.
func TestBudgetForgottenKeysCounted(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	var b logbudget.Budget
	t0 := time.Unix(1_700_000_000, 0)
	for range 5 {
		b.Warn(log, "user-a", t0, "denied") // 1 WARN, 4 DEBUG
	}
	for i := range logbudget.MaxKeys + 10 {
		b.Warn(log, fmt.Sprint("user-", i), t0.Add(time.Second), "denied")
	}
	b.Warn(log, "user-new", t0.Add(logbudget.Window+time.Second), "denied")
	all := logs.All()
	last := all[len(all)-1].ContextMap()
	// user-a's 4, and the 11 keys that found no room beside user-a and
	// the MaxKeys-1 others (one line each).
	if last["other_lines_not_logged"] != int64(15) || last["other_keys_not_logged"] != int64(12) {
		t.Errorf("last line %v, want other_lines_not_logged 15 from other_keys_not_logged 12", last)
	}
}

// TestBudgetFoldedKeysCountsDistinctKeys: a key that finds no room line
// after line (one source repeating itself while the budget is full) is one
// key in other_keys_not_logged, not one per line.
func TestBudgetFoldedKeysCountsDistinctKeys(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	var b logbudget.Budget
	t0 := time.Unix(1_700_000_000, 0)
	for i := range logbudget.MaxKeys {
		b.Warn(log, fmt.Sprint("source-", i), t0, "refused")
	}
	for range 5 {
		b.Warn(log, "one-more-source", t0.Add(time.Second), "refused")
	}
	b.Warn(log, "source-0", t0.Add(2*logbudget.Window), "refused")
	all := logs.FilterLevelExact(zapcore.WarnLevel).All()
	last := all[len(all)-1].ContextMap()
	if last["other_keys_not_logged"] != int64(1) || last["other_lines_not_logged"] != int64(5) {
		t.Errorf("last WARN %v: want 5 lines from 1 key", last)
	}
}

// TestBudgetEvery: a Budget's Every replaces the minute's window, and
// the repeat count is named for it.
func TestBudgetEvery(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	b := logbudget.Budget{Every: time.Hour}
	t0 := time.Unix(1_700_000_000, 0)
	for _, at := range []time.Duration{0, logbudget.Window, 59 * time.Minute, time.Hour} {
		b.Warn(log, "okta/ada", t0.Add(at), "identity headers too large")
	}
	var levels []zapcore.Level
	for _, e := range logs.All() {
		levels = append(levels, e.Level)
	}
	if fmt.Sprint(levels) != "[warn debug debug warn]" {
		t.Fatalf("levels %v, want [warn debug debug warn]", levels)
	}
	last := logs.All()[3].ContextMap()
	if last["repeated_since_last"] != int64(2) || last["repeated_last_minute"] != nil {
		t.Errorf("fields %v, want repeated_since_last 2", last)
	}
}

// overflowFoldedKeys holds MaxKeys keys, then sends one line each of
// MaxKeys+extra other keys, which find no room (more than the folded-key
// set holds), and returns the fields of the next line at WARN, which
// reports them.
func overflowFoldedKeys(t *testing.T, b *logbudget.Budget, log *zap.Logger, logs *observer.ObservedLogs, t0 time.Time, extra int) map[string]any {
	t.Helper()
	for i := range logbudget.MaxKeys {
		b.Warn(log, fmt.Sprint("held-", i), t0, "refused")
	}
	for i := range logbudget.MaxKeys + extra {
		b.Warn(log, fmt.Sprint("no-room-", i), t0.Add(time.Second), "refused")
	}
	b.Warn(log, "held-0", t0.Add(logbudget.Window), "refused")
	all := logs.FilterLevelExact(zapcore.WarnLevel).All()
	return all[len(all)-1].ContextMap()
}

// TestBudgetFoldedKeysOverflowCounted: past MaxKeys folded keys, those the
// set cannot hold still count, so that other_keys_not_logged is never an
// undercount.
func TestBudgetFoldedKeysOverflowCounted(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	var b logbudget.Budget
	last := overflowFoldedKeys(t, &b, zap.New(core), logs, time.Unix(1_700_000_000, 0), 7)
	want := int64(logbudget.MaxKeys + 7)
	if last["other_keys_not_logged"] != want || last["other_lines_not_logged"] != want {
		t.Errorf("the line after the overflow %v: want %d lines from %d keys", last, want, want)
	}
}

// TestBudgetFoldedOverflowReportedOnce: the keys past the folded-key set
// are reported with the line that reports them, not again with later ones.
func TestBudgetFoldedOverflowReportedOnce(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	var b logbudget.Budget
	t0 := time.Unix(1_700_000_000, 0)
	overflowFoldedKeys(t, &b, log, logs, t0, 7)
	// One line of held-0 goes to DEBUG; a new key, once every window has
	// ended, forgets held-0 and reports that line alone.
	b.Warn(log, "held-0", t0.Add(logbudget.Window+time.Second), "refused")
	b.Warn(log, "late", t0.Add(3*logbudget.Window), "refused")
	all := logs.FilterLevelExact(zapcore.WarnLevel).All()
	last := all[len(all)-1].ContextMap()
	if last["other_keys_not_logged"] != int64(1) || last["other_lines_not_logged"] != int64(1) {
		t.Errorf("the next report %v: want 1 line from 1 key", last)
	}
}
