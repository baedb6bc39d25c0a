//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package testport

import (
	"errors"
	"os"
	"syscall"
)

// lockFile opens the file at path, creating it, and takes an exclusive
// flock on it without waiting: errHeld when another open file holds it.
// Closing the file, or the process's end, releases it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600) //nolint:gosec // G304: a file in our own directory
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errHeld
		}
		return nil, err
	}
	return f, nil
}
