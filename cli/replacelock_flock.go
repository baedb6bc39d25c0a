//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cli

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockDir takes an exclusive flock on the directory dir without waiting,
// for lockStoreDir: errReplaceRunning when another process holds it.
// The lock is on the directory, not on a lock file beside the store: a
// file would stay behind, owned by whoever ran first (root's 0600 file
// refusing the Caddy user's next run), and in a shared directory another
// user could plant it. (There, another user can still hold the directory's
// lock: restores and migrations into it are then refused, and nothing is
// read or written.)
// Closing the descriptor (unlock) releases it, and so does the process's
// end, however it ends.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errReplaceRunning
		}
		return nil, err
	}
	return func() { _ = f.Close() }, nil
}

// fileLockHeld reports whether another open file holds a flock on the
// file at path, as bbolt takes one on its store: exclusive by a writer (a
// running Caddy, an offline command changing the store), shared by a
// reader (an offline command reading it, such as audit --follow --store).
// Asking for the exclusive lock finds either, whatever admin address that
// Caddy has. It waits up to wait for a holder to let go, as bbolt's own
// lock timeout does; an error says the lock could not be asked for (a
// file system without flock).
func fileLockHeld(path string, wait time.Duration) (bool, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the store path the operator named
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }() // releases the lock if it was taken
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return false, nil
		case !errors.Is(err, syscall.EWOULDBLOCK):
			return false, err
		case time.Now().After(deadline):
			return true, nil
		}
	}
}

// ownerOf returns the numeric owner and group of a file.
func ownerOf(info os.FileInfo) (uid, gid int, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
