package bolt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// mappedBytes is the size of this process's mappings of path, from
// /proc/self/maps.
func mappedBytes(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != path {
			continue
		}
		from, to, _ := strings.Cut(fields[0], "-")
		a, err1 := strconv.ParseInt(from, 16, 64)
		b, err2 := strconv.ParseInt(to, 16, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("reading /proc/self/maps: %q", sc.Text())
		}
		total += b - a
	}
	return total
}

// TestStoreGrowsWithoutRemapping: a writable store maps room to grow up
// front, so that writing tens of megabytes never maps the file again
// (each remap waits for every reader and drops every resident page from
// the page tables: see reservedMapping); a read-only one maps only the
// file.
func TestStoreGrowsWithoutRemapping(t *testing.T) {
	db := openTest(t)
	path := db.Path()
	if got := mappedBytes(t, path); got < minReservedMapping {
		t.Errorf("a new store maps %d bytes, want at least %d", got, minReservedMapping)
	}
	before := db.bdb.Info().Data
	value := bytes.Repeat([]byte("x"), 64<<10)
	for i := range 16 { // 16 commits of 4 MiB
		err := db.bdb.Update(func(btx *bolt.Tx) error {
			b, err := btx.CreateBucketIfNotExists([]byte("scratch"))
			if err != nil {
				return err
			}
			for j := range 64 {
				if err := b.Put(fmt.Appendf(nil, "%03d-%03d", i, j), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if fi, _ := os.Stat(path); fi.Size() < 64<<20 {
		t.Fatalf("the file grew to %d bytes only", fi.Size())
	}
	if db.bdb.Info().Data != before {
		t.Error("the store was mapped again while it grew")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := mappedBytes(t, path); got >= minReservedMapping {
		t.Errorf("a read-only store maps %d bytes; it cannot grow", got)
	}
}

func TestReservedMapping(t *testing.T) {
	for _, tt := range []struct{ file, want int64 }{
		{0, minReservedMapping},
		{1 << 30, minReservedMapping},
		{6 << 30, 12 << 30},
	} {
		if got := reservedMapping(tt.file); int64(got) != tt.want {
			t.Errorf("reservedMapping(%d) = %d, want %d", tt.file, got, tt.want)
		}
	}
}

// TestOpenReservingWithoutAddressSpace: when the address space is limited
// (ulimit -v) below the reservation, the store opens mapping only what
// the file needs; other errors are not retried.
func TestOpenReservingWithoutAddressSpace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	var tried []int
	bdb, err := openReserving(&bolt.Options{}, 0, func(o *bolt.Options) (*bolt.DB, error) {
		tried = append(tried, o.InitialMmapSize)
		if o.InitialMmapSize > 0 {
			return nil, fmt.Errorf("mmap: %w", syscall.ENOMEM)
		}
		return bolt.Open(path, 0o600, o)
	})
	if err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	if len(tried) != 2 || tried[0] < minReservedMapping || tried[1] != 0 {
		t.Errorf("tried mappings %v, want the reservation and then none", tried)
	}
	other := errors.New("locked")
	tried = nil
	_, err = openReserving(&bolt.Options{}, 0, func(o *bolt.Options) (*bolt.DB, error) {
		tried = append(tried, o.InitialMmapSize)
		return nil, other
	})
	if !errors.Is(err, other) || len(tried) != 1 {
		t.Errorf("another error: %v after %d tries, want it after 1", err, len(tried))
	}
}
