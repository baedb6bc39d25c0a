package saml

import (
	"encoding/json"
	"encoding/xml"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// sharedClock is the SP's and the IdP's clock, so that a test can let
// time pass between sign-ins.
type sharedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sharedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *sharedClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// signIn starts a sign-in at the SP's /login with query, types ada's
// password when the IdP shows its form, and returns whether it did and the
// ACS result.
func (h *harness) signIn(b *browser, query string) (bool, loginResult) {
	b.t.Helper()
	p := b.autoSubmit(b.get(h.site.URL + "/login?" + query))
	form := strings.Contains(p.Body, `id="username"`)
	if form {
		p = b.autoSubmit(b.submit(p, url.Values{"username": {"ada"}, "password": {"pw"}}))
	}
	var res loginResult
	if err := json.Unmarshal([]byte(p.Body), &res); err != nil {
		b.t.Fatalf("ACS answer %s (%d): %v\n%s", p.URL, p.Status, err, short(p.Body))
	}
	return form, res
}

func newReauthHarness(t *testing.T, opts ...harnessOpt) (*harness, *sharedClock) {
	clk := &sharedClock{t: time.Now()}
	h := newHarness(t, append(opts, func(c *Config) { c.Now = clk.Now })...)
	h.idp.SetClock(clk.Now)
	h.idp.AddUser(samltest.User{Username: "ada", Password: "pw"})
	return h, clk
}

// TestReauthForcesAuthn: a person with an IdP session is signed in
// silently by an ordinary sign-in, but a re-authenticating one sends
// ForceAuthn="true", the IdP shows its form again, and the assertion
// carries the new AuthnInstant; with either request binding.
func TestReauthForcesAuthn(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []harnessOpt
	}{
		{"redirect binding", nil},
		{"signed POST binding", []harnessOpt{func(c *Config) { c.RequestBinding = BindingPost; c.SignRequests = true }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, clk := newReauthHarness(t, tc.opts...)
			b := newBrowser(t)
			start := clk.Now()
			if form, res := h.signIn(b, "return_to=/"); !form || res.Error != "" {
				t.Fatalf("first sign-in: form %v, error %q", form, res.Error)
			} else if res.Assertion.AuthTime.Sub(start).Abs() > time.Second {
				t.Fatalf("AuthTime = %v, want the AuthnInstant %v", res.Assertion.AuthTime, start)
			}

			clk.add(5 * time.Minute)
			form, res := h.signIn(b, "return_to=/")
			if form || res.Error != "" {
				t.Fatalf("ordinary sign-in with an IdP session: form %v, error %q", form, res.Error)
			}
			if res.Assertion.AuthTime.After(start.Add(time.Second)) {
				t.Fatalf("silent sign-in AuthTime = %v, want the first authentication's (%v)", res.Assertion.AuthTime, start)
			}

			form, res = h.signIn(b, "reauth=1&return_to=/settings")
			if !form {
				t.Fatal("a re-authenticating sign-in did not bring back the IdP's login form")
			}
			if res.Error != "" || res.ReturnTo != "/settings" {
				t.Fatalf("re-authentication: error %q, returnTo %q", res.Error, res.ReturnTo)
			}
			if got := res.Assertion.AuthTime; got.Before(clk.Now().Add(-time.Second)) {
				t.Fatalf("re-authenticated AuthTime = %v, want the new authentication's (%v)", got, clk.Now())
			}
		})
	}
}

// TestReauthAuthnRequest: ForceAuthn="true" is in a re-authenticating
// sign-in's AuthnRequest, and in no other.
func TestReauthAuthnRequest(t *testing.T) {
	h, _ := newReauthHarness(t)
	for _, reauth := range []bool{false, true} {
		b := newBrowser(t)
		resp, err := b.c.Get(h.site.URL + "/login?reauth=" + map[bool]string{false: "0", true: "1"}[reauth])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The IdP's login form: the request is in the URL it was sent to.
		var ar saml.AuthnRequest
		if err := xml.Unmarshal(decodeRedirect(t, resp.Request.URL.Query().Get("SAMLRequest")), &ar); err != nil {
			t.Fatal(err)
		}
		if got := ar.ForceAuthn != nil && *ar.ForceAuthn; got != reauth {
			t.Errorf("reauth %v: ForceAuthn %v", reauth, got)
		}
	}
}

// TestReauthRefusesAStaleAnswer: the answer to a re-authenticating sign-in
// must show an authentication after it began: an IdP that ignores
// ForceAuthn and signs the person in from a ten-minute-old session, or
// says an old AuthnInstant, is refused with reauth_not_fresh. An ordinary
// sign-in takes the same answer.
func TestReauthRefusesAStaleAnswer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		misbehave func(*samltest.Server, *sharedClock)
	}{
		{"IdP ignores ForceAuthn", func(s *samltest.Server, _ *sharedClock) { s.SetIgnoreForceAuthn(true) }},
		{"old AuthnInstant", func(s *samltest.Server, clk *sharedClock) {
			s.SetHooks(samltest.Hooks{Assertion: func(a *saml.Assertion) {
				for i := range a.AuthnStatements {
					a.AuthnStatements[i].AuthnInstant = clk.Now().Add(-2 * time.Minute)
				}
			}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, clk := newReauthHarness(t)
			b := newBrowser(t)
			if _, res := h.signIn(b, "return_to=/"); res.Error != "" {
				t.Fatalf("first sign-in: %s", res.Error)
			}
			clk.add(10 * time.Minute)
			tc.misbehave(h.idp, clk)

			if _, res := h.signIn(b, "reauth=1&return_to=/settings"); res.Code != idp.CodeReauthNotFresh {
				t.Fatalf("re-authentication: code %q (%s), want %q", res.Code, res.Error, idp.CodeReauthNotFresh)
			}
			if _, res := h.signIn(b, "return_to=/"); res.Error != "" {
				t.Fatalf("an ordinary sign-in on the same IdP: %s", res.Error)
			}
		})
	}
}
