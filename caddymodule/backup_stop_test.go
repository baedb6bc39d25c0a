package caddymodule_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/adminapi"
	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// TestBackupToStalledClientEndsWithItsConfig: a backup over the admin API
// holds a read transaction of the store for as long as its client reads,
// and bbolt's Close waits for it. A config that stops waits for it as for
// any request in flight, at most gateway.DrainWait, and the last user of
// the store handle ends it before the close (caddy.Stop, a reload that
// moved the store off the file): its client, which stopped reading, gets a
// stream cut short that Client.Backup (and so `caddy sso backup`) refuses.
// Before, those waited for the client: up to adminapi's stall timeout of a
// minute, and for good for one reading slowly. A reload that keeps the
// store leaves the backup be.
func TestBackupToStalledClientEndsWithItsConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		// stop returns once the store file is given back, or the old
		// config retired.
		stop func(t *testing.T, w *oidcWorld)
		cut  bool // the backup is cut, not finished
	}{
		{"reload keeping the store", func(t *testing.T, w *oidcWorld) {
			// A changed config (Caddy skips an unchanged one) on the same
			// file: the handle stays open, and the backup goes on once
			// the old config retired.
			w.gw.reload(strings.Replace(w.caddyfile(), "sso test\n", "sso test {\n\t\theaders default\n\t}\n", 1))
			time.Sleep(ssogateway.DrainWait + time.Second)
		}, false},
		{"caddy.Stop", func(t *testing.T, _ *oidcWorld) {
			if err := caddy.Stop(); err != nil {
				t.Errorf("caddy.Stop: %v", err)
			}
		}, true},
		{"reload moving the store", func(t *testing.T, w *oidcWorld) {
			moved := strings.Replace(w.caddyfile(), w.gw.StorePath(), w.gw.Dir+"/moved.db", 1)
			if status, body := w.gw.tryReload(moved); status != http.StatusOK {
				t.Errorf("reload: %d %s", status, body)
				return
			}
			for { // the old config closes the store in the background
				db, err := bolt.Open(w.gw.StorePath(), bolt.Options{LockTimeout: 100 * time.Millisecond})
				if err == nil {
					_ = db.Close()
					return
				}
			}
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) { backupThroughStop(t, tt.stop, tt.cut) })
	}
}

func backupThroughStop(t *testing.T, stop func(t *testing.T, w *oidcWorld), cut bool) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	storetest.FillSecrets(t, runningStore(t), 8<<20, 16)

	ctx, cutClient := context.WithCancel(context.Background())
	defer cutClient()
	cl := &adminapi.Client{Do: func(method, uri string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("http://127.0.0.1:%d%s", w.gw.AdminPort, uri), nil)
		if err != nil {
			return nil, err
		}
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil { // else the kernel takes up to tcp_rmem's maximum of the stream
				err = c.(*net.TCPConn).SetReadBuffer(64 << 10)
			}
			return c, err
		}
		return (&http.Client{Transport: &http.Transport{DialContext: dial}}).Do(req)
	}}
	streaming, stopped := make(chan struct{}), make(chan struct{})
	var once sync.Once
	backupErr := make(chan error, 1)
	go func() {
		// The client stops reading at its first write, until the store is
		// given back.
		_, err := cl.Backup(ctx, writerFunc(func(p []byte) (int, error) {
			once.Do(func() { close(streaming); <-stopped })
			return len(p), nil
		}))
		backupErr <- err
	}()
	select {
	case <-streaming:
	case err := <-backupErr:
		t.Fatalf("the backup ended before the stop: %v", err)
	}

	start := time.Now()
	go func() {
		defer close(stopped)
		stop(t, w)
	}()
	bound := ssogateway.DrainWait + 5*time.Second
	select {
	case <-stopped:
		t.Logf("the store was given back after %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(bound):
		t.Errorf("the store is not given back after %s: its config waits for a backup whose client reads nothing", bound)
		cutClient() // which ends the backup, and then the stop
		<-stopped
	}
	err := <-backupErr
	switch {
	case !cut && err != nil:
		t.Errorf("a reload that kept the store cut the backup: %v", err)
	case !cut:
	case err == nil:
		t.Error("Client.Backup took the stream of a backup cut by its config's stop as complete")
	case !strings.Contains(w.gw.logs(), "the store is closing"):
		t.Error(`no log line says the backup ended as the store closed ("the store is closing")`)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
