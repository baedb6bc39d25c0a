// Package caddytest runs caddy-sso for tests as an operator meets it: a
// real Caddy loaded in this process from a Caddyfile, on loopback ports,
// in front of an upstream that echoes what it received, with a real test
// IdP (idp/oidc/oidctest) and a cookie-keeping browser; and the `caddy sso`
// command run in this process.
//
// It is the one harness for tests of every package that needs a running
// gateway (caddymodule, cli). Tests that start a Gateway must not run in
// parallel: Caddy keeps one running config per process.
package caddytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard" // reverse_proxy, respond, handle, ...

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/portable"
)

// EchoUpstream is the protected app: it answers every request with the
// request's path and headers as JSON (Echoed), so tests see exactly what
// the gateway forwarded, but for two streams (WebSocketPath and
// EventStreamPath).
type EchoUpstream struct {
	*httptest.Server
}

// Echoed is what the EchoUpstream answers.
type Echoed struct {
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

// Header returns the first value of a header, whatever its letter case.
func (e Echoed) Header(name string) string {
	for k, v := range e.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// NewEchoUpstream starts an EchoUpstream until the test ends.
func NewEchoUpstream(t testing.TB) *EchoUpstream {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if serveStream(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Echoed{Path: r.URL.RequestURI(), Headers: r.Header})
	}))
	t.Cleanup(srv.Close)
	return &EchoUpstream{srv}
}

// HostPort is the upstream's address, for reverse_proxy.
func (u *EchoUpstream) HostPort() string { return strings.TrimPrefix(u.URL, "http://") }

// Gateway is a real Caddy, loaded in this process from a Caddyfile,
// serving plain http on a loopback port with its admin endpoint on another.
type Gateway struct {
	T         testing.TB
	Port      int
	AdminPort int
	Dir       string // data: store, Caddy storage, log
	Base      string // http://127.0.0.1:Port
}

// NewGateway picks the ports and the directory; Start runs Caddy.
func NewGateway(t testing.TB) *Gateway {
	t.Helper()
	g := &Gateway{T: t, Port: testport.For(t), AdminPort: testport.For(t), Dir: t.TempDir()}
	g.Base = fmt.Sprintf("http://127.0.0.1:%d", g.Port)
	return g
}

// StorePath is the bolt file Caddyfile configures.
func (g *Gateway) StorePath() string { return g.Dir + "/sso.db" }

// GlobalOptions keeps Caddy's side effects inside the test's directory.
func (g *Gateway) GlobalOptions() string {
	return fmt.Sprintf(`	admin 127.0.0.1:%d
	persist_config off
	auto_https off
	http_port %d
	storage file_system %s/caddy
	skip_install_trust
	log {
		output file %s/caddy.log
		level DEBUG
	}
`, g.AdminPort, g.Port, g.Dir, g.Dir)
}

// Logs returns everything Caddy logged so far (at DEBUG level).
func (g *Gateway) Logs() string {
	b, err := os.ReadFile(g.Dir + "/caddy.log")
	if err != nil {
		g.T.Fatal(err)
	}
	return string(b)
}

// Caddyfile completes a Caddyfile: the sso global block (its body given)
// plus the test's global options, then the sites.
func (g *Gateway) Caddyfile(ssoBody, sites string) string {
	return "{\n" + g.GlobalOptions() + "\tsso {\n\t\tstore bolt " + g.StorePath() + "\n" + ssoBody + "\t}\n}\n\n" + sites
}

// Start loads the config into this process's Caddy and stops it when the
// test ends.
func (g *Gateway) Start(caddyfile string) {
	g.T.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		g.T.Fatalf("adapt: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		g.T.Logf("adapt warning: %s", w.String())
	}
	if err := caddy.Load(cfg, true); err != nil {
		g.T.Fatalf("load: %v", err)
	}
	g.T.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			g.T.Errorf("stopping caddy: %v", err)
		}
	})
	g.WaitReady()
}

// Stop stops Caddy and waits until its port is closed: caddy.Stop returns
// once the servers' shutdowns have started, and a server still shutting
// down would take a new connection and then drop it.
func (g *Gateway) Stop() {
	g.T.Helper()
	if err := caddy.Stop(); err != nil {
		g.T.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.Port))
		if err != nil {
			return
		}
		_ = c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	g.T.Fatal("caddy still listening after Stop")
}

// WaitReady waits until Caddy listens on Port.
func (g *Gateway) WaitReady() {
	g.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.Port))
		if err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.T.Fatal("caddy did not start listening")
}

// Reload posts a new Caddyfile to the admin endpoint, as `caddy reload` does.
//
// Caddy stops the old config's servers in goroutines and returns once their
// shutdowns have been started, not finished; for a moment the old server
// may still take a new connection (caddyhttp's App.Stop says so). Tests
// check the new config's behaviour on the next request, so Reload gives
// those goroutines a moment to run. Requests during a reload are the
// subject of caddymodule's TestReloadKeepsSessionsAndServes, which does
// not wait.
func (g *Gateway) Reload(caddyfile string) {
	g.T.Helper()
	if status, body := g.TryReload(caddyfile); status != http.StatusOK {
		g.T.Fatalf("reload: %d: %s", status, body)
	}
	time.Sleep(200 * time.Millisecond)
}

// TryReload posts a new Caddyfile and returns the admin endpoint's answer.
func (g *Gateway) TryReload(caddyfile string) (int, string) {
	g.T.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost,
		fmt.Sprintf("http://127.0.0.1:%d/load", g.AdminPort), bytes.NewBufferString(caddyfile))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.T.Fatalf("reload: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// The old config's server closes its idle keep-alive connections as it
	// stops; start the next requests on fresh ones.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	return resp.StatusCode, string(body)
}

// Admin sends one request to the admin endpoint and returns the response
// with its body read.
func (g *Gateway) Admin(method, path string) (*http.Response, []byte) {
	g.T.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method,
		fmt.Sprintf("http://127.0.0.1:%d%s", g.AdminPort, path), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		g.T.Fatal(err)
	}
	return resp, body
}

// AdminJSON calls the admin endpoint, expects the status want, and
// decodes the answer into out (unless nil).
func (g *Gateway) AdminJSON(method, path string, want int, out any) {
	g.T.Helper()
	resp, body := g.Admin(method, path)
	if resp.StatusCode != want {
		g.T.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			g.T.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
}

// AddressFlag is the `caddy sso` flag that names the admin endpoint.
func (g *Gateway) AddressFlag() string { return fmt.Sprintf("--address=127.0.0.1:%d", g.AdminPort) }

// RunningStore is the store of the sso app Caddy is running now.
func RunningStore(t testing.TB) store.Store {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("sso")
	if err != nil {
		t.Fatal(err)
	}
	return app.(*caddymodule.App).Store()
}

// View reads the running store.
func View(t testing.TB, fn func(tx store.Tx) error) {
	t.Helper()
	if err := RunningStore(t).View(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// ReadBackup reads a backup file (`caddy sso backup`) by restoring it into
// a fresh store.
func ReadBackup(t testing.TB, path string, fn func(tx store.Tx) error) {
	t.Helper()
	db, err := bolt.Open(t.TempDir()+"/restored.db", bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := portable.Import(context.Background(), db, f, portable.ImportOptions{}); err != nil {
		t.Fatalf("restoring %s: %v", path, err)
	}
	if err := db.View(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// AddUsers puts n plain users (user00@domain, ...) straight into the
// running store.
func AddUsers(t testing.TB, n int, domain string) {
	t.Helper()
	err := RunningStore(t).Update(context.Background(), func(tx store.Tx) error {
		for i := range n {
			u := &store.User{Email: fmt.Sprintf("user%02d@%s", i, domain), FirstName: "User", LastName: fmt.Sprint(i),
				Active: true, Source: store.SourceAdmin}
			if err := tx.PutUser(u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
