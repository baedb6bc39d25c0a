package oidc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

const (
	clientID     = "app"
	clientSecret = "app-secret-0123456789abcdef-0123456789"
	password     = "correct horse"
	// aliceTenant is alice's tid: Entra's tenant IDs are GUIDs, and
	// tenant_id is held to that.
	aliceTenant = "a11ce000-1111-4111-8111-000000000001"
)

// memReplay is the in-memory register of used single-use IDs that the
// store provides (store.Tx.Consume); the test relying party consumes an
// assertion's SingleUse IDs with it, as the sign-in transaction does, and
// endedSessions a logout token's jti, as the transaction ending the
// sessions does.
type memReplay struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (m *memReplay) ConsumeOnce(_ context.Context, kind, id string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]time.Time{}
	}
	k := kind + "\x00" + id
	if _, ok := m.seen[k]; ok {
		return false, nil
	}
	m.seen[k] = until
	return true, nil
}

// clock is the relying party's fake clock; it starts at the real time
// because the IdP issues tokens on the real clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func aliceClaims() map[string]any {
	return map[string]any{
		"sub":             "alice-sub",
		"given_name":      "Alice",
		"family_name":     "Liddell",
		"email":           "alice@example.com",
		"email_verified":  true,
		"groups":          []string{"admins", "staff"},
		"employee_number": int64(12345678901234567),
		"address":         map[string]any{"country": "NL"},
		"tid":             aliceTenant,
		"oid":             "00000000-0000-0000-0000-0000000000a1",
	}
}

// env is one IdP (oidctest) and one relying party (an httptest server whose
// /login calls Begin and /callback calls Callback).
type env struct {
	t      *testing.T
	idp    *oidctest.Server
	p      *oidc.Provider
	rp     *httptest.Server
	clock  *clock
	cfg    oidc.Config
	replay memReplay
	ended  endedSessions
}

// endedSessions records what the logout endpoints ask to end. Like the
// store's, it uses a message's single-use ID up only when the sessions
// end: with fail set, the call fails and uses nothing up. Each call ends
// one session, or none with none set (a sid no session has).
type endedSessions struct {
	mu     sync.Mutex
	calls  []string // "idp|subject|sid"
	replay *memReplay
	fail   error
	none   bool
}

func (s *endedSessions) EndSessions(ctx context.Context, idpName, subject string, sessionIDs []string, once *idp.SingleUse) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	if once != nil {
		if first, _ := s.replay.ConsumeOnce(ctx, once.Kind, once.ID, once.Until); !first {
			return 0, idp.FailLogout(once.Code, errors.New("used before"))
		}
	}
	s.calls = append(s.calls, idpName+"|"+subject+"|"+strings.Join(sessionIDs, ","))
	if s.none {
		return 0, nil
	}
	return 1, nil
}

func (s *endedSessions) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func newEnv(t *testing.T, opts ...func(*oidc.Config)) *env {
	t.Helper()
	srv, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return startEnv(t, srv, opts...)
}

// startEnv is an env over the IdP srv: alice, the relying party and its
// client registration, and a started Provider with the configuration opts
// edit.
func startEnv(t *testing.T, srv *oidctest.Server, opts ...func(*oidc.Config)) *env {
	t.Helper()
	srv.AddUser("alice", password, aliceClaims())
	e := &env{t: t, idp: srv, clock: &clock{t: time.Now()}}
	e.rp = httptest.NewServer(http.HandlerFunc(e.serveRP))
	t.Cleanup(e.rp.Close)
	srv.AddClient(clientID, clientSecret, e.rp.URL+"/callback")

	flows, err := idp.NewFlowCookies(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	flows.Now = e.clock.Now
	e.cfg = oidc.Config{Name: "test", Issuer: srv.Issuer, ClientID: clientID, ClientSecret: clientSecret, Now: e.clock.Now}
	for _, o := range opts {
		o(&e.cfg)
	}
	if e.p, err = oidc.New(e.cfg); err != nil {
		t.Fatal(err)
	}
	e.ended.replay = &e.replay
	if err := e.p.Start(context.Background(), idp.Runtime{Flows: flows, Sessions: &e.ended}); err != nil {
		t.Fatal(err)
	}
	return e
}

// result is what the test relying party reports about one callback.
type result struct {
	Code      string // LoginError code; "" on success
	Err       string
	Assertion *idp.Assertion
	ReturnTo  string
	// Tokens are the assertion's, which its JSON encoding redacts.
	Tokens rawTokens
}

type rawTokens struct {
	ID, Access, Refresh string
	Expiry              time.Time
}

func codeOf(err error) string {
	var le *idp.LoginError
	if errors.As(err, &le) {
		return le.Code
	}
	return "NOT-A-LOGIN-ERROR"
}

func (e *env) serveRP(w http.ResponseWriter, r *http.Request) {
	var res result
	switch r.URL.Path {
	case "/login":
		err := e.p.Begin(w, r, e.rp.URL+"/", idp.SignInRequest{ReturnTo: r.URL.Query().Get("return_to"), Reauthenticate: r.URL.Query().Get("reauth") == "1"})
		if err == nil {
			return
		}
		res = result{Code: codeOf(err), Err: err.Error()}
	case "/callback":
		base := e.rp.URL + "/"
		if o := r.Header.Get("X-Test-Redirect"); o != "" {
			base = strings.TrimSuffix(o, "callback")
		}
		a, returnTo, err := e.p.Callback(w, r, base)
		res = result{Assertion: a, ReturnTo: returnTo}
		if a != nil && a.Tokens != nil {
			t := a.Tokens
			res.Tokens = rawTokens{ID: t.IDToken, Access: t.AccessToken, Refresh: t.RefreshToken, Expiry: t.Expiry}
		}
		if err != nil {
			res.Code, res.Err = codeOf(err), err.Error()
			break
		}
		for _, su := range a.SingleUse {
			if first, _ := e.replay.ConsumeOnce(r.Context(), su.Kind, su.ID, su.Until); !first {
				res = result{Code: su.Code, Err: "replayed"}
			}
		}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// browser has a cookie jar and does not follow redirects, so each step of a
// login can be inspected.
type browser struct{ *http.Client }

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{&http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) cookies(u string) []*http.Cookie {
	pu, _ := url.Parse(u)
	return b.Jar.Cookies(pu)
}

// startLogin calls /login and returns the response (a redirect to the IdP,
// or the JSON result of a failed Begin).
func (e *env) startLogin(b *browser, returnTo string) (*http.Response, error) {
	resp, err := b.Get(e.rp.URL + "/login?return_to=" + url.QueryEscape(returnTo))
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp, nil
}

// begin starts a login and returns the authorization URL.
func (e *env) begin(b *browser, returnTo string) string {
	e.t.Helper()
	resp, err := e.startLogin(b, returnTo)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("begin: status %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// authorize signs in at the IdP's form and returns the callback URL.
func (e *env) authorize(b *browser, authURL, username string) string {
	e.t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusFound { // IdP session: no form
		return resp.Header.Get("Location")
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("authorize: status %d", resp.StatusCode)
	}
	u, _ := url.Parse(authURL)
	form := u.Query()
	form.Set("username", username)
	form.Set("password", password)
	u.RawQuery = ""
	resp, err = b.PostForm(u.String(), form)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("authorize POST: status %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// callback delivers the authorization response to the relying party. It
// reports errors instead of failing the test, so it can run in goroutines.
func (e *env) callback(b *browser, cbURL string, header ...string) (result, error) {
	req, err := http.NewRequest(http.MethodGet, cbURL, nil)
	if err != nil {
		return result{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	var res result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return result{}, fmt.Errorf("callback: %w", err)
	}
	return res, nil
}

func (e *env) mustCallback(b *browser, cbURL string, header ...string) result {
	e.t.Helper()
	res, err := e.callback(b, cbURL, header...)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// login runs a whole login for alice in b.
func (e *env) login(b *browser) result {
	e.t.Helper()
	return e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
}

func wantCode(t *testing.T, res result, code string) {
	t.Helper()
	if res.Code != code {
		t.Fatalf("code = %q (%s), want %q", res.Code, res.Err, code)
	}
	if code == "" && res.Assertion == nil {
		t.Fatal("success without assertion")
	}
}

func flowCookies(cs []*http.Cookie) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range cs {
		if strings.HasPrefix(c.Name, "sso_flow_") {
			out = append(out, c)
		}
	}
	return out
}
