package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// The tests here put the route in a state that two browser tabs, or two
// instances over one store, reach: the request's own session is not the
// one a flow cookie or the cache remembers.

// samlCallbackProvider is callbackProvider at a SAML IdP: its callback is
// the ACS, which the IdP's page POSTs.
type samlCallbackProvider struct{ *callbackProvider }

func (samlCallbackProvider) Protocol() string { return idp.ProtocolSAML }

// signInAgain starts another session for ada at the IdP named and returns
// its token; the world's own session stays.
func signInAgain(t *testing.T, world *dutyWorld, name string) string {
	t.Helper()
	m, err := mapping.New("generic", idp.ProtocolOIDC, nil)
	if err != nil {
		t.Fatal(err)
	}
	email := "ada@example.com" // the world's ada at "corp"; another IdP's ada is another account
	if name != "corp" {
		email = "ada@" + name + ".example.com"
	}
	a := &idp.Assertion{IdP: name, Protocol: idp.ProtocolOIDC, Subject: "sub-ada", EmailVerified: true,
		Attributes: map[string][]string{"sub": {"sub-ada"}, "email": {email}, "given_name": {"Ada"}, "family_name": {"Lovelace"}}}
	out, err := world.run.SignIn.SignIn(context.Background(), &signin.IdP{Name: name, Mapper: m, Rules: provision.Rules{JIT: true}}, a, "")
	if err != nil || out.Session == nil {
		t.Fatalf("SignIn: %+v, %v", out, err)
	}
	return out.Session.Token
}

// TestACSEndsTheSessionItCameWith: a SAML sign-in carries the browser's
// session to the ACS in a flow cookie, because the session cookie
// (SameSite=Lax) does not come along on the IdP's cross-site POST: then
// the carried session is the one the sign-in ends. When the cookie does
// come along (an IdP on the same site), the session it names is the one
// the new cookie replaces, and the one the sign-in ends; the carried one
// is what the browser had when the sign-in began, which another tab's
// sign-in may have replaced since. Ending the carried one instead left the
// replaced session live in the store, its cookie overwritten: still valid
// for whoever copied it, and counted against the per-user cap.
func TestACSEndsTheSessionItCameWith(t *testing.T) {
	for _, sameSite := range []bool{true, false} {
		world := newDutyWorld(t) // the session the sign-in began with
		ended, cookies := world.token, []string(nil)
		if sameSite {
			current := signInAgain(t, world, "corp") // the session of another tab's sign-in since
			ended, cookies = current, []string{current}
		}
		m, err := mapping.New("generic", idp.ProtocolOIDC, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := &IdP{Name: "corp", Protocol: idp.ProtocolSAML,
			Provider: samlCallbackProvider{&callbackProvider{name: "corp", returnTo: "/"}},
			SignIn:   signin.IdP{Name: "corp", Mapper: m, Rules: provision.Rules{JIT: true}}}
		rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{p}, Default: p}

		r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/saml/corp/acs", nil)
		r.Header.Set("Accept", "text/html")
		r = idp.WithOrigin(r, dutyOrigin().Site)
		// The flow cookie beginLogin wrote with the first session.
		begun := httptest.NewRecorder()
		if err := world.run.Flows.Save(begun, r, previousSessionFlow, session.Hash(world.token), idp.DefaultLoginTimeout, http.SameSiteNoneMode); err != nil {
			t.Fatal(err)
		}
		for _, c := range begun.Result().Cookies() {
			r.AddCookie(c)
		}
		w := httptest.NewRecorder()
		if status := answerStatus(t, w, rt.ServeEndpoint(w, r, world.run, dutyOrigin(), cookies, nil)); status != http.StatusSeeOther {
			t.Fatalf("session cookie along %v: the ACS answered %d, want 303 signed in", sameSite, status)
		}
		if _, err := world.run.Sessions.Resolve(context.Background(), ended); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("session cookie along %v: the session the sign-in replaced: %v, want it ended", sameSite, err)
		}
	}
}

// TestWhoamiUserDeletedElsewhere: whoami of a session whose user was
// deleted since this instance cached the session (by another instance
// sharing the store, or the offline CLI: the cache trusts a session for
// CacheTTL) says "not signed in", as once the cache catches up; not 503
// "try again later", which a script would retry for that long.
func TestWhoamiUserDeletedElsewhere(t *testing.T) {
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	whoami := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/whoami", nil)
		r.Header.Set("Accept", "application/json")
		w := httptest.NewRecorder()
		if pe, ok := AsPageError(rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil)); ok {
			_ = pe.Write(w)
		}
		return w
	}
	if w := whoami(); w.Code != http.StatusOK { // and cached
		t.Fatalf("whoami before the deletion: %d", w.Code)
	}
	id, err := world.run.Sessions.Resolve(context.Background(), world.token)
	if err != nil {
		t.Fatal(err)
	}
	// Straight in the store, as another process does: this instance's
	// cache does not hear of it.
	if err := world.run.Store.Update(context.Background(), func(tx store.Tx) error { return tx.DeleteUser(id.UserID) }); err != nil {
		t.Fatal(err)
	}
	w := whoami()
	if w.Code != http.StatusUnauthorized || w.Header().Get("Retry-After") != "" || decodeJSON(t, w)["error"] != "not signed in" {
		t.Errorf("whoami after the deletion: %d, Retry-After %q, %s; want 401 not signed in", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

// expiredSession is a session of ada at the IdP named, past its lifetime
// but still stored (the sweep has not come by).
func expiredSession(t *testing.T, world *dutyWorld, name string) string {
	t.Helper()
	token := signInAgain(t, world, name)
	err := world.run.Store.Update(context.Background(), func(tx store.Tx) error {
		s, err := tx.Session(session.Hash(token))
		if err != nil {
			return err
		}
		s.Expires = time.Now().Add(-time.Minute)
		return tx.PutSession(s)
	})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// namedLogoutProvider is an OIDC IdP whose logout is at its own host.
type namedLogoutProvider struct{ logoutProvider }

func (p *namedLogoutProvider) Logout(w http.ResponseWriter, r *http.Request, _ string, _ idp.LogoutInfo, _ string) (bool, error) {
	http.Redirect(w, r, "https://"+p.name+".example.com/logout", http.StatusSeeOther)
	return true, nil
}

// TestSignOutPrefersTheSessionJustSignedOut: a sign-out POST whose
// cookies name a session signed out seconds ago (the first click, or a
// sign-out in another tab) and a session of another IdP that had already
// ended (expired, still stored) goes on to the first one's IdP logout,
// as the first POST did: that is the IdP session the person just asked to
// leave, and the browser shows this answer. The expired one's IdP comes
// only when nothing else ends.
func TestSignOutPrefersTheSessionJustSignedOut(t *testing.T) {
	world := newDutyWorld(t) // ada at "corp"
	expired := expiredSession(t, world, "work")
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{
		{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &namedLogoutProvider{logoutProvider{name: "corp"}}},
		{Name: "work", Protocol: idp.ProtocolOIDC, Provider: &namedLogoutProvider{logoutProvider{name: "work"}}},
	}}
	var kept string // the cookie the last answer kept for a second click
	signOut := func(tokens ...string) string {
		r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		w := httptest.NewRecorder()
		if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), tokens, nil); err != nil {
			t.Fatal(err)
		}
		kept = ""
		for _, c := range w.Result().Cookies() {
			if c.Name == dutyOrigin().SessionCookie() && c.MaxAge > 0 {
				kept = c.Value
			}
		}
		return w.Header().Get("Location")
	}
	if got := signOut(world.token); got != "https://corp.example.com/logout" {
		t.Fatalf("the first sign-out went to %q, want corp's logout", got)
	}
	if got := signOut(world.token, expired); got != "https://corp.example.com/logout" {
		t.Errorf("the second sign-out, with the expired work session too, went to %q; want corp's logout again", got)
	}
	// Alone, an expired session leads to its IdP's logout: the only one
	// its cookie gets. (The second POST deleted the first: another here.)
	if got := signOut(expiredSession(t, world, "work")); got != "https://work.example.com/logout" {
		t.Errorf("an expired session alone went to %q, want work's logout", got)
	}
	// A live session before an expired one: the cookie kept for a second
	// click names the live one, whose IdP this answer went to, so that a
	// second click goes there too.
	expired = expiredSession(t, world, "work")
	live := signInAgain(t, world, "corp")
	if got := signOut(live, expired); got != "https://corp.example.com/logout" || kept != live {
		t.Errorf("a live corp session before an expired work one went to %q, kept the live one's cookie: %v; want corp's logout and its cookie",
			got, kept == live)
	}
	if got := signOut(kept); got != "https://corp.example.com/logout" {
		t.Errorf("the second click, with the cookie the first answer kept, went to %q; want corp's logout again", got)
	}
}
