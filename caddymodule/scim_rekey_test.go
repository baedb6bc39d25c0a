package caddymodule_test

import (
	"html"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSCIMRekeyedUserRefusesTheNewSubject: through a real Caddy, Ada signs
// in (JIT), then the directory writes another person's IdP user ID as her
// externalId (Okta matching by userName after re-issuing her username).
// That person's first sign-in gets the plain "Access denied" page with
// reference external_id_conflict, audited jit.conflict; it never reaches
// the app as Ada, and Ada's user keeps her link alone.
func TestSCIMRekeyedUserRefusesTheNewSubject(t *testing.T) {
	w := newSCIMWorld(t)
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	id := userBySubject(t, "sub-ada").ID
	w.scim.must(200, "PATCH", "/Users/"+id, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "replace", "path": "externalId", "value": "sub-newcomer"}]}`)
	w.idp.AddUser("newcomer", "newcomer-pw", map[string]any{
		"sub": "sub-newcomer", "given_name": "Ada", "family_name": "Newcomer",
		"email": "ada@example.com", "email_verified": true,
	})

	before := w.app.hits.Load()
	resp := newBrowser(t).signIn(w.gw.base+"/", "newcomer", "newcomer-pw")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Reference: <code>"+provision.ReasonExternalIDConflict+"</code>") {
		t.Errorf("the newcomer's sign-in: %s, want 403 with reference %s: %s", resp.Status, provision.ReasonExternalIDConflict, body)
	}
	want := (&provision.Denial{Reason: provision.ReasonExternalIDConflict}).Message()
	if !strings.Contains(html.UnescapeString(body), want) || strings.Contains(body, id) {
		t.Errorf("the page does not say %q, or names the user %s: %s", want, id, body)
	}
	if n := w.app.hits.Load() - before; n != 0 {
		t.Errorf("%d requests of the refused sign-in reached the app", n)
	}
	if got := auditReasons(t, store.EventJITConflict); !slices.Equal(got, []string{provision.ReasonExternalIDConflict}) {
		t.Errorf("%s events %v, want one %s", store.EventJITConflict, got, provision.ReasonExternalIDConflict)
	}
	view(t, func(tx store.Tx) error {
		u, err := tx.User(id)
		if err != nil {
			return err
		}
		if !slices.Equal(u.Links, []store.Link{{IdP: "test", Subject: "sub-ada"}}) {
			t.Errorf("Ada's user has links %v, want sub-ada's alone", u.Links)
		}
		return nil
	})
}
