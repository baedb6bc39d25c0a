package caddymodule_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestTrustEmailRefusedMultiTenant: trust_email on Entra's multi-tenant
// issuer (tenants) is a configuration error, at the line that makes it in
// a Caddyfile (whichever of the two lines comes last) and in JSON: any
// tenant's administrator can give a user any address, which must never
// link to another's account.
func TestTrustEmailRefusedMultiTenant(t *testing.T) {
	const head = "{\n\tsso {\n\t\tidp entra oidc {\n\t\t\tpreset entra\n\t\t\tissuer https://login.microsoftonline.com/organizations/v2.0\n\t\t\tclient_id x\n"
	const tail = "\t\t}\n\t}\n}\n"
	for _, tc := range []struct{ name, lines, want string }{
		{"after tenants", "\t\t\ttenants any\n\t\t\ttrust_email\n", "Caddyfile:8"},
		{"before tenants", "\t\t\ttrust_email\n\t\t\ttenants 72f988bf-86f1-41af-91ab-2d7cd011db47\n", "Caddyfile:7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(head+tc.lines+tail), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), "trust_email") || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "sso idp entra") {
				t.Fatalf("adapt: %v, want an error naming trust_email at %s", err, tc.want)
			}
		})
	}
	// JSON is held to the same rule (Provision, caddy validate, caddy sso check).
	var c caddymodule.IdPConfig
	if err := json.Unmarshal([]byte(`{"name": "entra", "protocol": "oidc", "trust_email": true, "oidc": {"issuer": "https://login.microsoftonline.com/common/v2.0", "client_id": "x", "tenants": ["any"]}}`), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "trust_email") {
		t.Errorf("Validate: %v, want trust_email refused", err)
	}
	c.TrustEmail = false
	if err := c.Validate(); err != nil {
		t.Errorf("Validate without trust_email: %v", err)
	}
}

// TestTrustEmailOIDCAbsentVerified: Ada's user is made by a corporate
// OIDC IdP that verified her address; then she signs in through an Entra
// OIDC IdP (link_by_email), which sends no email_verified. Only with
// trust_email does that count as verified and link her in; an explicit
// email_verified false is refused even with trust_email.
func TestTrustEmailOIDCAbsentVerified(t *testing.T) {
	const absent = "absent"
	for _, tc := range []struct {
		name, lines string
		verified    any
		want        string // "": linked; else the refusal's code on its page
	}{
		{"absent, without trust_email", "", absent, provision.ReasonEmailConflict},
		{"absent, trust_email", "\t\t\ttrust_email\n", absent, ""},
		{"false, trust_email", "\t\t\ttrust_email\n", false, "email_unverified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			corp := startOP(t, "ada@example.com", g.base+"/.sso/oidc/corp/callback")
			entra := startOP(t, "ada@example.com", g.base+"/entra/.sso/oidc/entra/callback")
			claims := map[string]any{"sub": "sub-entra", "given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.com"}
			if tc.verified != absent {
				claims["email_verified"] = tc.verified
			}
			entra.AddUser("ada", "ada-pw", claims)
			blocks := oidcIdPBlock("corp", corp) + fmt.Sprintf("\t\tidp entra oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t\tlink_by_email\n%s\t\t}\n",
				entra.Issuer, clientID, clientSecret, tc.lines)
			g.start(g.caddyfile(blocks, twoRoutes(g.base, "entra", "corp", newEchoUpstream(t).hostPort())))

			first := upstreamSaw(t, newBrowser(t).signIn(g.base+"/x", "ada", "ada-pw")).header("X-Forwarded-User")
			resp := newBrowser(t).signIn(g.base+"/entra/x", "ada", "ada-pw")
			if tc.want != "" {
				if body := readBody(t, resp); resp.StatusCode < http.StatusBadRequest || !strings.Contains(body, tc.want) {
					t.Fatalf("entra sign-in: %s, want a refusal with %s:\n%s", resp.Status, tc.want, body)
				}
			} else if again := upstreamSaw(t, resp).header("X-Forwarded-User"); again != first {
				t.Fatalf("entra sign-in as user %s, want Ada's %s", again, first)
			}
			view(t, func(tx store.Tx) error {
				u, err := tx.UserByLink("entra", "sub-entra")
				if linked := err == nil && u.ID == first; linked != (tc.want == "") || tc.want != "" && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("entra link: %v %+v, want linked %v", err, u, tc.want == "")
				}
				return nil
			})
		})
	}
}

// twoRoutes is a site whose /<other>/ routes sign in through IdP other
// (path prefix /<other>/.sso/), and the rest through main.
func twoRoutes(base, other, main, upstream string) string {
	return fmt.Sprintf("%[1]s {\n\thandle /%[2]s/* {\n\t\tsso %[2]s {\n\t\t\tpath_prefix /%[2]s/.sso/\n\t\t}\n\t\treverse_proxy %[4]s\n\t}\n\thandle {\n\t\tsso %[3]s\n\t\treverse_proxy %[4]s\n\t}\n}\n",
		base, other, main, upstream)
}

// TestTrustEmailLinksSAMLAccount: Ada signs in first through an Entra SAML
// IdP, which never says an address was verified, then through an OIDC IdP
// (email_verified, link_by_email). With trust_email on the SAML IdP, her
// address is vouched for, whichever attribute the mapping reads it from,
// and the OIDC sign-in links into her user: one user, two links. Without
// it the OIDC sign-in is refused as an email conflict, as before; and
// trust_email vouches for nothing when the assertion carries no email.
func TestTrustEmailLinksSAMLAccount(t *testing.T) {
	entra := func(p samltest.Person) samltest.User { return samltest.Entra("ada", "ada-pw", p) }
	without := func(attr string) func(samltest.Person) samltest.User {
		return func(p samltest.Person) samltest.User { u := entra(p); delete(u.Attributes, attr); return u }
	}
	for _, tc := range []struct {
		name, lines      string
		user             func(samltest.Person) samltest.User
		verified, linked bool
	}{
		{"without trust_email", "", entra, false, false},
		{"trust_email", "\t\t\ttrust_email\n", entra, true, true},
		{"trust_email, email mapped from the UPN", "\t\t\ttrust_email\n\t\t\tmap email " + samltest.EntraName + "\n", without(samltest.EntraEmailAddress), true, true},
		{"trust_email, no email", "\t\t\ttrust_email\n\t\t\toptional email\n", without(samltest.EntraEmailAddress), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newSAMLWorld(t, "\t\t\tpreset entra\n\t\t\tjit\n"+tc.lines)
			corp := startOP(t, samlPerson.Email, w.gw.base+"/corp/.sso/oidc/corp/callback")
			blocks := fmt.Sprintf("\t\tidp test saml {\n\t\t\tmetadata_url %s\n%s\t\t}\n", w.idp.MetadataURL(), w.idpBlock) +
				fmt.Sprintf("\t\tidp corp oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t\tlink_by_email\n\t\t}\n", corp.Issuer, clientID, clientSecret)
			w.gw.start(w.gw.caddyfile(blocks, fmt.Sprintf("%[1]s {\n\thandle /corp/* {\n\t\tsso corp {\n\t\t\tpath_prefix /corp/.sso/\n\t\t}\n\t\treverse_proxy %[2]s\n\t}\n\thandle {\n\t\tsso test\n\t\treverse_proxy %[2]s\n\t}\n}\n",
				w.gw.base, w.upstream.hostPort())))
			if err := w.idp.RegisterServiceProvider([]byte(w.spMetadata())); err != nil {
				t.Fatal(err)
			}
			w.addUser(tc.user(samlPerson))

			newBrowser(t).samlSignIn(w.gw.base+"/x", "ada", "ada-pw").saw(t)
			first := userBySubject(t, samlPerson.ID)
			if first.EmailVerified != tc.verified {
				t.Errorf("after the SAML sign-in: email %q verified %v, want %v", first.Email, first.EmailVerified, tc.verified)
			}

			resp := newBrowser(t).signIn(w.gw.base+"/corp/x", "ada", "ada-pw")
			if !tc.linked && first.Email != "" {
				if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, provision.ReasonEmailConflict) {
					t.Fatalf("OIDC sign-in: %s, want the email conflict page:\n%s", resp.Status, body)
				}
			} else {
				upstreamSaw(t, resp)
			}
			view(t, func(tx store.Tx) error {
				u, err := tx.UserByLink("corp", "sub-ada")
				switch {
				case tc.linked && (err != nil || u.ID != first.ID || len(u.Links) != 2):
					t.Errorf("the OIDC sign-in was not linked into the SAML user %s: %v %+v", first.ID, err, u)
				case !tc.linked && err == nil && u.ID == first.ID:
					t.Errorf("the OIDC sign-in was linked into the SAML user, whose email nobody vouched for: %+v", u)
				case !tc.linked && first.Email != "" && !errors.Is(err, store.ErrNotFound):
					t.Errorf("the refused OIDC subject is linked: %v", err)
				}
				return nil
			})
		})
	}
}
