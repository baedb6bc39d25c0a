package oidctest_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestEndSessionEndsTheSession: after a login the provider's session signs
// the browser in without a password; end_session ends that session, so the
// next authorization request shows the login form again (what the gateway's
// sign-out relies on).
func TestEndSessionEndsTheSession(t *testing.T) {
	s := start(t)
	s.SetLoginHint("Demo users: bob / pw.")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: noRedirect.CheckRedirect}
	authorize := s.Issuer + oidctest.PathAuthorize + "?" + authParams().Encode()

	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	asksForPassword := func(when string) {
		t.Helper()
		resp, body := get(authorize)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="password"`) {
			t.Fatalf("%s: authorize answered %d (Location %q), want the login form", when, resp.StatusCode, resp.Header.Get("Location"))
		}
		if !strings.Contains(body, "Demo users: bob / pw.") {
			t.Errorf("%s: the login form lacks the hint", when)
		}
	}

	asksForPassword("before login")
	form := authParams()
	form.Set("username", "bob")
	form.Set("password", "pw")
	resp, err := browser.PostForm(s.Issuer+oidctest.PathAuthorize, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	if resp, _ := get(authorize); resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "code=") {
		t.Fatalf("with a provider session, authorize answered %d, want a code without a password", resp.StatusCode)
	}
	issuerURL, _ := url.Parse(s.Issuer + "/")
	kept := jar.Cookies(issuerURL)
	get(s.Issuer + oidctest.PathEndSession + "?client_id=app")
	asksForPassword("after end_session")

	// The session ended at the provider, not only in this browser: its
	// cookie, kept from before, no longer signs anyone in.
	req, _ := http.NewRequest(http.MethodGet, authorize, nil)
	for _, c := range kept {
		req.AddCookie(c)
	}
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(kept) == 0 || resp.StatusCode != http.StatusOK {
		t.Errorf("the provider session's cookie (%d kept) still signs in after end_session: %d %s", len(kept), resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestEndSessionGETAndPOST: end_session takes its parameters in a GET's
// query or a POST's form-encoded body (RP-Initiated Logout 1.0, 2) and
// checks them the same way. Without the session cookie (a cross-site POST
// does not carry the SameSite=Lax cookie) the hint's sid names the session
// to end.
func TestEndSessionGETAndPOST(t *testing.T) {
	const bye = "https://rp.example/bye"
	send := func(t *testing.T, method, u string, v url.Values) *http.Response {
		t.Helper()
		var req *http.Request
		if method == http.MethodPost {
			req, _ = http.NewRequest(method, u, strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req, _ = http.NewRequest(method, u+"?"+v.Encode(), nil)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			s := start(t)
			endSession := s.Issuer + oidctest.PathEndSession
			hint := exchange(t, s, tokenForm(code(t, s)), true).ID
			if hint == "" || s.SessionID("bob") == "" {
				t.Fatal("no ID token or no provider session")
			}
			for _, tc := range []struct {
				name string
				v    url.Values
			}{
				{"a hint that is not a token", url.Values{"id_token_hint": {"x.y.z"}, "post_logout_redirect_uri": {bye}}},
				{"a hint for another client", url.Values{"id_token_hint": {hint}, "client_id": {"other"}, "post_logout_redirect_uri": {bye}}},
			} {
				if resp := send(t, method, endSession, tc.v); resp.StatusCode != http.StatusBadRequest {
					t.Errorf("%s: %d, want 400", tc.name, resp.StatusCode)
				}
			}
			if s.SessionID("bob") == "" {
				t.Fatal("a refused end_session ended the session")
			}
			if resp := send(t, method, endSession, url.Values{"client_id": {"app"}, "post_logout_redirect_uri": {"https://evil.example/"}}); resp.StatusCode != http.StatusOK {
				t.Errorf("a foreign post-logout URI: %d to %q, want 200", resp.StatusCode, resp.Header.Get("Location"))
			}
			resp := send(t, method, endSession, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {bye}, "state": {"s1"}})
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != bye+"?state=s1" {
				t.Errorf("logout with the hint: %d to %q, want 302 to %s?state=s1", resp.StatusCode, resp.Header.Get("Location"), bye)
			}
			if s.SessionID("bob") != "" {
				t.Error("the session the hint names survived")
			}
			reqs := s.EndSessionRequests()
			if last := reqs[len(reqs)-1]; len(reqs) != 4 || last.Method != method || last.Params.Get("id_token_hint") != hint {
				t.Errorf("EndSessionRequests: %d, last %s %v", len(reqs), last.Method, last.Params)
			}
		})
	}

	s := start(t)
	endSession := s.Issuer + oidctest.PathEndSession
	// A POST's parameters are in its body only.
	req, _ := http.NewRequest(http.MethodPost, endSession+"?"+url.Values{"client_id": {"app"}, "post_logout_redirect_uri": {bye}}.Encode(), strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("POST with the parameters in the URL: %v %v, want 200 without a redirect", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, tc := range []struct {
		method, contentType string
		want                int
	}{
		{http.MethodPost, "application/json", http.StatusUnsupportedMediaType},
		{http.MethodPut, "application/x-www-form-urlencoded", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, endSession, strings.NewReader("client_id=app"))
		req.Header.Set("Content-Type", tc.contentType)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.contentType, resp.StatusCode, tc.want)
		}
	}
}
