package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestStoreUnavailableAnswers: while the store is away a script gets a
// JSON 503 it can retry (Retry-After, never cached) and the request ends
// there (ErrAnswered, never nil, or the caller would go on upstream); a
// navigation gets the store_unavailable page, with Retry-After already on
// the writer that the error routes answer on. Only the unrecorded
// sign-out's page says the person is signed out.
func TestStoreUnavailableAnswers(t *testing.T) {
	rt := &Route{Logger: zap.NewNop()}
	away := errors.New("database is away")

	w := httptest.NewRecorder()
	if err := rt.StoreUnavailable(w, false, msgSessionUnavailable, away); !errors.Is(err, ErrAnswered) {
		t.Fatalf("script: %v, want ErrAnswered", err)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] == "" || strings.Contains(w.Body.String(), "database") {
		t.Errorf("script body %q (%v): an error, and not the store's", w.Body, err)
	}
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != StoreRetryAfter || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("script: %d %v, want 503, Retry-After %s, no-store", w.Code, w.Header(), StoreRetryAfter)
	}

	for _, tc := range []struct {
		message   string
		signedOut bool
	}{{msgSessionUnavailable, false}, {msgSignOutUnrecorded, true}} {
		w := httptest.NewRecorder()
		pe, ok := AsPageError(rt.StoreUnavailable(w, true, tc.message, away))
		if !ok {
			t.Fatal("navigation: no page")
		}
		if pe.Name != PageStoreUnavailable || pe.Status != http.StatusServiceUnavailable || pe.Code != CodeStoreUnavailable ||
			pe.Message != tc.message || pe.SignedOut != tc.signedOut {
			t.Errorf("page %+v, want store_unavailable 503 saying %q, signed out %v", pe.Page, tc.message, tc.signedOut)
		}
		if w.Header().Get("Retry-After") != StoreRetryAfter {
			t.Errorf("page: Retry-After %q not set on the writer", w.Header().Get("Retry-After"))
		}
	}
}

// TestSessionUnavailableByRequest: a session that cannot be read gets a
// page on a navigation and JSON on a script's request.
func TestSessionUnavailableByRequest(t *testing.T) {
	rt := &Route{Logger: zap.NewNop()}
	nav := httptest.NewRequest(http.MethodGet, "/app", nil)
	nav.Header.Set("Sec-Fetch-Mode", "navigate")
	nav.Header.Set("Sec-Fetch-Dest", "document")
	nav.Header.Set("Accept", "text/html")
	if _, ok := AsPageError(rt.SessionUnavailable(httptest.NewRecorder(), nav, errors.New("away"))); !ok {
		t.Error("navigation: no page")
	}
	fetch := httptest.NewRequest(http.MethodGet, "/api", nil)
	fetch.Header.Set("Sec-Fetch-Mode", "cors")
	fetch.Header.Set("Sec-Fetch-Dest", "empty")
	fetch.Header.Set("Accept", "*/*")
	w := httptest.NewRecorder()
	if err := rt.SessionUnavailable(w, fetch, errors.New("away")); !errors.Is(err, ErrAnswered) || w.Code != http.StatusServiceUnavailable {
		t.Errorf("script: %v, %d; want ErrAnswered and a JSON 503", err, w.Code)
	}
}

// TestPageErrorWords: the error an operator's error page may print, and
// the {http.auth.sso.*} placeholders the error routes get.
func TestPageErrorWords(t *testing.T) {
	pe := &PageError{Page: logoutIncompletePage("okta", "saml_signature_invalid", true)}
	if got, want := pe.Error(), "sso: Sign-out incomplete (reference saml_signature_invalid)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&PageError{Page: forbiddenPage("/")}).Error(), "sso: Access denied"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	ph := pe.Placeholders()
	for k, want := range map[string]any{"page": PageLogoutIncomplete, "reason": "saml_signature_invalid", "status": http.StatusBadRequest,
		"title": "Sign-out incomplete", "message": pe.Message, "idp": "okta", "signed_out": true} {
		if ph[k] != want {
			t.Errorf("placeholder %s = %v, want %v", k, ph[k], want)
		}
	}
}

// TestUserPlaceholders: each {http.auth.user.*} name answers its own
// field; other names, and other prefixes, are not ours.
func TestUserPlaceholders(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := &store.User{Email: "zoe@corp.example", FirstName: "Zoe", LastName: "Ng", Groups: []string{"eng", "ops"}, Active: true, Source: store.SourceJIT}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	token, _, err := m.Create(ctx, u, "entra", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Resolve(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	get := UserPlaceholders(id)
	for key, want := range map[string]string{
		"http.auth.user.id": u.ID, "http.auth.user.email": "zoe@corp.example",
		"http.auth.user.first_name": "Zoe", "http.auth.user.last_name": "Ng",
		"http.auth.user.groups": "eng,ops", "http.auth.user.idp": "entra",
	} {
		if v, ok := get(key); !ok || fmt.Sprint(v) != want {
			t.Errorf("%s = %v, %v; want %q", key, v, ok, want)
		}
	}
	for _, key := range []string{"http.auth.user.group", "http.auth.user.password", "http.auth.sso.idp", "user.id"} {
		if v, ok := get(key); ok {
			t.Errorf("%s = %v, want none", key, v)
		}
	}
}

// TestPageHeaders: a framed page may be framed by any page, every other
// by none; the form may post to the given origins (reduced to their
// origin, lower case) and to nothing that is not http(s); the referrer
// stays on this site; no cache keeps a page.
func TestPageHeaders(t *testing.T) {
	w := httptest.NewRecorder()
	pg := logoutPage("/.sso/", "/")
	pg.FormTargets = []string{"https://IdP.Example.com/logout?x=1", "javascript:alert(1)", "data:text/html,x", "ftp://files.example"}
	if err := (*Pages)(nil).Write(w, pg); err != nil {
		t.Fatal(err)
	}
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.HasSuffix(csp, "; form-action 'self' https://idp.example.com") || !strings.Contains(csp, "frame-ancestors 'none';") {
		t.Errorf("CSP %q: want frame-ancestors 'none' and form-action 'self' https://idp.example.com only", csp)
	}
	if got := w.Header().Get("Referrer-Policy"); got != "same-origin" {
		t.Errorf("Referrer-Policy %q, want same-origin (the sign-out POST needs its Origin)", got)
	}
	// A page says who is signed in and holds a sign-out form: no cache
	// (a shared one, the back button after signing out) may keep it.
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}

	w = httptest.NewRecorder()
	if err := (*Pages)(nil).Write(w, frameSignInPage("/.sso/login?return_to=%2Fdash")); err != nil {
		t.Fatal(err)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors *;") {
		t.Errorf("framed page's CSP %q: want frame-ancestors *", csp)
	}
	if body := w.Body.String(); !strings.Contains(body, `target="_top"`) || w.Code != http.StatusUnauthorized {
		t.Errorf("framed page %d: its link must open in the whole window:\n%s", w.Code, body)
	}
}

// TestPageWording: the pages whose wording or link depends on what
// happened say so.
func TestPageWording(t *testing.T) {
	reauth := signInFailedPage("/.sso/", "okta", idp.CodeReauthNotFresh)
	if !strings.Contains(reauth.Message, "You are still signed in") || reauth.Links[0].Href != "/.sso/login?idp=okta&reauth=1" || reauth.Links[0].Text != "Confirm who you are" {
		t.Errorf("refused re-authentication: %q %+v", reauth.Message, reauth.Links)
	}
	if plain := signInFailedPage("/.sso/", "okta", "id_token_nonce"); plain.Links[0].Href != "/.sso/login?idp=okta" {
		t.Errorf("sign-in failed: %+v", plain.Links)
	}
	// A new signing key not fetched yet is no fault to report: wait, and sign in again.
	if pg := signInFailedPage("/.sso/", "okta", oidc.CodeSigningKeyPending); !strings.Contains(pg.Message, "Wait half a minute, then sign in again") ||
		strings.Contains(pg.Message, "administrator") || pg.Links[0].Href != "/.sso/login?idp=okta" {
		t.Errorf("signing key pending: %q %+v", pg.Message, pg.Links)
	}
	if pg := deniedPage("okta", "jit_pending", "m", true); pg.Title != "Waiting for approval" {
		t.Errorf("pending: title %q", pg.Title)
	}
	if pg := deniedPage("okta", "jit_disabled", "m", false); pg.Title != "Access denied" {
		t.Errorf("denied: title %q", pg.Title)
	}
	if pg := logoutIncompletePage("okta", "c", true); !pg.SignedOut || !strings.HasPrefix(pg.Message, "You are signed out of this application.") {
		t.Errorf("after the session ended: %+v", pg)
	}
	if pg := logoutIncompletePage("okta", "c", false); pg.SignedOut || !strings.Contains(pg.Message, "you may still be signed in to this application") {
		t.Errorf("session still on: %+v", pg)
	}
	if pg := forbiddenPage("/p/"); len(pg.Links) != 1 || pg.Links[0].Href != "/p/logout" {
		t.Errorf("forbidden: %+v, want a link to sign out", pg.Links)
	}
	if pg := signInAgainPage("/.sso/login"); pg.Status != http.StatusUnauthorized {
		t.Errorf("sign in again: status %d", pg.Status)
	}
}

// TestPageLinksStayOnSite: the chooser's and the signed-out page's links
// come back to a local path only: a return_to of another site becomes "/".
func TestPageLinksStayOnSite(t *testing.T) {
	for _, returnTo := range []string{"https://evil.example/", "//evil.example/x"} {
		if href := chooserPage("/.sso/", []string{"okta"}, returnTo).Links[0].Href; href != "/.sso/login?idp=okta&return_to=%2F" {
			t.Errorf("chooser, return_to %q: %s", returnTo, href)
		}
		if href := signedOutPage("/.sso/", returnTo).Links[0].Href; href != "/.sso/login?return_to=%2F" {
			t.Errorf("signed out, return_to %q: %s", returnTo, href)
		}
	}
	if href := chooserPage("/.sso/", []string{"okta"}, "/a?b=c").Links[0].Href; href != "/.sso/login?idp=okta&return_to=%2Fa%3Fb%3Dc" {
		t.Errorf("chooser: %s", href)
	}
}

// TestMissingAttributesPageSaysWhatWasSent: the missing_attributes page
// is what an operator reads to fix the IdP's claim mapping, so it lists
// the attributes the IdP must send and each one it did send (an empty one
// said so), or that it sent none.
func TestMissingAttributesPageSaysWhatWasSent(t *testing.T) {
	for _, tc := range []struct {
		received []PageAttribute
		want     []string
	}{
		{[]PageAttribute{{Name: "sub"}, {Name: "email", Empty: true}}, []string{"<li><code>sub</code></li>", "<li><code>email</code> (sent empty)</li>"}},
		{nil, []string{"<p>No attributes.</p>"}},
	} {
		pg := SamplePage(PageMissingAttributes)
		pg.Received = tc.received
		w := httptest.NewRecorder()
		if err := (*Pages)(nil).Write(w, pg); err != nil {
			t.Fatal(err)
		}
		body := w.Body.String()
		for _, want := range append(tc.want, "<h2>What it sent</h2>", "<li><code>email</code>: one of <code>email</code>, <code>upn</code></li>") {
			if !strings.Contains(body, want) {
				t.Errorf("received %v: the page lacks %q:\n%s", tc.received, want, body)
			}
		}
	}
}

// TestPageLinksNameTheIdP: an IdP's name may hold characters a query
// gives a meaning to (idp.CheckName allows &, +, = and ;): the pages'
// sign-in links still name that IdP, and the chooser's keeps its return
// path.
func TestPageLinksNameTheIdP(t *testing.T) {
	for _, name := range []string{"okta", "r&d", "eng+ops", "a=b;c"} {
		links := map[string]string{
			"chooser":        chooserPage("/.sso/", []string{name}, "/reports?q=1").Links[0].Href,
			"sign-in failed": signInFailedPage("/.sso/", name, "id_token_nonce").Links[0].Href,
			"reauth":         signInFailedPage("/.sso/", name, idp.CodeReauthNotFresh).Links[0].Href,
		}
		for page, href := range links {
			u, err := url.Parse(href)
			if err != nil {
				t.Fatalf("%s, IdP %q: %v", page, name, err)
			}
			q := u.Query()
			if got := q.Get("idp"); got != name || len(q["idp"]) != 1 {
				t.Errorf("%s, IdP %q: link %s names IdP %q", page, name, href, got)
			}
			if page == "chooser" && q.Get("return_to") != "/reports?q=1" {
				t.Errorf("%s, IdP %q: link %s returns to %q, want /reports?q=1", page, name, href, q.Get("return_to"))
			}
		}
	}
}
