package gateway_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
)

// TestHousekeeperStoreFile: the Housekeeper says once that opening the
// store created a new, empty one (not again for a config reload's
// Housekeeper on the same store), and says once per change that the
// store's file was removed or replaced under it, or is back.
func TestHousekeeperStoreFile(t *testing.T) {
	db := backendtest.OpenBolt(t)
	path := db.Path()
	core, logs := observer.New(zapcore.InfoLevel)
	const every = 10 * time.Millisecond
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		k := &gateway.Housekeeper{DB: db, Logger: zap.New(core), Now: time.Now, FileCheckEvery: every}
		wg.Go(func() { k.Run(ctx, time.Hour) })
		return func() { cancel(); wg.Wait() }
	}
	count := func(level zapcore.Level, snippet string) int {
		return logs.FilterLevelExact(level).FilterMessageSnippet(snippet).Len()
	}
	// waitFor waits until the log has n lines of level with snippet, then
	// a few checks more, and wants exactly n.
	waitFor := func(what string, level zapcore.Level, snippet string, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); count(level, snippet) < n && time.Now().Before(deadline); {
			time.Sleep(every)
		}
		time.Sleep(10 * every)
		if got := count(level, snippet); got != n {
			t.Fatalf("%s: %d %s lines with %q, want %d; log: %v", what, got, level, snippet, n, logs.All())
		}
	}

	stop := run()
	waitFor("a new store", zapcore.InfoLevel, "created a new, empty store", 1)
	stop()
	stop = run() // a reload: a new Housekeeper on the store it shares
	defer func() { stop() }()
	time.Sleep(10 * every)
	waitFor("a reload", zapcore.InfoLevel, "created a new, empty store", 1)
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 0 {
		t.Fatalf("%d errors with the file in place: %v", n, logs.All())
	}

	aside := path + ".aside"
	if err := os.Rename(path, aside); err != nil {
		t.Fatal(err)
	}
	waitFor("moved away", zapcore.ErrorLevel, "was removed while Caddy runs", 1)

	raw, err := os.ReadFile(aside)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".copy", raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".copy", path); err != nil {
		t.Fatal(err)
	}
	waitFor("a copy moved into place", zapcore.ErrorLevel, "was replaced while Caddy runs", 1)

	if err := os.Rename(aside, path); err != nil {
		t.Fatal(err)
	}
	waitFor("the store's own file back", zapcore.InfoLevel, "at its path again", 1)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor("removed", zapcore.ErrorLevel, "was removed while Caddy runs", 2)
}
