package testport

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
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
		f, err := lockFile(filepath.Join(os.TempDir(), "caddy-sso-test-ports", strconv.Itoa(port)))
		if err == nil {
			_ = f.Close()
		}
		return err
	}
	if err := lock(); !errors.Is(err, errHeld) {
		t.Fatalf("a reserved port's lock was taken by another opener: %v", err)
	}
	release()
	if err := lock(); err != nil {
		t.Fatalf("a released port stays locked: %v", err)
	}
}
