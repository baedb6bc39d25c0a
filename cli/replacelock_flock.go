//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cli

import (
	"errors"
	"os"
	"syscall"
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

// ownerOf returns the numeric owner and group of a file.
func ownerOf(info os.FileInfo) (uid, gid int, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
