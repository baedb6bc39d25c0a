package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPageAfterBackWaitsForTheForm holds backTo and pageAfterBack, which
// TestBrowserBackAfterSignOut judges by, to what the tab ends at: the tab
// shows an IdP's login form (as after a sign-out), goes back to a page
// that now sends it to the IdP again, and the IdP's second form arrives
// in two parts. pageAfterBack must neither take the form the tab left for
// the one it went to, nor stop at the new one before its Password field is
// there (under load, the test then saw the IdP's page without it).
func TestPageAfterBackWaitsForTheForm(t *testing.T) {
	var visits atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	const form = `<form><label for=p>Password</label><input id=p type=password></form>`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch {
		case r.URL.Path == "/page.html" && visits.Add(1) == 1:
			fmt.Fprint(w, "<!doctype html><title>Page</title><p>the app's page</p>")
		case r.URL.Path == "/page.html":
			http.Redirect(w, r, "/login?second", http.StatusFound)
		case r.URL.Path == "/login" && r.URL.RawQuery == "second":
			fmt.Fprint(w, "<!doctype html><title>Sign in</title><h1>Sign in</h1><p>the IdP</p>"+strings.Repeat(" ", 4096))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			fmt.Fprint(w, form)
		case r.URL.Path == "/login":
			http.SetCookie(w, &http.Cookie{Name: "signed_out", Value: "1"}) // no back/forward cache for the page
			fmt.Fprint(w, "<!doctype html><title>Sign in</title><h1>Sign in</h1>"+form)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	ctx := newChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/page.html"), chromedp.Navigate(srv.URL+"/login")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the first login form", func(s browserState) bool { return s.idpAsksForPassword(srv.URL + "/login") })

	backTo(t, ctx, srv.URL+"/page.html")
	// The rest of the second form comes once pageAfterBack has had time to
	// look at the first one and at the second one's beginning.
	time.AfterFunc(2*time.Second, func() { once.Do(func() { close(release) }) })
	s := pageAfterBack(ctx, srv.URL+"/login")
	if !strings.HasSuffix(s.loc, "?second") || !s.idpAsksForPassword(srv.URL+"/login") {
		t.Errorf("pageAfterBack ended at %s showing %q, want the second login form, whole", s.loc, s.body)
	}
}
