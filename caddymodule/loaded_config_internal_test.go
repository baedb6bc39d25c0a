package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// loadedConfig is a Caddy config of the sso app alone (ssoApp, its JSON),
// its log in dir: validated, or loaded into this process's Caddy until the
// test ends. It needs no harness (internal/caddytest imports this package).
type loadedConfig struct {
	t   *testing.T
	dir string
}

func newLoadedConfig(t *testing.T) *loadedConfig { return &loadedConfig{t: t, dir: t.TempDir()} }

func (l *loadedConfig) json(ssoApp string, otherApps ...string) []byte {
	q := func(p string) string { b, _ := json.Marshal(filepath.Join(l.dir, p)); return string(b) }
	return []byte(`{"admin":{"disabled":true},"storage":{"module":"file_system","root":` + q("caddy") + `},
		"logging":{"logs":{"default":{"writer":{"output":"file","filename":` + q("caddy.log") + `},"level":"DEBUG"}}},
		"apps":{"sso":` + strings.Replace(ssoApp, `"store":{}`, `"store":{"path":`+q("sso.db")+`}`, 1) + strings.Join(append([]string{""}, otherApps...), ",") + `}}`)
}

// validate runs Caddy's validation of the config (what `caddy validate`
// does: every module provisioned, nothing started).
func (l *loadedConfig) validate(ssoApp string, otherApps ...string) error {
	var cfg caddy.Config
	if err := json.Unmarshal(l.json(ssoApp, otherApps...), &cfg); err != nil {
		l.t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

func (l *loadedConfig) load(ssoApp string, otherApps ...string) *App {
	l.t.Helper()
	if err := caddy.Load(l.json(ssoApp, otherApps...), true); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = caddy.Stop() })
	app, err := caddy.ActiveContext().App("sso")
	if err != nil {
		l.t.Fatal(err)
	}
	return app.(*App)
}

// warnings are the messages Caddy's log holds at level warn.
func (l *loadedConfig) warnings() []string {
	b, err := os.ReadFile(filepath.Join(l.dir, "caddy.log"))
	if err != nil {
		l.t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Level == "warn" {
			out = append(out, e.Msg)
		}
	}
	return out
}

const loadedOIDC = `{"name":"test","protocol":"oidc","oidc":{"issuer":"https://idp.example.com","client_id":"app"}}`

// The admin endpoint of a running sso app: the mark header on every
// answer, 503 "not running" while the app has no store (before its Start),
// the bbolt store's integrity check, and, for a store failure, a message
// that hides the store's error while the error Caddy logs is that cause.
func TestAdminRouteOfARunningApp(t *testing.T) {
	app := newLoadedConfig(t).load(`{"store":{},"idps":[` + loadedOIDC + `]}`)
	serve := func(path string) (*httptest.ResponseRecorder, error) {
		w := httptest.NewRecorder()
		err := new(adminAPI).serve(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Header().Get(adminapi.MarkHeader) != "1" {
			t.Errorf("GET %s: no %s", path, adminapi.MarkHeader)
		}
		return w, err
	}

	w, err := serve(adminapi.Prefix + "check")
	var sc adminapi.StoreCheck
	if err != nil || w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &sc) != nil || !sc.OK || !strings.HasSuffix(sc.Store, "sso.db") {
		t.Errorf("GET /sso/check: %v, %d %s", err, w.Code, w.Body)
	}

	rt := app.live.Load()
	defer app.live.Set(rt)
	app.live.Set(nil) // as before Start
	_, err = serve(adminapi.Prefix + "users")
	var apiErr caddy.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusServiceUnavailable || apiErr.Message != "the sso app is not running" {
		t.Errorf("GET /sso/users before Start: %#v", err)
	}

	away := *rt
	away.Store = &awayStore{Store: rt.Store}
	away.Store.(*awayStore).away.Store(true)
	app.live.Set(&away)
	_, err = serve(adminapi.Prefix + "users")
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusInternalServerError ||
		strings.Contains(apiErr.Message, "connection refused") || !strings.Contains(apiErr.Error(), errAway.Error()) {
		t.Errorf("GET /sso/users, the store away: %#v; want a 500 whose message hides, and whose logged error is, %q", err, errAway)
	}
}

// Warnings an operator reads in Caddy's log when the config is loaded
// (and by `caddy validate`): each names a setting that does not do what
// it seems to, and only when it does not.
func TestConfigWarningsInCaddysLog(t *testing.T) {
	const (
		dsnWarning  = "the store's connection string holds a password"
		linkWarning = "link_by_email has no effect on a SAML identity provider without trust_email"
	)
	saml := func(extra string) string {
		return `{"store":{},"idps":[{"name":"s","protocol":"saml","jit":true,"link_by_email":true` + extra + `,"saml":{"metadata_url":"https://idp.example.com/md"}}]}`
	}
	for _, tt := range []struct {
		name, app, want, not string
	}{
		{"dsn with a password", `{"store":{"backend":"postgres","dsn":"postgres://caddy:hunter2@db.internal/sso"}}`, dsnWarning, ""},
		{"dsn without a password", `{"store":{"backend":"postgres","dsn":"postgres://caddy@db.internal/sso"}}`, "", dsnWarning},
		{"dsn placeholder", `{"store":{"backend":"postgres","dsn":"{env.CADDY_SSO_TEST_DSN}"}}`, "", dsnWarning},
		{"saml link_by_email without trust_email", saml(""), linkWarning, ""},
		{"saml link_by_email with trust_email", saml(`,"trust_email":true`), "", linkWarning},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CADDY_SSO_TEST_DSN", "postgres://caddy:hunter2@db.internal/sso")
			l := newLoadedConfig(t)
			if err := l.validate(tt.app); err != nil {
				t.Fatal(err)
			}
			warned := func(s string) bool {
				for _, w := range l.warnings() {
					if strings.Contains(w, s) {
						return true
					}
				}
				return false
			}
			if tt.want != "" && !warned(tt.want) {
				t.Errorf("no warning %q in %q", tt.want, l.warnings())
			}
			if tt.not != "" && warned(tt.not) {
				t.Errorf("a warning %q in %q", tt.not, l.warnings())
			}
		})
	}
}

// A SCIM bearer token read from a placeholder needs scim.MinTokenLength
// (16) characters: 15 fail the config, naming the placeholder; 16 load.
func TestSCIMTokenLengthBoundary(t *testing.T) {
	const ssoApp = `{"store":{},"idps":[{"name":"entra","protocol":"oidc","scim":true,"oidc":{"issuer":"https://idp.example.com","client_id":"app"}}]}`
	const httpApp = `"http":{"servers":{"scim":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{"handler":"sso_scim","idps":[{"name":"entra","token":"{env.CADDY_SSO_TEST_SCIM_TOKEN}"}]}]}]}}}`
	for _, tt := range []struct {
		token string
		ok    bool
	}{{strings.Repeat("t", 15), false}, {strings.Repeat("t", 16), true}} {
		t.Setenv("CADDY_SSO_TEST_SCIM_TOKEN", tt.token)
		err := newLoadedConfig(t).validate(ssoApp, httpApp)
		if tt.ok != (err == nil) || !tt.ok && !strings.Contains(fmt.Sprint(err), "sso_scim: idp entra: the bearer token {env.CADDY_SSO_TEST_SCIM_TOKEN} is shorter than 16 characters") {
			t.Errorf("a token of %d characters: %v", len(tt.token), err)
		}
	}
}

// A site served over plain http to a browser on another host (not
// loopback) keeps the Secure session cookie, which that browser never
// sends back: Caddy's log says so once, with the host; a loopback host
// (the Secure attribute is dropped there) is no reason to.
func TestPlainHTTPSiteWarned(t *testing.T) {
	const warning = "site is served over plain http; session cookies keep the Secure attribute"
	port := testport.For(t)
	l := newLoadedConfig(t)
	l.load(`{"store":{},"idps":[`+loadedOIDC+`]}`, fmt.Sprintf(`"http":{"http_port":%d,"servers":{"app":{"listen":["127.0.0.1:%d"],
		"routes":[{"handle":[{"handler":"sso"},{"handler":"static_response","body":"app"}]}]}}}`, port, port))
	warned := func() int {
		n := 0
		for _, w := range l.warnings() {
			if strings.HasPrefix(w, warning) {
				n++
			}
		}
		return n
	}
	for i, host := range []string{"localhost", "app.example.com", "other.example.com"} {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if want := min(i, 1); warned() != want {
			t.Errorf("after a request for %s: %d warnings %q, want %d", host, warned(), warning, want)
		}
	}
}

// A config whose Start fails after it opened the store (here the SAML IdP's
// stored SP key pair is unreadable) gives the store back: the bbolt file
// is unlocked for the next start, `caddy sso` offline commands or another
// process, not held until Caddy exits.
func TestFailedStartReleasesTheStore(t *testing.T) {
	l := newLoadedConfig(t)
	path := filepath.Join(l.dir, "sso.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (store.Secrets{Store: db}).LoadOrStore(context.Background(), saml.SPKeySecretName("s"),
		func() ([]byte, error) { return []byte("not a key pair"), nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	err = caddy.Load(l.json(`{"store":{},"idps":[{"name":"s","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md"}}]}`), true)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("the config started with an unreadable SP key pair")
	}
	if !strings.Contains(err.Error(), "SP key pair") {
		t.Errorf("start failed with %v, want the SP key pair's error", err)
	}
	db, err = bolt.Open(path, bolt.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("the store after the failed start: %v", err)
	}
	_ = db.Close()
}
