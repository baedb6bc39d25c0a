// Package testport hands out loopback ports for the servers tests and
// benchmarks configure by number (Caddy sites, nginx, PostgreSQL), across
// every test process of this repository at once.
//
// The usual trick (listen on port 0, close, hand the number on) races when
// `go test ./...` runs packages in parallel: another process's port-0
// listen or outgoing connection may get the same number before the server
// binds it. With most servers the loser fails to bind; Caddy sets
// SO_REUSEPORT, so two Caddy processes bind one port without a word and
// the kernel splits the connections between them, and a test talks to
// another test's Caddy (a 404 from a stranger's upstream). So ports here
// come from below the kernel's ephemeral range, which it never hands out
// for port 0 or outgoing connections, and each is reserved with an
// exclusive lock on a file named after it, which other processes (and
// this one) respect, for as long as the port is in use.
package testport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// The range ports come from: above the well-known and registered services
// a test machine runs, below Linux's default ephemeral range (32768-60999)
// and that of Windows and macOS (49152-65535). FreeBSD's starts at 10000,
// so there a port-0 listen may still take one; the locks keep this
// repository's tests apart everywhere.
const (
	low  = 20000
	high = 32767
)

// held keeps each reservation's open lock file reachable: a file the
// garbage collector finalizes is closed, and its lock released, while the
// port may still be in use. It is the package's only state, and it is
// process-wide by nature, as the reservations are.
var held = struct {
	sync.Mutex
	files map[int]*os.File
}{files: map[int]*os.File{}}

// Pick reserves a free loopback port until release is called or the
// process exits.
func Pick() (port int, release func(), err error) {
	dir := filepath.Join(os.TempDir(), "caddy-sso-test-ports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("testport: %w", err)
	}
	for range 500 {
		port := low + rand.IntN(high-low+1) //nolint:gosec // spreads tests over the range; not a secret
		f, err := lockFile(filepath.Join(dir, strconv.Itoa(port)))
		if errors.Is(err, errHeld) {
			continue // another test holds it
		}
		if err != nil {
			return 0, nil, fmt.Errorf("testport: lock: %w", err)
		}
		// Something outside the tests may listen there.
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			_ = f.Close()
			continue
		}
		_ = l.Close()
		held.Lock()
		held.files[port] = f
		held.Unlock()
		return port, func() { releasePort(port) }, nil
	}
	return 0, nil, errors.New("testport: no free port found in 500 tries")
}

// errHeld: another open file (this process's or another's) holds the
// lock lockFile asked for.
var errHeld = errors.New("the lock file is held")

func releasePort(port int) {
	held.Lock()
	f := held.files[port]
	delete(held.files, port)
	held.Unlock()
	if f != nil {
		_ = f.Close()
	}
}

// For is Pick for a test: the port is released when the test ends.
func For(t testing.TB) int {
	t.Helper()
	port, release, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return port
}
