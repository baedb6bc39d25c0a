package bolt

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// minReservedMapping is the least address space a writable store maps.
const minReservedMapping = 8 << 30

// reservedMapping is the address space to map for a store file of the
// given size (bolt.Options.InitialMmapSize): twice the file, and at least
// minReservedMapping.
//
// bbolt maps the file, and when a commit needs the file to grow past the
// mapping it maps it again: it waits for every open read transaction,
// unmaps the old mapping (tearing down the page tables of everything
// resident) and the next transactions fault their pages back in; reads and
// writes wait meanwhile. Left to itself it doubles the mapping up to 1 GiB
// and then grows it 1 GiB at a time, so a growing store paid that every
// GiB: a write held the lock 91-117 ms on a 2.9 GiB store on tmpfs
// (docs/operations.md, "Address space"). Address space is not memory (the
// resident pages are the ones touched, as before), so on a 64-bit system
// the store reserves room to double, as etcd reserves 10 GiB. Not on a
// 32-bit system, whose address space has no such room, nor on Windows,
// where bbolt grows the file to the size of its mapping. (With a large
// mapping bbolt grows the file 16 MiB ahead of its data, as it did anyway
// for stores past 16 MiB; the extension is sparse.)
func reservedMapping(fileSize int64) int {
	if strconv.IntSize < 64 || runtime.GOOS == "windows" {
		return 0
	}
	return int(max(minReservedMapping, 2*fileSize))
}

// fileSize is the size of the file at path, 0 when there is none yet.
func fileSize(path string) int64 {
	fi, err := os.Stat(path) //nolint:gosec // G703: the store path the operator configured
	if err != nil {
		return 0
	}
	return fi.Size()
}

// openReserving opens a store with o.InitialMmapSize set to the
// reservation for a file of fileSize bytes. When the mmap is refused for
// want of address space (a limit on it, such as ulimit -v or systemd's
// LimitAS=, that the reservation exceeds) it opens again mapping only what
// the file needs, as bbolt would by itself.
func openReserving(o *bolt.Options, fileSize int64, open func(*bolt.Options) (*bolt.DB, error)) (*bolt.DB, error) {
	o.InitialMmapSize = reservedMapping(fileSize)
	bdb, err := open(o)
	if err != nil && o.InitialMmapSize > 0 && errors.Is(err, syscall.ENOMEM) {
		o.InitialMmapSize = 0
		return open(o)
	}
	return bdb, err
}
