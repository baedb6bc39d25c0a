package scim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/internal/jsonwalk"
	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

var t0 = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

// Tokens long enough for New; each IdP has its own.
const (
	entraToken = "entra-secret-token-0123456789"
	oktaToken  = "okta-secret-token-9876543210"
)

// env is a SCIM endpoint over a real bolt file (or the store newEnvOn is
// given) and a real session manager, served by a real HTTP server.
type env struct {
	t        *testing.T
	db       store.Store
	sessions *session.Manager
	accounts *account.Service
	logs     *observer.ObservedLogs
	srv      *httptest.Server
	token    string
	now      time.Time
	vars     map[string]string
}

func newEnv(t *testing.T, idp, token string) *env {
	t.Helper()
	return newEnvOn(t, idp, token, backendtest.OpenBolt(t))
}

// newEnvOn is newEnv over db, for tests that run on every backend
// (backendtest.All).
func newEnvOn(t *testing.T, idp, token string, db store.Store) *env {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	e := &env{t: t, db: db, logs: logs, token: token, now: t0, vars: map[string]string{}}
	clock := func() time.Time { return e.now }
	e.sessions = session.New(db, session.Config{}, zap.New(core), clock)
	e.accounts = &account.Service{Store: db, Cache: e.sessions, Logger: zap.New(core), Now: clock,
		SCIMManaged: func(name string) bool { return name == idp }}
	h, err := scim.New(scim.Config{IdP: idp, Token: token, Accounts: e.accounts, Logger: zap.New(core), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// resp is one decoded response.
type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

var placeholder = regexp.MustCompile(`\{\{(\w+)\}\}`)

// expand replaces {{name}} with a saved value.
func (e *env) expand(s string) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-2]
		v, ok := e.vars[name]
		if !ok {
			e.t.Fatalf("no saved value %q", name)
		}
		return v
	})
}

// do sends one request with the env's token; path is relative to
// /scim/v2 and may hold {{placeholders}}, as may body.
func (e *env) do(method, path, body string) resp {
	e.t.Helper()
	return e.doWith(e.token, method, path, body)
}

func (e *env) doWith(token, method, path, body string) resp {
	e.t.Helper()
	e.now = e.now.Add(time.Second)
	u := e.srv.URL + "/scim/v2" + e.expand(path)
	req, err := http.NewRequest(method, u, strings.NewReader(e.expand(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.read(res)
}

// read decodes a response and checks its content type.
func (e *env) read(res *http.Response) resp {
	e.t.Helper()
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: response is not a JSON object: %s", res.Request.Method, res.Request.URL.Path, raw)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/scim+json" {
			e.t.Errorf("%s %s: Content-Type %q", res.Request.Method, res.Request.URL.Path, ct)
		}
	}
	return r
}

// must sends a request and fails unless the status is want.
func (e *env) must(want int, method, path, body string) resp {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, e.expand(path), r.status, want, r.raw)
	}
	return r
}

// scimError checks a SCIM error body: status as a string, scimType.
func scimError(t *testing.T, r resp, status int, scimType string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if s, ok := r.body["status"].(string); !ok || s != strconv.Itoa(status) {
		t.Errorf("error status member = %#v, want the string %q", r.body["status"], strconv.Itoa(status))
	}
	if got, _ := r.body["scimType"].(string); got != scimType {
		t.Errorf("scimType = %q, want %q (%s)", got, scimType, r.raw)
	}
	if sch, _ := r.body["schemas"].([]any); len(sch) != 1 || sch[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Errorf("error schemas = %v", r.body["schemas"])
	}
}

// at is jsonwalk.At.
func at(v any, path ...any) any { return jsonwalk.At(v, path...) }

// total reads totalResults and checks the list response's shape.
func total(t *testing.T, r resp) int {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("list: status %d: %s", r.status, r.raw)
	}
	res, ok := r.body["Resources"].([]any)
	if !ok {
		t.Fatalf("Resources missing or not a list: %s", r.raw)
	}
	if ipp, _ := r.body["itemsPerPage"].(float64); int(ipp) != len(res) {
		t.Errorf("itemsPerPage %v for %d resources", r.body["itemsPerPage"], len(res))
	}
	n, _ := r.body["totalResults"].(float64)
	return int(n)
}

func (e *env) user(id string) *store.User {
	e.t.Helper()
	var u *store.User
	err := e.db.View(context.Background(), func(tx store.Tx) (err error) {
		u, err = tx.User(e.expand(id))
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) audit() []store.Event {
	e.t.Helper()
	var ev []store.Event
	err := e.db.View(context.Background(), func(tx store.Tx) (err error) {
		ev, err = tx.AuditEvents(store.AuditQuery{Limit: 100000})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// signIn starts a session for the user as a login would, and returns the
// cookie token.
func (e *env) signIn(id string) string {
	e.t.Helper()
	tok, _, err := e.sessions.Create(context.Background(), e.user(id), "entra", store.LogoutInfo{})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.sessions.Resolve(context.Background(), tok); err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// q URL-encodes a query value the way Entra and Okta send filters.
func q(s string) string {
	return strings.NewReplacer(" ", "%20", `"`, "%22", "@", "%40", "[", "%5B", "]", "%5D").Replace(s)
}
