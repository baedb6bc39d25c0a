package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// orderFormPage is the app's page with a form, at /orders/new?draft=1;
// the form posts to /orders.
const orderFormPage = `<!doctype html><title>New order</title><form method="post" action="/orders"><input name="item" value="42"><button id="send" type="submit">Place order</button></form>`

// formApp is an app for the forward_auth front: it serves the order form
// and answers anything else with the upstream's echo (path and headers,
// as echoOf reads). posts lists the POSTs that reached it.
type formApp struct {
	hostPort string
	mu       sync.Mutex
	posts    []string
}

func newFormApp(t *testing.T) *formApp {
	t.Helper()
	a := &formApp{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			a.mu.Lock()
			a.posts = append(a.posts, r.URL.RequestURI())
			a.mu.Unlock()
		}
		if r.Method == http.MethodGet && r.URL.Path == "/orders/new" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(orderFormPage))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.RequestURI(), "headers": r.Header})
	}))
	t.Cleanup(srv.Close)
	a.hostPort = strings.TrimPrefix(srv.URL, "http://")
	return a
}

func (a *formApp) postsReceived() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.posts...)
}

// TestBrowserSession18ForwardAuthFormAfterSessionEnded drives in Chromium
// what TestForwardAuthFormAfterSessionEnded does with a Go client: the
// gateway behind Caddy's forward_auth front as docs/forward-auth.md
// configures it (read from the page). Ada signs in and opens the app's
// form at /orders/new?draft=1; an administrator revokes her session; she
// submits the form (a POST to /orders). Through the front she sees the
// "Sign in again" page (401), and the app gets nothing; its link signs her
// in again and brings her back to the form's page, the Referer the browser
// sent, not to /orders, the form's action. Submitting it then goes
// through.
func TestBrowserSession18ForwardAuthFormAfterSessionEnded(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	gwPort := otherPorts(t, 1)[0]
	front := w.gw.base
	app := newFormApp(t)
	w.gw.start(w.verifyConfig([]int{gwPort}, caddyFrontConfig(t, front, gwPort, app.hostPort)+fmt.Sprintf(`
http://:%d {
	bind 127.0.0.1
	sso test {
		mode forward_auth
		base_url %s
	}
}
`, gwPort, front)))
	ctx := newChromium(t)
	formURL := front + "/orders/new?draft=1"
	onForm := func(s browserState) bool { return s.loc == formURL && strings.Contains(s.body, "Place order") }

	browserSignInTo(t, ctx, formURL, onForm)

	var revoked map[string]int
	w.gw.adminJSON(http.MethodPost, "/sso/users/"+userBySubject(t, "sub-ada").ID+"/sessions/revoke", http.StatusOK, &revoked)
	if revoked["revoked"] != 1 {
		t.Fatalf("revoked %v", revoked)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("send"))); err != nil {
		t.Fatal(err)
	}
	p := waitForTitle(t, ctx, "Sign in again")
	if p.Loc != front+"/orders" || !strings.Contains(p.Body, "what you submitted was not sent") {
		t.Errorf("after submitting without a session, at %s:\n%s", p.Loc, p.Body)
	}
	if status := pageStatus(t, ctx); status != http.StatusUnauthorized {
		t.Errorf("the Sign in again page came with status %d, want 401", status)
	}
	if posts := app.postsReceived(); len(posts) != 0 {
		t.Errorf("the form reached the app without a session: %q", posts)
	}

	clickLink(t, ctx, p, "Sign in", front+"/.sso/login?return_to="+url.QueryEscape("/orders/new?draft=1"))
	s := waitFor(t, ctx, "the form's page, or the IdP's login form", func(s browserState) bool {
		return onForm(s) || strings.Contains(s.body, "Password") || strings.Contains(s.body, `"path"`)
	})
	if strings.Contains(s.body, "Password") {
		browserSignInTo(t, ctx, "", onForm)
	} else if !onForm(s) {
		t.Fatalf("Sign in led to %s, not to the form's page %s:\n%s", s.loc, formURL, s.body)
	}

	// Signed in again, the form goes through.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("send"))); err != nil {
		t.Fatal(err)
	}
	body, _ := waitForPage(t, ctx, front+"/orders")
	if saw := echoOf(t, body); saw.Path != "/orders" || saw.header("X-Forwarded-User") == "" {
		t.Errorf("the app got %s as %q", saw.Path, saw.header("X-Forwarded-User"))
	}
	if posts := app.postsReceived(); len(posts) != 1 || posts[0] != "/orders" {
		t.Errorf("POSTs that reached the app: %q, want the one sent after signing in again", posts)
	}
}

// browserSignInTo opens rawURL (unless empty: the browser is at the
// IdP's login form already), signs ada in at the test IdP and waits until
// the browser shows what done wants.
func browserSignInTo(t *testing.T, ctx context.Context, rawURL string, done func(browserState) bool) {
	t.Helper()
	if rawURL != "" {
		if err := chromedp.Do(ctx, chromedp.Navigate(rawURL)); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the page after signing in", done)
}
