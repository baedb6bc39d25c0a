package adminapi_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/portable"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// backupStall is the handler's stall timeout in these tests: short, so
// that they wait little, and long beside the scheduler's hiccups.
const backupStall = 300 * time.Millisecond

// filledStore is a real bbolt store holding about size bytes of random
// (incompressible) secrets, so that its backup is larger than the socket
// buffers between a server and a client that stops reading.
func filledStore(t *testing.T, size int) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() }) // after a test closed it, this fails harmlessly
	storetest.FillSecrets(t, db, size, 32)
	return db
}

// backupServer serves GET /sso/backup of db over a real HTTP server, as
// caddymodule's admin.api.sso does, and reports on the returned channel
// each time the handler returns. sendBuffer, when not 0, is the socket
// send buffer of each connection it accepts (sendBuffers).
func backupServer(t *testing.T, db *bolt.DB, logger *zap.Logger, sendBuffer int) (*httptest.Server, <-chan error) {
	t.Helper()
	done := make(chan error, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := adminapi.Handler{Accounts: &account.Service{Store: db}, Logger: logger, BackupStall: backupStall,
			Backup: func(w io.Writer) (int64, error) { return portable.Backup(r.Context(), db, w) }}
		done <- h.Serve(w, r)
	}))
	if sendBuffer != 0 {
		srv.Listener = sendBuffers{Listener: srv.Listener, t: t, size: sendBuffer}
	}
	srv.Start()
	// Closing the connections first ends a handler still writing to one.
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv, done
}

// sendBuffers gives each accepted connection a socket send buffer of
// size. A failure to set it is reported, not returned: an error from
// Accept would end the server, and leave its client waiting for nothing.
type sendBuffers struct {
	net.Listener
	t    *testing.T
	size int
}

func (l sendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := c.(*net.TCPConn).SetWriteBuffer(l.size); err != nil {
		l.t.Errorf("setting the send buffer of the connection from %s: %v", c.RemoteAddr(), err)
	}
	return c, nil
}

// TestBackupStalledClient: a client that stops reading a backup makes the
// handler give it up after the stall timeout, which ends the store's read
// transaction, so that the store closes at once (Caddy's stop waited for
// it for good). The abandoned backup is logged, and a client that resumes
// reading gets a truncated stream that Client.Backup refuses.
func TestBackupStalledClient(t *testing.T) {
	// Small send buffers on the server's side too: the kernel's default
	// grows up to tcp_wmem's maximum (4 MiB here), and before a write can
	// stall the handler must gzip enough of the backup to fill it, CPU
	// work that took a loaded test process longer than any bound on the
	// stall, so that the test measured its share of a core. Then 1 MiB
	// is well beyond the ~256 KiB the buffers of both ends hold (the
	// kernel doubles what SetReadBuffer and SetWriteBuffer ask).
	db := filledStore(t, 1<<20)
	core, logs := observer.New(zapcore.InfoLevel)
	srv, done := backupServer(t, db, zap.New(core), 64<<10)
	addr := srv.Listener.Addr().String()
	// Small receive buffers: the kernel would otherwise take up to
	// tcp_rmem's maximum (32 MiB here) of the stream for a client that
	// reads nothing.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}
	handlerReturns := func(t *testing.T, what string) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: the handler failed: %v", what, err)
			}
		case <-time.After(2 * time.Minute):
			// A bound on a hang only: with the small buffers the handler
			// gives up within about a second, and without the stall guard
			// it waits for good.
			t.Fatalf("%s: the backup handler still writes after 2 min (stall timeout %s)", what, backupStall)
		}
	}

	t.Run("client pauses and resumes", func(t *testing.T) {
		cl := &adminapi.Client{Do: func(method, uri string) (*http.Response, error) {
			req, err := http.NewRequest(method, srv.URL+uri, nil)
			if err != nil {
				return nil, err
			}
			return (&http.Client{Transport: &http.Transport{DialContext: dial}}).Do(req)
		}}
		// The client stops reading at its first write, until the handler
		// has given up (or long after it should have).
		paused := false
		_, err := cl.Backup(context.Background(), writerFunc(func(p []byte) (int, error) {
			if !paused {
				paused = true
				handlerReturns(t, "a client that pauses")
			}
			return len(p), nil
		}))
		if err == nil {
			t.Fatalf("Client.Backup took the stream of a backup abandoned after a stall as complete; logs %v", logs.All())
		}
		t.Logf("Client.Backup: %v", err)
		// The line names the stall timeout the handler was given, not the
		// default one.
		if n := logs.FilterMessage("store backup abandoned: the client read nothing for " + backupStall.String()).Len(); n != 1 {
			t.Errorf("%d log lines say the backup was abandoned after %s, want 1; logs: %v", n, backupStall, logs.All())
		}
	})

	t.Run("client never reads", func(t *testing.T) {
		conn, err := dial(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close() // also ends a handler that waits on it without the fix
		if _, err := fmt.Fprintf(conn, "GET /sso/backup HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
			t.Fatal(err)
		}
		handlerReturns(t, "a client that never reads")
		closed := make(chan error, 1)
		go func() { closed <- db.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the store's Close still waits after the backup was given up")
		}
	})
}

// TestBackupComplete: a client that reads gets the whole backup, with the
// trailers that say so, through the stall guard.
func TestBackupComplete(t *testing.T) {
	db := filledStore(t, 1<<20)
	// The kernel's own send buffer: it grows to hold much of the backup,
	// so that a reader descheduled on a loaded machine is not taken for
	// one that stalled.
	srv, done := backupServer(t, db, zap.NewNop(), 0)
	cl := &adminapi.Client{Do: func(method, uri string) (*http.Response, error) {
		req, err := http.NewRequest(method, srv.URL+uri, nil)
		if err != nil {
			return nil, err
		}
		return http.DefaultClient.Do(req)
	}}
	var buf strings.Builder
	if _, err := cl.Backup(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	counts, err := portable.Verify(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	if counts.Secrets < 16 {
		t.Errorf("the backup holds %d secrets, want 16", counts.Secrets)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
