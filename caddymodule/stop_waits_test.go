package caddymodule_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestCaddyStopWaitsForTheStore: caddy.Stop (what `caddy stop` and a
// SIGTERM run before the process exits) returns only once the requests
// in flight are done with the store and the store is given back, its
// last writes made: the sso app's Stop leaves that to Cleanup, which
// waits. Had Stop retired the config in the background, as on a reload,
// caddy.Stop would return at once and the process exit under a sign-in
// still writing, before the sessions' final last-seen flush. The sign-in
// is held at the IdP's token endpoint while Caddy stops.
func TestCaddyStopWaitsForTheStore(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	entered, release := make(chan struct{}), make(chan struct{})
	var hold, unhold sync.Once
	letGo := func() { unhold.Do(func() { close(release) }) }
	t.Cleanup(letGo)
	w.idp.SetHooks(oidctest.Hooks{IDToken: func(*oidctest.Token) {
		hold.Do(func() { close(entered); <-release })
	}})
	b := newBrowser(t)
	b.client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasSuffix(req.Response.Request.URL.Path, "/callback") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	callback := make(chan error, 1)
	go func() {
		resp, err := b.TrySignIn(w.gw.base+"/", "ada", "ada-pw")
		if err == nil {
			resp.Body.Close()
		}
		callback <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the callback did not reach the token endpoint")
	}

	stopped := make(chan error, 1)
	go func() { stopped <- caddy.Stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("caddy.Stop returned (%v) while a sign-in was in flight on the store", err)
	case <-time.After(time.Second):
	}
	letGo()
	if err := <-callback; err != nil {
		t.Fatalf("callback: %v", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("caddy.Stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("caddy.Stop did not return once the sign-in was done")
	}
	// Given back by the time caddy.Stop returned: another process (the
	// CLI's --store) opens it at once, and finds the sign-in's user.
	db, err := bolt.Open(w.gw.StorePath(), bolt.Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("the store right after caddy.Stop: %v", err)
	}
	defer db.Close()
	if err := db.View(t.Context(), func(tx store.Tx) error {
		_, err := tx.UserByLink("test", "sub-ada")
		return err
	}); err != nil {
		t.Errorf("the signed-in user is not in the store: %v", err)
	}
}
