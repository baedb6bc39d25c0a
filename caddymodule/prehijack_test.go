package caddymodule_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestLinkByEmailRefusesAccountPreclaimedThroughMultiTenantIdP: mallory,
// administrator of her own tenant of a multi-tenant Entra IdP (whose
// emails are never treated as verified), gives herself ada's corporate
// address and signs in FIRST: JIT creates a user holding it. Ada's later
// sign-in through the corporate IdP (jit, link_by_email, verified) must
// not be linked into that user, which mallory's link still signs in to:
// ada gets the email conflict page, and mallory's user keeps her link
// alone.
func TestLinkByEmailRefusesAccountPreclaimedThroughMultiTenantIdP(t *testing.T) {
	g := newGateway(t)
	corp := startOP(t, "ada@example.com", g.base+"/.sso/oidc/corp/callback")
	mt, err := oidctest.StartEntraMultiTenant("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mt.Close() })
	mt.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{g.base + "/mt/.sso/oidc/mt/callback"}})
	mt.AddUser("mallory", "m-pw", map[string]any{"sub": "sub-m", "oid": mtOID, "tid": mtTenantB,
		"given_name": "Mal", "family_name": "Lory", "email": "ada@example.com", "email_verified": true})
	up := newEchoUpstream(t).hostPort()
	sso := fmt.Sprintf("\t\tidp corp oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t\tlink_by_email\n\t\t}\n", corp.Issuer, clientID, clientSecret) +
		fmt.Sprintf("\t\tidp mt oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tpreset entra\n\t\t\ttenants any\n\t\t\tjit\n\t\t}\n", mt.Issuer, clientID, clientSecret)
	g.start(g.caddyfile(sso, fmt.Sprintf(`%[1]s {
	handle /mt/* {
		sso mt {
			path_prefix /mt/.sso/
		}
		reverse_proxy %[2]s
	}
	handle {
		sso corp
		reverse_proxy %[2]s
	}
}
`, g.base, up)))

	malID := upstreamSaw(t, newBrowser(t).signIn(g.base+"/mt/x", "mallory", "m-pw")).header("X-Forwarded-User")

	resp := newBrowser(t).signIn(g.base+"/", "ada", "ada-pw")
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, provision.ReasonEmailConflict) {
		t.Fatalf("ada's corporate sign-in: %s, want the email conflict page:\n%s", resp.Status, body)
	}
	view(t, func(tx store.Tx) error {
		if _, err := tx.UserByLink("corp", "sub-ada"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ada's corporate subject was linked: %v", err)
		}
		u, err := tx.User(malID)
		if err != nil {
			return err
		}
		if want := []store.Link{{IdP: "mt", Subject: mtTenantB + "/" + mtOID}}; !slices.Equal(u.Links, want) {
			t.Errorf("mallory's user has links %v, want only %v", u.Links, want)
		}
		return nil
	})
	if again := upstreamSaw(t, newBrowser(t).signIn(g.base+"/mt/x", "mallory", "m-pw")).header("X-Forwarded-User"); again != malID {
		t.Errorf("mallory signed in again as %s, want her user %s", again, malID)
	}
}
