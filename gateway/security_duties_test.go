package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
)

// These tests hold docs/security.md's duties that only the end-to-end
// caddymodule tests (minutes a run) caught before: each fails, in a
// second, when the check it names is removed.

// dutyWorld is a runtime over a fresh store, with one person (ada) signed
// in at the OIDC IdP "corp".
type dutyWorld struct {
	run   *Runtime
	token string // ada's session token
}

func newDutyWorld(t *testing.T) *dutyWorld {
	t.Helper()
	run := newTestRuntime(t)
	m, err := mapping.New("generic", idp.ProtocolOIDC, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &idp.Assertion{IdP: "corp", Protocol: idp.ProtocolOIDC, Subject: "sub-ada", EmailVerified: true,
		Attributes: map[string][]string{"sub": {"sub-ada"}, "email": {"ada@example.com"}, "given_name": {"Ada"}, "family_name": {"Lovelace"}},
		Logout:     idp.LogoutInfo{Subject: "sub-ada"}}
	out, err := run.SignIn.SignIn(context.Background(), &signin.IdP{Name: "corp", Mapper: m, Rules: provision.Rules{JIT: true}}, a, "")
	if err != nil || out.Session == nil {
		t.Fatalf("SignIn: %+v, %v", out, err)
	}
	return &dutyWorld{run: run, token: out.Session.Token}
}

// newTestRuntime is a Runtime over a fresh bbolt store, closed when the
// test ends.
func newTestRuntime(t *testing.T) *Runtime {
	t.Helper()
	db := backendtest.OpenBolt(t)
	flows, err := idp.NewFlowCookies(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	sessions := session.New(db, session.Config{}, nil, nil)
	return &Runtime{Store: db, Sessions: sessions, SignIn: &signin.Service{Store: db, Sessions: sessions},
		Refusals: &signin.Refusals{Store: db}, Flows: flows}
}

// dutyOrigin is the site the tests serve, vouched for (a host matcher).
func dutyOrigin() Origin {
	return Origin{Site: idp.Origin{Scheme: "https", Host: "app.example.com"}, Vouched: true}
}

// TestTrailersGuardedToTheEnd: request trailers named like a protected
// header, or Cookie, are not in the request's trailers, which
// reverse_proxy forwards, once the body is read: net/http fills r.Trailer
// at EOF with every trailer that arrived, announced or not, after
// GuardHopByHop deleted the announced names. Other trailers pass. The
// request is a real chunked one with a trailer section, read by net/http's
// server, as a client may send it.
func TestTrailersGuardedToTheEnd(t *testing.T) {
	plan, err := NewHeaderPlan("", map[string]string{"user": "X-App-User"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plan.GuardHopByHop(r)
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(r.Trailer)
	}))
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name      string
		announced string   // the Trailer header
		trailers  []string // the trailer section
		want      http.Header
	}{
		{"announced identity header", "X-Forwarded-User, Content-Digest",
			[]string{"X-Forwarded-User: admin", "Content-Digest: sha-256=:x:"},
			http.Header{"Content-Digest": {"sha-256=:x:"}}},
		{"unannounced identity header", "Content-Digest",
			[]string{"Content-Digest: sha-256=:x:", "X-Forwarded-User: admin", "Remote-User: admin", "X_Forwarded_Groups: admins"},
			http.Header{"Content-Digest": {"sha-256=:x:"}}},
		{"unannounced renamed header", "Content-Digest",
			[]string{"x-app-user: admin", "Content-Digest: sha-256=:x:"},
			http.Header{"Content-Digest": {"sha-256=:x:"}}},
		{"announced Cookie", "Cookie",
			[]string{"Cookie: sso_session=TOKEN"},
			http.Header{}},
		{"unannounced Cookie", "Content-Digest",
			[]string{"Content-Digest: sha-256=:x:", "Cookie: sso_session=TOKEN"},
			http.Header{"Content-Digest": {"sha-256=:x:"}}},
		{"only others", "Content-Digest",
			[]string{"Content-Digest: sha-256=:x:", "X-Checksum: 1"},
			http.Header{"Content-Digest": {"sha-256=:x:"}, "X-Checksum": {"1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sendWithTrailers(t, srv.Listener.Addr().String(), tc.announced, tc.trailers)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("trailers after the body: %v, want %v", got, tc.want)
			}
		})
	}
}

// sendWithTrailers posts a chunked body with the Trailer header announced
// and the trailer section trailers (which may name fields announced or
// not, as a client may) and returns the trailers the handler saw at EOF.
func sendWithTrailers(t *testing.T, addr, announced string, trailers []string) http.Header {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	req := "POST /app HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\nTrailer: " + announced +
		"\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n" + strings.Join(trailers, "\r\n") + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %d %s, %v", resp.StatusCode, body, err)
	}
	got := http.Header{}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return got
}

// logoutProvider is an IdP whose logout sends the browser to it.
type logoutProvider struct {
	idp.Provider // any other method: not expected here
	name         string
}

func (p *logoutProvider) Name() string     { return p.name }
func (p *logoutProvider) Protocol() string { return idp.ProtocolOIDC }

func (p *logoutProvider) Logout(w http.ResponseWriter, r *http.Request, _ string, _ idp.LogoutInfo, _ string) (bool, error) {
	http.Redirect(w, r, "https://idp.example.com/logout", http.StatusSeeOther)
	return true, nil
}

// TestSignOutClearsTheBrowser: the answer to a sign-out, the signed-out
// page as the redirect to the IdP's logout, empties the site's pages from
// the browser's caches (Clear-Site-Data: "cache", so that the back button
// does not show the signed-out person's page) and is not stored itself.
// The signed-out page clears the session cookie; the way to the IdP's
// logout keeps it a minute, naming the ended session, for a second click
// that comes after this answer (TestSecondClickAfterTheFirstAnswer).
func TestSignOutClearsTheBrowser(t *testing.T) {
	for _, tc := range []struct {
		name     string
		signedIn bool
		status   int
	}{
		{"signed in: to the IdP's logout", true, http.StatusSeeOther},
		{"no session: the signed-out page", false, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(),
				IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &logoutProvider{name: "corp"}}}}
			var tokens []string
			if tc.signedIn {
				tokens = []string{world.token}
			}
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
			r.Header.Set("Origin", "https://app.example.com")
			w := httptest.NewRecorder()
			if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), tokens, nil); err != nil {
				t.Fatal(err)
			}
			h := w.Header()
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			if got := h.Get("Clear-Site-Data"); got != `"cache"` {
				t.Errorf(`Clear-Site-Data %q, want "cache"`, got)
			}
			if got := h.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			cookies := w.Result().Cookies()
			last := -1 // the one the browser keeps
			for i, c := range cookies {
				if c.Name == dutyOrigin().SessionCookie() {
					last = i
				}
			}
			switch {
			case last < 0:
				t.Errorf("the session cookie is not set: %q", h.Values("Set-Cookie"))
			case tc.signedIn && (cookies[last].Value != world.token || cookies[last].MaxAge != 60):
				t.Errorf("session cookie on the way to the IdP: %q, want the signed-out session's kept for 60 s", h.Values("Set-Cookie"))
			case !tc.signedIn && cookies[last].MaxAge >= 0:
				t.Errorf("session cookie not cleared: %q", h.Values("Set-Cookie"))
			}
		})
	}
}

// TestSecondClickAfterTheFirstAnswer: a second click of the sign-out
// button can leave after the first answer arrived, while the tab is on
// its way to the IdP's logout (a slow IdP page): its POST carries the
// cookie the first answer left, finds the session ended, and goes on to
// the IdP's logout too. The first answer cleared the cookie, so the second
// POST named no session and showed "Signed out", the IdP's session alive.
func TestSecondClickAfterTheFirstAnswer(t *testing.T) {
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(),
		IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &logoutProvider{name: "corp"}}}}
	tokens := []string{world.token}
	for click := 1; click <= 2; click++ {
		r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
		r.Header.Set("Origin", "https://app.example.com")
		w := httptest.NewRecorder()
		if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), tokens, nil); err != nil {
			t.Fatal(err)
		}
		if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || loc != "https://idp.example.com/logout" {
			t.Fatalf("click %d: %d to %q, want the IdP's logout", click, w.Code, loc)
		}
		// What the browser holds for the next click: the last cookie set.
		tokens = nil
		for _, c := range w.Result().Cookies() {
			if c.Name == dutyOrigin().SessionCookie() {
				tokens = nil
				if c.MaxAge >= 0 {
					tokens = []string{c.Value}
				}
			}
		}
	}
}

// beginningProvider is a reachedProvider whose sign-in begins too (a
// redirect to the IdP), noted as reached.
type beginningProvider struct{ *reachedProvider }

func (p beginningProvider) Begin(w http.ResponseWriter, r *http.Request, _ string, _ idp.SignInRequest) error {
	p.reached = append(p.reached, "begin "+r.URL.Path)
	http.Redirect(w, r, "https://idp.example.com/authorize", http.StatusFound)
	return nil
}

// TestUnvouchedHostRefused: on a host nothing vouches for (the site has
// no host matcher, the route no base_url), sign-in and the IdP's endpoints
// are refused with the base_url_required page before anything is built
// on the Host header: no sign-in begins, no provider is reached. A
// vouched host reaches the provider.
func TestUnvouchedHostRefused(t *testing.T) {
	world := newDutyWorld(t)
	unvouched := Origin{Site: idp.Origin{Scheme: "https", Host: "evil.example"}}
	for _, tc := range []struct {
		name, method, path string
	}{
		{"login", http.MethodGet, "/.sso/login?return_to=%2F"},
		{"login at an IdP", http.MethodGet, "/.sso/login?idp=work&return_to=%2F"},
		{"OIDC callback", http.MethodGet, "/.sso/oidc/work/callback?code=c&state=s"},
		{"OIDC back-channel logout", http.MethodPost, "/.sso/oidc/work/backchannel-logout"},
		{"SAML ACS", http.MethodPost, "/.sso/saml/corp/acs"},
		{"SAML metadata", http.MethodGet, "/.sso/saml/corp/metadata"},
		{"SAML slo", http.MethodGet, "/.sso/saml/corp/slo?SAMLRequest=x"},
	} {
		for _, o := range []Origin{unvouched, dutyOrigin()} {
			t.Run(fmt.Sprintf("%s/vouched=%v", tc.name, o.Vouched), func(t *testing.T) {
				corp := &reachedProvider{name: "corp", protocol: idp.ProtocolSAML}
				work := &reachedProvider{name: "work", protocol: idp.ProtocolOIDC}
				rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{
					{Name: "corp", Protocol: idp.ProtocolSAML, Provider: beginningProvider{corp}},
					{Name: "work", Protocol: idp.ProtocolOIDC, Provider: beginningProvider{work}},
				}}
				rt.Default = rt.IdPs[1]
				r := httptest.NewRequest(tc.method, o.Site.String()+tc.path,
					strings.NewReader("SAMLResponse=x&RelayState=rs-1&logout_token=x"))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("Sec-Fetch-Mode", "navigate")
				r.Header.Set("Sec-Fetch-Dest", "document")
				r = idp.WithOrigin(r, o.Site)
				w := httptest.NewRecorder()
				err := rt.ServeEndpoint(w, r, world.run, o, nil, nil)
				reached := append(corp.reached, work.reached...)
				pe, isPage := AsPageError(err)
				refused := isPage && pe.Code == codeBaseURLRequired && pe.Status == http.StatusInternalServerError
				if !o.Vouched {
					if !refused || len(reached) > 0 || w.Header().Get("Location") != "" {
						t.Errorf("answer %v (Location %q), provider reached %q; want the base_url_required page and nothing reached",
							err, w.Header().Get("Location"), reached)
					}
					return
				}
				if refused || len(reached) != 1 {
					t.Errorf("vouched: answer %v, provider reached %q, want it reached once", err, reached)
				}
			})
		}
	}
}

// TestVerifyTrustsOnlyTrustedProxies: a forward-auth subrequest's
// description of the original request (X-Forwarded-Uri, X-Original-URI,
// X-Original-URL, X-Forwarded-Method) is believed from a trusted proxy
// only: from anyone else the sign-in returns to "/", and the method is the
// subrequest's own.
func TestVerifyTrustsOnlyTrustedProxies(t *testing.T) {
	world := newDutyWorld(t)
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    string // return_to from a trusted proxy
	}{
		{"X-Forwarded-Uri", map[string]string{"X-Forwarded-Uri": "/reports?year=2026"}, "/reports?year=2026"},
		{"X-Original-URI", map[string]string{"X-Original-Uri": "/reports?year=2026"}, "/reports?year=2026"},
		{"X-Original-URL", map[string]string{"X-Original-Url": "https://app.example.com/reports?year=2026"}, "/reports?year=2026"},
		{"a form's POST", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/save",
			"Referer": "https://app.example.com/edit"}, "/edit"},
	} {
		for _, trusted := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/trusted=%v", tc.name, trusted), func(t *testing.T) {
				rt, _ := verifyRoute(t, ModeAuthRequest)
				r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
				r.Header.Set("Accept", "text/html")
				for k, v := range tc.headers {
					r.Header.Set(k, v)
				}
				w := httptest.NewRecorder()
				if err := rt.Verify(w, r, world.run, dutyOrigin(), nil, trusted); err != nil {
					t.Fatal(err)
				}
				want := tc.want
				if !trusted {
					want = "/"
				}
				loc, err := url.Parse(w.Header().Get("Location"))
				if err != nil || loc.Query().Get("return_to") != want {
					t.Errorf("Location %q, want return_to=%s", w.Header().Get("Location"), want)
				}
			})
		}
	}
}

// TestVerifyAnswerCookieHasNoneOfOurs: the Cookie header a verify answer
// hands the proxy, for the app in place of the browser's, keeps the app's
// cookies and none of the gateway's: session (either name) or sign-in
// flow, on any line.
func TestVerifyAnswerCookieHasNoneOfOurs(t *testing.T) {
	world := newDutyWorld(t)
	tok := SessionCookiePlain + "=" + world.token
	for _, tc := range []struct {
		name string
		in   []string
		want string // "": no Cookie in the answer
	}{
		{"ours between the app's", []string{"theme=dark; " + tok + "; lang=en"}, "theme=dark; lang=en"},
		{"secure name and a flow cookie", []string{SessionCookieSecure + "=x; theme=dark; sso_flow_abc=y; " + tok}, "theme=dark"},
		{"several lines", []string{"a=1", tok, "__Secure-sso_flow_x=2; b=2"}, "a=1; b=2"},
		{"only ours", []string{tok + "; sso_flow_abc=y"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, _ := verifyRoute(t, ModeForwardAuth)
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
			r.Header["Cookie"] = tc.in
			w := httptest.NewRecorder()
			if err := rt.Verify(w, r, world.run, dutyOrigin(), []string{world.token}, true); err != nil {
				t.Fatal(err)
			}
			if w.Code != http.StatusOK || w.Header().Get("X-Forwarded-Email") != "ada@example.com" {
				t.Fatalf("answer %d %v, want 200 with ada's identity", w.Code, w.Header())
			}
			got, ok := w.Header()["Cookie"]
			switch {
			case tc.want == "" && ok:
				t.Errorf("Cookie %q, want none", got)
			case tc.want != "" && !slices.Equal(got, []string{tc.want}):
				t.Errorf("Cookie %q, want %q", got, tc.want)
			}
			if strings.Contains(strings.Join(got, ";"), world.token) {
				t.Error("the session token reaches the app")
			}
		})
	}
}
