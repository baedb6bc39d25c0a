package caddymodule_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestOIDCUnverifiedEmail: an ID token with email_verified false, whose
// address is in allowed_domains, gets the "Sign-in failed" page with the
// reference email_unverified, a login.failed event and a "sign-in refused"
// log line naming the address; no user is created. With
// allow_unverified_email the same sign-in works.
func TestOIDCUnverifiedEmail(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n\t\t\tallowed_domains corp.example\n").start()
	w.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
		tok.Claims["email"] = "ada@corp.example"
		tok.Claims["email_verified"] = false
	}})

	b := newBrowser(t)
	resp := b.signIn(w.gw.base+"/", "ada", "ada-pw")
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, "Sign-in failed") || !strings.Contains(body, "email_unverified") {
		t.Fatalf("want the sign-in-failed page with email_unverified, got %s:\n%s", resp.Status, body)
	}
	// Again, from the provider's session: the page, no session, and the
	// login.failed event of a sign-in this browser began.
	expectRefused(t, w, b, b.callbackURL(w), "email_unverified")
	logs := w.gw.logs()
	if !strings.Contains(logs, "sign-in refused") || !strings.Contains(logs, `"reason":"email_unverified"`) ||
		!strings.Contains(logs, "ada@corp.example") {
		t.Errorf("no sign-in refused line with the reason and the address:\n%s", logs)
	}
	view(t, func(tx store.Tx) error {
		if u, err := tx.UserByLink("test", "sub-ada"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a user was created: %+v, %v", u, err)
		}
		return nil
	})

	w.idpBlock += "\t\t\tallow_unverified_email\n"
	w.gw.reload(w.caddyfile())
	saw := upstreamSaw(t, b.get(b.callbackURL(w)))
	u := userBySubject(t, "sub-ada")
	if u == nil || u.Email != "ada@corp.example" || saw.header("X-Forwarded-User") != u.ID {
		t.Fatalf("with allow_unverified_email: user %+v, upstream user %q", u, saw.header("X-Forwarded-User"))
	}
}
