package testport

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// TestPickReserves: ports handed out are distinct, below the ephemeral
// range, bindable, and locked against every other opener of their lock
// file (another test process) until released.
func TestPickReserves(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		p := For(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < low || p > high {
			t.Fatalf("port %d outside %d-%d", p, low, high)
		}
	}
	port, release, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("the port is not bindable: %v", err)
	}
	_ = l.Close()
	lock := func() error {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "caddy-sso-test-ports", strconv.Itoa(port)), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err := lock(); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("a reserved port's lock was taken by another opener: %v", err)
	}
	release()
	if err := lock(); err != nil {
		t.Fatalf("a released port stays locked: %v", err)
	}
}
