package nginx_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/exampletest"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// appErrorPath is where newErringApp answers its own 500, with appErrorBody.
const (
	appErrorPath = "/app-error"
	appErrorBody = "the app's own error page\n"
)

// newErringApp starts an app that answers appErrorPath with a 500 of its
// own (appErrorBody) and every other request as the EchoUpstream does
// (caddytest.Echoed). It returns the app's URL.
func newErringApp(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == appErrorPath {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(appErrorBody))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(caddytest.Echoed{Path: r.URL.RequestURI(), Headers: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestNginxGatewayUnavailable: when the gateway cannot answer the
// question about a request (its store is away, so it answers 503; it is
// down, so nginx cannot connect), the browser gets the shipped config's
// 503 "try again" page with Retry-After, not the bare 500 that
// auth_request makes of any status but 2xx, 401 and 403 (a 500 monitoring
// would blame on the app). The app's own 500 reaches the browser as the
// app sent it, also while the store is away (to a session the gateway has
// cached), and the gateway's 403 and 500 stay nginx's 403 and 500. The
// store is a real PostgreSQL, stopped as a crash stops it.
func TestNginxGatewayUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A cluster of the test's own: it goes away under the gateway.
	pg, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{NoFsync: true})
	if err != nil {
		pgtest.Unavailable(t, err)
	}
	halted := false
	t.Cleanup(func() {
		// Stop removes the directory either way; pg_ctl's stop fails
		// on a halted server.
		if err := pg.Stop(); err != nil && !halted {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	dsn, err := pg.CreateDatabase(ctx, "sso")
	if err != nil {
		t.Fatal(err)
	}
	site, b, g := startExampleWith(t, func(g *caddytest.Gateway, site string) string {
		return exampletest.Shipped(t, "Caddyfile", append(exampletest.OnTestGateway(g, site),
			"store bolt "+g.StorePath(), "store postgres "+dsn)...)
	}, newErringApp(t), nil)
	caddytest.ReadBody(t, b.SignIn(site+"/", "ada", "ada-pw"))
	// Its requests below carry a session cookie the gateway has not
	// cached (of the shape of its tokens): the answer needs the store.
	uncached := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(b)}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	appError := func(t *testing.T) {
		t.Helper()
		resp := b.Get(site + appErrorPath)
		if body := caddytest.ReadBody(t, resp); resp.StatusCode != http.StatusInternalServerError || body != appErrorBody {
			t.Errorf("the app's own 500: %s %q, want the app's 500 and body %q", resp.Status, body, appErrorBody)
		}
	}
	appError(t)

	for _, outage := range []struct {
		name string
		down func(t *testing.T)
		// want is the browser's status: 503 with the config's page
		// for an outage.
		want       int
		retryAfter string // "": any
		// The signed-in browser's session is cached: with the store
		// away it still reaches the app, and its 500.
		appReachable bool
	}{
		{"store away", func(t *testing.T) {
			if err := pg.Halt(ctx); err != nil {
				t.Fatal(err)
			}
			halted = true
		}, http.StatusServiceUnavailable, gateway.StoreRetryAfter, true},
		// A refusal stays nginx's 403, and a 500 of the gateway is a
		// fault, not an outage: no "try again", nginx's 500 as before.
		{"gateway refuses", func(t *testing.T) { answerEverything(g, 403) }, http.StatusForbidden, "", false},
		{"gateway fails", func(t *testing.T) { answerEverything(g, 500) }, http.StatusInternalServerError, "", false},
		{"gateway down", func(t *testing.T) { g.Stop() }, http.StatusServiceUnavailable, "", false},
	} {
		t.Run(outage.name, func(t *testing.T) {
			outage.down(t)
			// Twice, as a person reloads.
			for range 2 {
				req, err := http.NewRequest(http.MethodGet, site+"/reports", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
				req.Header.Set("Cookie", "__Host-"+gateway.SessionCookiePlain+"="+strings.Repeat("A", 43))
				resp, err := uncached.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body := caddytest.ReadBody(t, resp)
				page := strings.Contains(body, "Sign-in is unavailable") && strings.Contains(body, "try again") &&
					strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain")
				if resp.StatusCode != outage.want || page != (outage.want == http.StatusServiceUnavailable) {
					t.Errorf("%s, %s: %q; want %d, the config's page with 503 only", resp.Status, resp.Header.Get("Content-Type"), body, outage.want)
				}
				if outage.want != http.StatusServiceUnavailable {
					continue
				}
				if ra := resp.Header.Get("Retry-After"); ra == "" || (outage.retryAfter != "" && ra != outage.retryAfter) {
					t.Errorf("Retry-After %q, want %q (\"\": any)", ra, outage.retryAfter)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", cc)
				}
			}
			if outage.appReachable {
				appError(t)
				// Without a session the gateway needs no store: still
				// the redirect to sign in.
				resp, err := uncached.Get(site + "/reports")
				if err != nil {
					t.Fatal(err)
				}
				caddytest.ReadBody(t, resp)
				if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), site+"/.sso/login?") {
					t.Errorf("without a session: %s, Location %q, want the redirect to sign in", resp.Status, resp.Header.Get("Location"))
				}
			}
		})
	}
}

// answerEverything reloads g with a verify site that answers every
// question with status.
func answerEverything(g *caddytest.Gateway, status int) {
	g.T.Helper()
	g.Reload(fmt.Sprintf("{\n%s}\n\nhttp://:%d {\n\tbind 127.0.0.1\n\trespond %d\n}\n", g.GlobalOptions(), g.Port, status))
}

// TestNginxDocQuotesTheUnavailablePage: the lines docs/forward-auth.md
// gives for the 503 page (every ```nginx block naming @sso_unavailable)
// are the shipped snippets' own, so that an operator who copies them from
// the page gets what TestNginxGatewayUnavailable runs.
func TestNginxDocQuotesTheUnavailablePage(t *testing.T) {
	doc, err := os.ReadFile("../../docs/forward-auth.md")
	if err != nil {
		t.Fatal(err)
	}
	shipped := exampletest.Shipped(t, "sso-protect.conf") + exampletest.Shipped(t, "sso-endpoints.conf")
	quoted := 0
	for _, part := range strings.Split(string(doc), "\n```nginx\n")[1:] {
		block, _, ok := strings.Cut(part, "\n```\n")
		if !ok {
			t.Fatalf("docs/forward-auth.md: an nginx block does not end: %.80q", part)
		}
		if !strings.Contains(block, "@sso_unavailable") {
			continue
		}
		quoted++
		if !strings.Contains(shipped, block+"\n") {
			t.Errorf("docs/forward-auth.md gives lines the snippets do not have:\n%s", block)
		}
	}
	if quoted < 2 {
		t.Errorf("docs/forward-auth.md quotes %d nginx blocks naming @sso_unavailable, want the error_page and the location", quoted)
	}
}
