package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// signOutPost is the POST the sign-out button sends to base's gateway.
func signOutPost(t *testing.T, base string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/.sso/logout", strings.NewReader("return_to=/"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", base)
	return req
}

// postSignOut posts the sign-out button, as the gateway's page does.
func postSignOut(t *testing.T, b *browser, base string) (int, string) {
	t.Helper()
	resp, err := b.noRedirects().Do(signOutPost(t, base))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readBody(t, resp)
}

// TestSignOutAfterIdleTimeoutEndsIdPSession: a person who leaves a tab
// open past idle_timeout and then clicks "Sign out" is sent on to the
// IdP's end_session_endpoint, as after a sign-out in time: the session,
// still stored (not swept), holds the ID token, and the IdP's session must
// not outlive the sign-out (docs/security.md), or the next person at that
// computer signs in without a password.
func TestSignOutAfterIdleTimeoutEndsIdPSession(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	o := caddytest.OIDC{IdP: w.idp, GW: w.gw.Gateway, IdPBlock: w.idpBlock}
	w.gw.start(w.gw.caddyfile(o.IdPConfig()+"\t\tsession {\n\t\t\tidle_timeout 2s\n\t\t}\n", w.sites))

	live := newBrowser(t)
	upstreamSaw(t, live.signIn(w.gw.base+"/", "ada", "ada-pw"))
	if st, body := postSignOut(t, live, w.gw.base); st != http.StatusOK || !strings.Contains(body, "/end_session") {
		t.Fatalf("sign-out of a live session: %d, want the IdP's logout: %.300s", st, body)
	}

	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	time.Sleep(3 * time.Second) // idle past idle_timeout
	if st, body := postSignOut(t, b, w.gw.base); st != http.StatusOK || !strings.Contains(body, "/end_session") {
		t.Errorf("sign-out after the idle timeout: %d, want the IdP's logout as for a live session: %.300s", st, body)
	}
}
