//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cli

import (
	"errors"
	"os"
	"time"
)

// lockDir cannot lock a directory here: lockStoreDir warns that a
// concurrent restore or migration would not be refused, and goes on.
func lockDir(string) (func(), error) { return nil, errors.ErrUnsupported }

// fileLockHeld cannot ask for bbolt's lock here: readOldStore's read-only
// open still finds a writer holding the store.
func fileLockHeld(string, time.Duration) (bool, error) { return false, errors.ErrUnsupported }

// ownerOf knows no numeric owners here: the new store keeps the owner it
// was created with.
func ownerOf(os.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
