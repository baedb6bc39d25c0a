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
