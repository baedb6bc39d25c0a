package logbudget_test

import (
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
