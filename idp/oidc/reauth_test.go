package oidc_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// beginReauth starts a re-authenticating sign-in (what /.sso/login?reauth=1
// asks of the provider) and returns the authorization URL.
func (e *env) beginReauth(b *browser) string {
	e.t.Helper()
	resp, err := b.Get(e.rp.URL + "/login?reauth=1&return_to=/settings")
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("begin: status %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// formShown reports whether the IdP answers authURL with its password form
// (rather than sending the browser straight back from its session).
func formShown(t *testing.T, b *browser, authURL string) bool {
	t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestReauthAsksTheIdPAgain: a person with a session at the IdP is signed
// in silently by an ordinary sign-in, but a re-authenticating one asks the
// IdP for prompt=login and max_age=0, the IdP shows its password form
// again, and the assertion carries the new authentication's time.
func TestReauthAsksTheIdPAgain(t *testing.T) {
	e := newEnv(t)
	idpNow := e.clock.Now()
	e.idp.SetClock(func() time.Time { return idpNow })
	b := newBrowser()

	first := e.login(b)
	wantCode(t, first, "")
	if got := first.Assertion.AuthTime; got.Unix() != idpNow.Unix() {
		t.Fatalf("AuthTime = %v, want the auth_time the IdP sent (%v)", got, idpNow)
	}

	// Five minutes on, an ordinary sign-in: no form, the old auth_time.
	idpNow = idpNow.Add(5 * time.Minute)
	e.clock.Add(5 * time.Minute)
	authURL := e.begin(b, "/")
	if formShown(t, b, authURL) {
		t.Fatal("an ordinary sign-in with an IdP session showed the password form")
	}
	again := e.mustCallback(b, e.authorize(b, authURL, "alice"))
	wantCode(t, again, "")
	if !again.Assertion.AuthTime.Equal(first.Assertion.AuthTime) {
		t.Fatalf("silent sign-in AuthTime = %v, want the first authentication's %v", again.Assertion.AuthTime, first.Assertion.AuthTime)
	}

	// A re-authenticating one: prompt=login, max_age=0, and the form.
	authURL = e.beginReauth(b)
	q := mustQuery(t, authURL)
	if q.Get("prompt") != "login" || q.Get("max_age") != "0" {
		t.Fatalf("authorization request prompt=%q max_age=%q, want login and 0", q.Get("prompt"), q.Get("max_age"))
	}
	if !formShown(t, b, authURL) {
		t.Fatal("a re-authenticating sign-in did not bring back the IdP's password form")
	}
	res := e.mustCallback(b, e.authorize(b, authURL, "alice"))
	wantCode(t, res, "")
	if res.ReturnTo != "/settings" {
		t.Fatalf("returnTo = %q, want /settings", res.ReturnTo)
	}
	if got := res.Assertion.AuthTime; got.Unix() != idpNow.Unix() {
		t.Fatalf("re-authenticated AuthTime = %v, want the new authentication's %v", got, idpNow)
	}
}

// TestReauthRefusesAStaleAnswer: the answer to a re-authenticating sign-in
// must show an authentication after it began; an IdP that ignores
// prompt=login and max_age, or leaves out auth_time, is refused with
// reauth_not_fresh. An ordinary sign-in takes either answer.
func TestReauthRefusesAStaleAnswer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		misbehave func(*oidctest.Server)
		// reauth: the re-authenticating sign-in's code; plain: an
		// ordinary one's, on the same misbehaving IdP.
		reauth, plain string
	}{
		{"IdP ignores prompt and max_age", func(s *oidctest.Server) { s.SetIgnoreReauth(true) }, idp.CodeReauthNotFresh, ""},
		{"no auth_time", func(s *oidctest.Server) {
			s.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { delete(tok.Claims, "auth_time") }})
		}, idp.CodeReauthNotFresh, ""},
		{"auth_time not a number", func(s *oidctest.Server) {
			s.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { tok.Claims["auth_time"] = "now" }})
		}, idp.CodeReauthNotFresh, ""},
		{"auth_time within the skew", func(s *oidctest.Server) {
			s.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
				tok.Claims["auth_time"] = tok.Claims["iat"].(int64) - 50
			}})
		}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			idpNow := e.clock.Now()
			e.idp.SetClock(func() time.Time { return idpNow })
			b := newBrowser()
			wantCode(t, e.login(b), "")
			idpNow = idpNow.Add(10 * time.Minute)
			e.clock.Add(10 * time.Minute)
			tc.misbehave(e.idp)

			res := e.mustCallback(b, e.authorize(b, e.beginReauth(b), "alice"))
			wantCode(t, res, tc.reauth)
			wantCode(t, e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice")), tc.plain)
		})
	}
}

// TestReauthKeepsAConfiguredPrompt: prompt values an operator configured
// (AuthParams) travel with login, except none, which contradicts it; an
// ordinary sign-in sends them unchanged and asks for no max_age.
func TestReauthKeepsAConfiguredPrompt(t *testing.T) {
	for _, tc := range []struct{ configured, reauth string }{
		{"", "login"},
		{"consent", "login consent"},
		{"none", "login"},
		{"login select_account", "login select_account"},
	} {
		e := newEnv(t, func(c *oidc.Config) {
			if tc.configured != "" {
				c.AuthParams = map[string]string{"prompt": tc.configured}
			}
		})
		b := newBrowser()
		q := mustQuery(t, e.beginReauth(b))
		if q.Get("prompt") != tc.reauth || q.Get("max_age") != "0" {
			t.Errorf("configured prompt %q: reauth sent prompt=%q max_age=%q, want %q and 0", tc.configured, q.Get("prompt"), q.Get("max_age"), tc.reauth)
		}
		q = mustQuery(t, e.begin(b, "/"))
		if q.Get("prompt") != tc.configured || q.Has("max_age") {
			t.Errorf("configured prompt %q: an ordinary sign-in sent prompt=%q max_age=%q", tc.configured, q.Get("prompt"), q.Get("max_age"))
		}
	}
}

func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu.Query()
}
