package oidc_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/htmlform"
)

func TestLogoutRequest(t *testing.T) {
	e := newEnv(t)
	res := e.login(newBrowser())
	wantCode(t, res, "")
	ctx := context.Background()
	info := res.Assertion.Logout
	info.IDToken = res.Tokens.ID // the session's, as the gateway passes it

	endpoint, params, err := e.p.LogoutRequest(ctx, info, e.rp.URL+"/signed-out")
	if err != nil {
		t.Fatal(err)
	}
	if endpoint != e.idp.Issuer+oidctest.PathEndSession || params.Get("client_id") != clientID ||
		params.Get("id_token_hint") != res.Tokens.ID || params.Get("post_logout_redirect_uri") != e.rp.URL+"/signed-out" {
		t.Fatalf("LogoutRequest = %s %v", endpoint, params)
	}

	noEnd := newEnv(t)
	noEnd.idp.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) { delete(d, "end_session_endpoint") }})
	if endpoint, _, err := noEnd.p.LogoutRequest(ctx, idp.LogoutInfo{IDToken: "x"}, "https://rp.example/"); endpoint != "" || err != nil {
		t.Errorf("LogoutRequest without end_session_endpoint = %q, %v", endpoint, err)
	}
}

// TestLogoutPostsTheHint: with an ID token to hint, Logout answers with a
// page whose form POSTs it to the end_session_endpoint, and no header of
// the answer holds it (a redirect's Location is in Caddy's access log).
// The form, submitted as a browser does, ends the IdP's session and
// returns to the post-logout URI; a foreign post-logout URI is not
// followed.
func TestLogoutPostsTheHint(t *testing.T) {
	for _, tc := range []struct {
		name, returnTo string
		foreign        bool
	}{
		{"registered origin", "/signed-out", false},
		{"foreign origin is not followed", "/signed-out", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := newBrowser()
			res := e.login(b)
			wantCode(t, res, "")
			token := res.Tokens.ID
			info := res.Assertion.Logout
			info.IDToken = token
			base := e.rp.URL + "/"
			post := e.rp.URL + tc.returnTo
			if tc.foreign {
				base, post = "https://evil.example/", "https://evil.example"+tc.returnTo
			}

			rec := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, e.rp.URL+"/logout", nil)
			done, err := e.p.Logout(rec, r, base, info, tc.returnTo)
			if err != nil || !done {
				t.Fatalf("Logout = %v, %v", done, err)
			}
			sig := token[strings.LastIndexByte(token, '.')+1:]
			for name, vs := range rec.Header() {
				for _, v := range vs {
					if strings.Contains(v, sig) || strings.Contains(v, "id_token_hint") {
						t.Errorf("the ID token is in the answer's %s header: %.120s", name, v)
					}
				}
			}
			h := rec.Header()
			if rec.Code != http.StatusOK || h.Get("Location") != "" {
				t.Errorf("Logout answered %d to %q, want 200 with a form", rec.Code, h.Get("Location"))
			}
			if h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("Cache-Control %q, Referrer-Policy %q; want no-store, no-referrer", h.Get("Cache-Control"), h.Get("Referrer-Policy"))
			}
			body := rec.Body.String()
			// The script that submits the form runs under the page's CSP.
			csp := regexp.MustCompile(`script-src 'nonce-([^']+)'`).FindStringSubmatch(h.Get("Content-Security-Policy"))
			if csp == nil || !strings.Contains(body, `<script nonce="`+csp[1]+`">`) || !strings.Contains(body, ".submit") {
				t.Errorf("no script submits the form under the CSP %q:\n%s", h.Get("Content-Security-Policy"), body)
			}
			page, _ := url.Parse(e.rp.URL + "/logout")
			action, fields, ok := htmlform.First(page, body)
			if !ok || !strings.Contains(body, `<form method="post"`) || !strings.Contains(body, `type="submit"`) {
				t.Fatalf("no POST form with a button:\n%s", body)
			}
			if action != e.idp.Issuer+oidctest.PathEndSession || fields.Get("id_token_hint") != token ||
				fields.Get("client_id") != clientID || fields.Get("post_logout_redirect_uri") != post {
				t.Fatalf("form posts %v to %s", fields, action)
			}

			// The browser submits it.
			resp, err := b.PostForm(action, fields)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == post; got == tc.foreign {
				t.Errorf("end_session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if e.idp.SessionID("alice") != "" {
				t.Error("the IdP's session survived the logout")
			}
		})
	}
}

// TestLogoutWithoutHintRedirects: without an ID token nothing secret goes
// to the IdP, and Logout redirects, the parameters in the query.
func TestLogoutWithoutHintRedirects(t *testing.T) {
	e := newEnv(t)
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, e.rp.URL+"/logout", nil)
	done, err := e.p.Logout(rec, r, e.rp.URL+"/", idp.LogoutInfo{Subject: "alice-sub"}, "/bye")
	if err != nil || !done {
		t.Fatalf("Logout = %v, %v", done, err)
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	q := loc.Query()
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(loc.String(), e.idp.Issuer+oidctest.PathEndSession+"?") ||
		q.Get("client_id") != clientID || q.Get("post_logout_redirect_uri") != e.rp.URL+"/bye" || q.Has("id_token_hint") {
		t.Errorf("Logout without an ID token: %d to %s", rec.Code, loc)
	}
}
