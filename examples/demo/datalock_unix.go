//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes an exclusive flock on the lock file in dir, without
// waiting, for as long as the demo runs: a second demo given the same
// -data would otherwise rewrite the running demo's Caddyfile and add to
// its log, and only then fail on the store, which the running one holds.
// It is a file, not the directory, that is locked: `caddy sso restore`
// locks the store's directory for its own runs, and would take the demo
// for one. Closing the file releases the lock, and so does the process's
// end, however it ends.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "demo.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the data directory %s is in use by another demo; choose another with -data DIR", dir)
		}
		return nil, fmt.Errorf("locking the data directory: %w", err)
	}
	return func() { _ = f.Close() }, nil
}
