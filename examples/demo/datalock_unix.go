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
	// O_NOFOLLOW: a link planted at the lock file's name would otherwise
	// have the demo create (or lock) the file it points to. The lock file
	// is not removed and made anew, as the demo's other files are
	// (writeAnew): the running demo holds its lock on that very file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
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

// othersMayWrite says why another user could write into the directory
// fi, or "" when only its owner, the demo's user, can.
func othersMayWrite(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Sprintf("belongs to another user (uid %d)", st.Uid)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Sprintf("can be written by its group or by others (mode %v)", perm)
	}
	return ""
}
