package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/big"
	"os"
	"syscall"
)

// ErrDamaged means the file is not a whole bbolt database (truncated, a foreign
// or garbled header). Open refuses it rather than let bbolt read past its
// end, which kills the process, or start a new store in its place.
var ErrDamaged = errors.New("store file is damaged")

// restoreHint ends every message about a store that cannot be used as it is.
const restoreHint = "restore a backup with `caddy sso restore`"

// bbolt's file header: two meta pages, each a 16-byte page header then
// magic, version, pageSize, flags (4 bytes each), root bucket (16),
// freelist page, high-water page ID, transaction ID (8 each), and an
// FNV-64a checksum of the 56 bytes before it. Written in the machine's
// byte order, which is little-endian on every platform Caddy ships for.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumOffset  = 56

	// A page header's flags (after the page ID) say what the page holds.
	branchPage   = 0x01
	leafPage     = 0x02
	freelistPage = 0x10
	// noFreelist: the list was not written (NoFreelistSync); bbolt
	// rebuilds it from the pages.
	noFreelist = ^uint64(0)
)

type boltMeta struct {
	pageSize     uint32
	root         uint64 // the page of the root bucket: a branch or a leaf
	freelist     uint64 // the page of the free-page list, or noFreelist
	highWater    uint64 // pages in use: the file must reach highWater*pageSize
	txid         uint64
	magic, valid bool
}

func readMeta(b []byte) boltMeta {
	if len(b) < pageHeaderSize+metaSumOffset+8 {
		return boltMeta{}
	}
	m := b[pageHeaderSize:]
	le := binary.LittleEndian
	h := fnv.New64a()
	_, _ = h.Write(m[:metaSumOffset])
	return boltMeta{
		pageSize:  le.Uint32(m[8:]),
		root:      le.Uint64(m[16:]),
		freelist:  le.Uint64(m[32:]),
		highWater: le.Uint64(m[40:]),
		txid:      le.Uint64(m[48:]),
		magic:     le.Uint32(m[0:]) == boltMagic,
		valid: le.Uint32(m[0:]) == boltMagic && le.Uint32(m[4:]) == boltVersion &&
			le.Uint64(m[metaSumOffset:]) == h.Sum64(),
	}
}

// dataSize is where the data of a sound bbolt file ends.
func dataSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	head := make([]byte, 2*64<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, err
	}
	m := newestMeta(head[:n])
	if !m.valid {
		return 0, errors.New("no valid bbolt header")
	}
	return int64(m.highWater) * int64(m.pageSize), nil
}

// newestMeta reads both copies of the header and returns the valid one of
// the later transaction (or, when neither is valid, the first).
func newestMeta(head []byte) boltMeta {
	first := readMeta(head)
	var second boltMeta
	for _, ps := range []uint32{first.pageSize, 4096} {
		if ps >= 1024 && ps <= 64<<10 && int(2*ps) <= len(head) {
			if second = readMeta(head[ps:]); second.valid {
				break
			}
		}
	}
	if !first.valid && second.valid || second.valid && second.txid > first.txid {
		return second
	}
	first.magic = first.magic || second.magic
	return first
}

// preflight checks an existing store file before bbolt maps it: it must
// have a valid header whose data fits in the file. A missing file is fine
// (Open creates it).
func preflight(path string) error {
	f, err := os.Open(path) //nolint:gosec // G703: the store path the operator configured
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return openError(path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return openError(path, err)
	}
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("bolt: store %s is damaged: %s; %s, or move the file away to start an empty store: %w",
			path, fmt.Sprintf(format, args...), restoreHint, ErrDamaged)
	}
	size := fi.Size()
	if size == 0 {
		return damaged("the file is empty (a store always has a header)")
	}
	head := make([]byte, 2*64<<10) // two meta pages of the largest page size
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return openError(path, err)
	}
	m := newestMeta(head[:n])
	switch {
	case !m.valid && !m.magic:
		return damaged("it is not a bbolt database (no bbolt header)")
	case !m.valid:
		return damaged("both copies of its bbolt header are garbled")
	case m.pageSize < 512 || m.pageSize > 64<<10:
		// A checksum is not a signature: the header may still lie.
		return damaged("its bbolt header names a page size of %d bytes", m.pageSize)
	case m.highWater > uint64(size)/uint64(m.pageSize): // no product: it may overflow
		return damaged("it is %d bytes, but its data reaches byte %d: it was truncated", size, new(big.Int).Mul(
			new(big.Int).SetUint64(m.highWater), big.NewInt(int64(m.pageSize))))
	}
	// bbolt trusts the pages the header points at, and panics on garbage
	// there (Open's recover is the last resort, and cannot release the
	// lock of the mapping it leaves behind).
	if flags, err := pageFlags(f, m, m.root); err != nil || flags != branchPage && flags != leafPage {
		return damaged("its root page %d is garbled", m.root)
	}
	if m.freelist != noFreelist {
		if flags, err := pageFlags(f, m, m.freelist); err != nil || flags != freelistPage {
			return damaged("its free-page list (page %d) is garbled", m.freelist)
		}
	}
	return nil
}

// pageFlags reads the flags of a page the header names, which must lie
// inside the data.
func pageFlags(f *os.File, m boltMeta, id uint64) (uint16, error) {
	if id < 2 || id >= m.highWater {
		return 0, fmt.Errorf("page %d outside the data", id)
	}
	var h [pageHeaderSize]byte
	if _, err := f.ReadAt(h[:], int64(id)*int64(m.pageSize)); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(h[8:]), nil
}

// openError words a failure to open the file by its cause.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("bolt: open store %s: it is on a read-only file system; Caddy needs to write its store (or open it read-only for inspection): %w", path, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("bolt: open store %s: permission denied; the user Caddy runs as needs read and write access to the file and its directory: %w", path, err)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("bolt: open store %s: the disk is full: %w", path, err)
	}
	return fmt.Errorf("bolt: open store %s: %w", path, err)
}
