package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
)

// TestRepeatedCallbackWithoutSession: a callback repeated by a browser
// without a session shows the sign-in-failed page at once when it is a
// GET (the cookie came with it, there is nothing to wait for). Only a POST
// (the SAML ACS, posted by the IdP's site without the SameSite=Lax
// cookie) is sent on, by a 303 that is not stored, to the signin-failed
// endpoint, with the reason in a flow cookie.
func TestRepeatedCallbackWithoutSession(t *testing.T) {
	for _, tc := range []struct {
		method   string
		status   int
		location string
	}{
		{http.MethodGet, http.StatusBadRequest, ""},
		{http.MethodPost, http.StatusSeeOther, "/.sso/" + repeatedSignInEndpoint},
	} {
		t.Run(tc.method, func(t *testing.T) {
			run := newTestRuntime(t)
			p := &IdP{Name: "corp", Protocol: idp.ProtocolSAML}
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{p}, Default: p}
			r := httptest.NewRequest(tc.method, "https://app.example.com/.sso/saml/corp/acs", nil)
			r.Header.Set("Accept", "text/html")
			w := httptest.NewRecorder()
			err := rt.repeatedSignIn(w, r, run, p, "flow_missing", nil, nil)
			status := w.Code
			if pe, ok := AsPageError(err); ok {
				status = pe.Status
			} else if err != nil {
				t.Fatal(err)
			}
			h := w.Header()
			if status != tc.status || h.Get("Location") != tc.location {
				t.Errorf("answer %d (%v), Location %q; want %d, %q", status, err, h.Get("Location"), tc.status, tc.location)
			}
			if flow := h.Get("Set-Cookie") != ""; flow != (tc.location != "") {
				t.Errorf("Set-Cookie %q on a %s", h.Get("Set-Cookie"), tc.method)
			}
			if tc.location != "" && h.Get("Cache-Control") != "no-store" {
				t.Errorf("redirect stored: Cache-Control %q", h.Get("Cache-Control"))
			}
		})
	}
}

// TestVerifyHeadIsNoFormPosted: a HEAD a browser navigates with is not a
// form a person submitted, so its sign-in returns to the page asked for,
// not to the page in the Referer, and its 401 is the JSON one.
func TestVerifyHeadIsNoFormPosted(t *testing.T) {
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Mode: ModeAuthRequest, Logger: zap.NewNop(),
		IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	rt.Default = rt.IdPs[0]
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
	for k, v := range map[string]string{
		"X-Forwarded-Uri": "/reports?y=1", "X-Forwarded-Method": "HEAD", "Referer": "https://app.example.com/elsewhere",
		"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
	} {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	if err := rt.Verify(w, r, world.run, dutyOrigin(), nil, true); err != nil {
		t.Fatal(err)
	}
	want := "https://app.example.com/.sso/login?return_to=%2Freports%3Fy%3D1"
	if w.Code != http.StatusUnauthorized || w.Header().Get("Location") != want ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Errorf("answer %d, Location %q, Content-Type %q; want 401, %q, JSON",
			w.Code, w.Header().Get("Location"), w.Header().Get("Content-Type"), want)
	}
}

// TestStripOwnCookiesFlowCookiesAlone: a Cookie line holding flow cookies
// and no session cookie is stripped too: the shortcut that leaves lines
// without any of ours alone must not miss them, or a sign-in's state
// would reach the upstream.
func TestStripOwnCookiesFlowCookiesAlone(t *testing.T) {
	for _, line := range []string{"a=1; sso_flow_x=2", "__Host-sso_flow_y=3; b=2", "__Secure-sso_flow_z=4"} {
		h := http.Header{"Cookie": {line}}
		StripOwnCookies(h)
		if got := strings.Join(h["Cookie"], "; "); strings.Contains(got, "sso_flow") {
			t.Errorf("%q forwarded as %q", line, got)
		}
	}
}

// TestVerifyStoreAway: a forward-auth request whose session cannot be read
// (the store is away) is answered 503 with Retry-After, not as one without
// a session: a 302 to the sign-in would send a signed-in person through the
// IdP and back into the same refusal.
func TestVerifyStoreAway(t *testing.T) {
	world := newDutyWorld(t)
	world.run.Sessions = session.New(world.run.Store, session.Config{}, nil, nil) // nothing cached
	if err := world.run.Store.Close(); err != nil {
		t.Fatal(err)
	}
	rt := &Route{PathPrefix: "/.sso/", Mode: ModeForwardAuth, Logger: zap.NewNop(),
		IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	rt.Default = rt.IdPs[0]
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
	for k, v := range map[string]string{"X-Forwarded-Uri": "/reports", "Accept": "text/html", "Sec-Fetch-Mode": "navigate"} {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	if err := rt.Verify(w, r, world.run, dutyOrigin(), []string{world.token}, true); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Header().Get("Location") != "" {
		t.Errorf("answer %d, Retry-After %q, Location %q; want 503 with Retry-After and no Location",
			w.Code, w.Header().Get("Retry-After"), w.Header().Get("Location"))
	}
}
