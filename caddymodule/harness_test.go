package caddymodule_test

import (
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
)

// The harness is the shared one (internal/caddytest); these are its names
// in this package's tests.

// echoUpstream is the protected app, answering with what it received.
type echoUpstream struct{ *caddytest.EchoUpstream }

func newEchoUpstream(t testing.TB) *echoUpstream {
	return &echoUpstream{caddytest.NewEchoUpstream(t)}
}

func (u *echoUpstream) hostPort() string { return u.HostPort() }

// echoed is the upstream's answer.
type echoed caddytest.Echoed

func (e echoed) header(name string) string { return caddytest.Echoed(e).Header(name) }

// gateway is a real Caddy in this process. base may be changed by a test
// (a site on another host name); the other fields are the harness's.
type gateway struct {
	*caddytest.Gateway
	t               testing.TB
	port, adminPort int
	dir, base       string
}

func newGateway(t testing.TB) *gateway { return newGatewayOf(t, caddytest.NewGateway(t)) }

func newGatewayOf(t testing.TB, g *caddytest.Gateway) *gateway {
	return &gateway{Gateway: g, t: t, port: g.Port, adminPort: g.AdminPort, dir: g.Dir, base: g.Base}
}

func (g *gateway) globalOptions() string                  { return g.GlobalOptions() }
func (g *gateway) logs() string                           { return g.Logs() }
func (g *gateway) caddyfile(ssoBody, sites string) string { return g.Caddyfile(ssoBody, sites) }
func (g *gateway) start(caddyfile string)                 { g.t.Helper(); g.Start(caddyfile) }
func (g *gateway) reload(caddyfile string)                { g.t.Helper(); g.Reload(caddyfile) }
func (g *gateway) stop()                                  { g.t.Helper(); g.Stop() }

func (g *gateway) tryReload(caddyfile string) (int, string) {
	g.t.Helper()
	return g.TryReload(caddyfile)
}

func (g *gateway) admin(method, path string) (*http.Response, []byte) {
	g.t.Helper()
	return g.Admin(method, path)
}

func (g *gateway) adminJSON(method, path string, want int, out any) {
	g.t.Helper()
	g.AdminJSON(method, path, want, out)
}

// browser is a cookie-keeping HTTP client that navigates as browsers do.
type browser struct {
	*caddytest.Browser
	t      *testing.T
	client *http.Client
	jar    *cookiejar.Jar
}

func newBrowser(t *testing.T) *browser {
	b := caddytest.NewBrowser(t)
	return &browser{Browser: b, t: t, client: b.Client, jar: b.Jar}
}

func (b *browser) noRedirects() *http.Client { return b.NoRedirects() }

func (b *browser) get(rawURL string, header ...string) *http.Response {
	b.t.Helper()
	return b.Get(rawURL, header...)
}

// signIn opens rawURL, fills in the provider's login form when it shows
// up, follows every redirect back, and returns the final response.
func (b *browser) signIn(rawURL, username, password string) *http.Response {
	b.t.Helper()
	return b.SignIn(rawURL, username, password)
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	return caddytest.ReadBody(t, resp)
}

func upstreamSaw(t *testing.T, resp *http.Response) echoed {
	t.Helper()
	return echoed(caddytest.UpstreamSaw(t, resp))
}

func runningStore(t *testing.T) store.Store {
	t.Helper()
	return caddytest.RunningStore(t)
}

func view(t *testing.T, fn func(tx store.Tx) error) {
	t.Helper()
	caddytest.View(t, fn)
}

func userBySubject(t *testing.T, subject string) *store.User {
	t.Helper()
	return caddytest.UserBySubject(t, subject)
}

// checkFirstSignIn checks what Ada's first sign-in through the IdP named
// "test", with jit, leaves, whichever protocol carried it: the upstream
// served the page she asked for (/reports?year=2026) with her seven
// identity headers and none of the gateway's cookies, and the store holds
// her, created from the IdP's attributes, with one user.created event. It
// returns her user.
func checkFirstSignIn(t *testing.T, saw echoed, subject string) *store.User {
	t.Helper()
	if saw.Path != "/reports?year=2026" {
		t.Errorf("upstream got path %q, want the page the user asked for", saw.Path)
	}
	u := userBySubject(t, subject)
	if u.FirstName != "Ada" || u.LastName != "Lovelace" || u.Email != "ada@example.com" || u.Source != store.SourceJIT || !u.Active {
		t.Errorf("JIT-created user = %+v", u)
	}
	want := map[string]string{
		"X-Forwarded-User":               u.ID,
		"X-Forwarded-Email":              "ada@example.com",
		"X-Forwarded-Preferred-Username": "ada@example.com",
		"X-Forwarded-First-Name":         "Ada",
		"X-Forwarded-Last-Name":          "Lovelace",
		"X-Forwarded-Groups":             "admins,eng",
		"X-Forwarded-Idp":                "test",
	}
	for h, v := range want {
		if got := saw.header(h); got != v {
			t.Errorf("upstream header %s = %q, want %q", h, got, v)
		}
	}
	if c := saw.header("Cookie"); strings.Contains(c, "sso") {
		t.Errorf("upstream received the gateway's cookies: %q", c)
	}
	if got := auditReasons(t, store.EventUserCreated); len(got) != 1 {
		t.Errorf("user.created events = %d, want 1", len(got))
	}
	return u
}
