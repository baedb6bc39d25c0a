package caddymodule_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestInFlightSignInOutlivesItsConfig: a sign-in callback in flight on a
// config that stops, by a reload that moves the store or by caddy.Stop,
// finishes on the store it started with: the old config gives its store
// back only once its requests are done with it. The callback is held at
// the IdP's token endpoint while the config stops. caddy.Stop (what
// `caddy stop` and a SIGTERM run before the process exits) returns only
// then, the store given back: the sso app's Stop leaves that to Cleanup,
// which waits. Had Stop retired the config in the background, as a reload
// does, the process would exit under the sign-in still writing, before
// the sessions' final last-seen flush.
func TestInFlightSignInOutlivesItsConfig(t *testing.T) {
	for _, tt := range []struct {
		name  string
		stop  func(w *oidcWorld) // stops the config the callback runs on
		waits bool               // stop returns only once the callback is done
	}{
		{"reload moving the store", func(w *oidcWorld) {
			moved := strings.Replace(w.caddyfile(), w.gw.StorePath(), w.gw.Dir+"/moved.db", 1)
			if status, body := w.gw.tryReload(moved); status != http.StatusOK {
				t.Errorf("reload: %d %s", status, body)
			}
		}, false},
		{"caddy.Stop", func(*oidcWorld) {
			if err := caddy.Stop(); err != nil {
				t.Errorf("caddy.Stop: %v", err)
			}
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newOIDCWorld(t, "\t\t\tjit\n").start()
			entered, release := make(chan struct{}), make(chan struct{})
			var hold, unhold sync.Once
			letGo := func() { unhold.Do(func() { close(release) }) }
			t.Cleanup(letGo)
			w.idp.SetHooks(oidctest.Hooks{IDToken: func(*oidctest.Token) {
				hold.Do(func() { close(entered); <-release })
			}})

			// The browser stops at the callback's answer.
			b := newBrowser(t)
			b.client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
				if strings.HasSuffix(req.Response.Request.URL.Path, "/callback") {
					return http.ErrUseLastResponse
				}
				return nil
			}
			type result struct {
				resp *http.Response
				err  error
			}
			callback := make(chan result, 1)
			go func() {
				resp, err := b.TrySignIn(w.gw.base+"/reports?year=2026", "ada", "ada-pw")
				callback <- result{resp, err}
			}()
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the callback did not reach the token endpoint")
			}

			stopped := make(chan struct{})
			go func() { defer close(stopped); tt.stop(w) }()
			// A reload returns at once; caddy.Stop must not. The reload is
			// given 8s (a loaded machine), under gateway.DrainWait, the
			// longest a Stop that waited for the held sign-in would block.
			wait := time.Second
			if !tt.waits {
				wait = 8 * time.Second
			}
			select {
			case <-stopped:
				if tt.waits {
					t.Fatal("caddy.Stop returned while a sign-in was in flight on the store")
				}
			case <-time.After(wait):
				if !tt.waits {
					t.Fatal("the reload waited for a sign-in in flight on the old config, which it must retire in the background")
				}
			}
			letGo()

			r := <-callback
			if r.err != nil {
				t.Fatalf("callback: %v", r.err)
			}
			body := readBody(t, r.resp)
			if loc := r.resp.Header.Get("Location"); r.resp.StatusCode/100 != 3 || !strings.HasSuffix(loc, "/reports?year=2026") {
				t.Fatalf("callback answered %s (Location %q), want a redirect to the page asked for: %.300s", r.resp.Status, loc, body)
			}
			<-stopped

			// The sign-in's user is in the store the callback started on,
			// which the old config has given back by now (caddy.Stop: when
			// it returned; a reload: soon).
			lockWait := 5 * time.Second
			if tt.waits {
				lockWait = 100 * time.Millisecond
			}
			db, err := bolt.Open(w.gw.StorePath(), bolt.Options{ReadOnly: true, LockTimeout: lockWait})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.View(t.Context(), func(tx store.Tx) error {
				_, err := tx.UserByLink("test", "sub-ada")
				return err
			}); err != nil {
				t.Fatalf("the signed-in user is not in the store: %v", err)
			}
		})
	}
}

// TestInFlightSCIMOutlivesItsConfig: a SCIM request the old config's
// handler is reading when a reload moves the store finishes there (201),
// and its user is in the store it started on. The request's body is held
// back until the reload has returned.
func TestInFlightSCIMOutlivesItsConfig(t *testing.T) {
	w := newSCIMWorld(t)
	addr := strings.TrimPrefix(w.scimBase, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := caddyEntraCreateUser
	fmt.Fprintf(c, "POST /scim/v2/Users HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/scim+json\r\nContent-Length: %d\r\n\r\n", addr, scimTokenTest, len(body))
	time.Sleep(300 * time.Millisecond) // for the old config's handler to start reading the body
	old := w.gw.StorePath()
	moved := strings.Replace(w.caddyfile(), old, w.gw.Dir+"/moved.db", 1)
	if status, msg := w.gw.tryReload(moved); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, msg)
	}
	fmt.Fprint(c, body)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the SCIM request in flight: %v", err)
	}
	if got := readBody(t, resp); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the SCIM request in flight answered %s: %.300s", resp.Status, got)
	}
	db, err := bolt.Open(old, bolt.Options{ReadOnly: true, LockTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n store.Counts
	err = db.View(t.Context(), func(tx store.Tx) error { n, err = tx.Counts(); return err })
	if err != nil || n.Users != 1 {
		t.Errorf("the store the request started on holds %d users (%v), want the one it created", n.Users, err)
	}
}

// TestUpstreamRequestDoesNotHoldTheStore: a request the sso handler has
// admitted and passed on to the upstream is done with the store (the
// handler ends its count in flight before the upstream), so a reload that
// moves the store gives the old one back at once, while the upstream
// still answers a slow request, not after gateway.DrainWait.
func TestUpstreamRequestDoesNotHoldTheStore(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var enter, unhold sync.Once
	letGo := func() { unhold.Do(func() { close(release) }) }
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			enter.Do(func() { close(entered) })
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(letGo) // before slow.Close, which waits for the held request

	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, strings.TrimPrefix(slow.URL, "http://"))
	w.start()
	b := newBrowser(t)
	if resp := b.signIn(w.gw.base+"/", "ada", "ada-pw"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("sign-in ended with %s, want the upstream's 204", resp.Status)
	}
	held := make(chan error, 1)
	go func() {
		resp, err := b.client.Get(w.gw.base + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		held <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the upstream")
	}

	old := w.gw.StorePath()
	moved := strings.Replace(w.caddyfile(), old, w.gw.Dir+"/moved.db", 1)
	if status, body := w.gw.tryReload(moved); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	// The old store is given back while the upstream still holds its
	// request: bbolt's lock is free well within gateway.DrainWait.
	db, err := bolt.Open(old, bolt.Options{ReadOnly: true, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("the old store is still held while a request is at the upstream: %v", err)
	}
	db.Close()
	letGo()
	if err := <-held; err != nil {
		t.Errorf("the request at the upstream: %v", err)
	}
}
