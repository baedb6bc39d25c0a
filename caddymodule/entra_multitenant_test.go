package caddymodule_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// Tenants of the multi-tenant tests: A and B admitted, C not; the three
// users share one oid, as users of different tenants may.
const (
	mtTenantA = "aaaaaaaa-1111-4111-8111-111111111111"
	mtTenantB = "bbbbbbbb-2222-4222-8222-222222222222"
	mtTenantC = "cccccccc-3333-4333-8333-333333333333"
	mtOID     = "00000000-0000-0000-0000-0000000000f1"
)

// newMultiTenantWorld is an oidcWorld whose IdP behaves as Entra ID's
// organizations endpoint (its issuer <origin>/organizations/v2.0, its
// discovery naming <origin>/{tenantid}/v2.0, each token its user's
// tenant), with alice in tenant A, bob in B and carol in C, all of one oid.
func newMultiTenantWorld(t *testing.T, idpBlock string) *oidcWorld {
	t.Helper()
	op, err := oidctest.StartEntraMultiTenant("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	o := &caddytest.OIDC{T: t, IdP: op, Upstream: caddytest.NewEchoUpstream(t), GW: caddytest.NewGateway(t), IdPBlock: idpBlock}
	op.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{o.GW.Base + "/.sso/oidc/test/callback"}})
	for user, tid := range map[string]string{"alice": mtTenantA, "bob": mtTenantB, "carol": mtTenantC} {
		op.AddUser(user, user+"-pw", map[string]any{"sub": "sub-" + user, "oid": mtOID, "tid": tid,
			"given_name": user, "family_name": "Tenant", "email": user + "@example.com", "email_verified": true})
	}
	o.Sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", o.GW.Base, o.Upstream.HostPort())
	return &oidcWorld{t: t, idp: op, upstream: &echoUpstream{o.Upstream}, gw: newGatewayOf(t, o.GW), idpBlock: idpBlock, sites: o.Sites}
}

// mtUser is the user linked to subject at the IdP "test", or nil.
func mtUser(t *testing.T, subject string) *store.User {
	t.Helper()
	var u *store.User
	view(t, func(tx store.Tx) error {
		var err error
		if u, err = tx.UserByLink("test", subject); errors.Is(err, store.ErrNotFound) {
			u, err = nil, nil
		}
		return err
	})
	return u
}

// TestEntraMultiTenantSignIn: through Entra's organizations endpoint with
// tenants A and B, users of both tenants with the same oid sign in as two
// users, keyed "<tid>/<oid>"; a user of tenant C gets the "Sign-in failed"
// page with the reference tenant_not_allowed (and a login.failed event of
// that reason), a page that names neither tenant admitted.
func TestEntraMultiTenantSignIn(t *testing.T) {
	w := newMultiTenantWorld(t, "\t\t\tpreset entra\n\t\t\ttenants "+mtTenantA+" "+mtTenantB+"\n\t\t\tjit\n").start()
	ids := map[string]string{}
	for user, tid := range map[string]string{"alice": mtTenantA, "bob": mtTenantB} {
		saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", user, user+"-pw"))
		u := mtUser(t, tid+"/"+mtOID)
		if u == nil || saw.header("X-Forwarded-User") != u.ID || u.Email != user+"@example.com" {
			t.Fatalf("%s: user %+v, upstream user %q", user, u, saw.header("X-Forwarded-User"))
		}
		ids[user] = u.ID
	}
	if ids["alice"] == ids["bob"] {
		t.Fatalf("two tenants' users are one user %s", ids["alice"])
	}
	if u := mtUser(t, mtOID); u != nil {
		t.Errorf("a user keyed on the bare oid: %+v", u)
	}

	b := newBrowser(t)
	resp := b.signIn(w.gw.base+"/", "carol", "carol-pw")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Sign-in failed") || !strings.Contains(body, oidc.CodeTenantNotAllowed) {
		t.Fatalf("carol (tenant C): %s:\n%s", resp.Status, body)
	}
	for _, secret := range []string{mtTenantA, mtTenantB, mtTenantC} {
		if strings.Contains(body, secret) {
			t.Errorf("the page names tenant %s:\n%s", secret, body)
		}
	}
	if got := auditReasons(t, store.EventLoginFailed); !slices.Contains(got, oidc.CodeTenantNotAllowed) {
		t.Errorf("login.failed reasons %v, want %s", got, oidc.CodeTenantNotAllowed)
	}
	if u := mtUser(t, mtTenantC+"/"+mtOID); u != nil {
		t.Errorf("carol was created: %+v", u)
	}
}

// TestEntraMultiTenantEmail: another tenant's administrator can give any
// user any address, and says email_verified true: a multi-tenant IdP
// never links by email (link_by_email is on) nor takes an address over.
// Bob, of tenant B, with the address of dana (a user SCIM provisioned from
// another IdP), is refused as an email conflict and dana's account gets no
// link; bob, once signed in with his own address, cannot take alice's
// over by changing his to it.
func TestEntraMultiTenantEmail(t *testing.T) {
	w := newMultiTenantWorld(t, "\t\t\tpreset entra\n\t\t\ttenants any\n\t\t\tjit\n\t\t\tlink_by_email\n").start()
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "alice", "alice-pw"))
	err := runningStore(t).Update(context.Background(), func(tx store.Tx) error {
		return tx.PutUser(&store.User{UserName: "dana@example.com", Email: "dana@example.com", FirstName: "Dana", LastName: "Corp",
			Active: true, Source: store.SourceSCIM, IdP: "corp", ExternalID: "corp-dana"})
	})
	if err != nil {
		t.Fatal(err)
	}

	claims := map[string]any{"sub": "sub-bob", "oid": mtOID, "tid": mtTenantB, "given_name": "bob", "family_name": "Tenant",
		"email": "dana@example.com", "email_verified": true}
	w.idp.SetClaims("bob", claims)
	resp := newBrowser(t).signIn(w.gw.base+"/", "bob", "bob-pw")
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, provision.ReasonEmailConflict) {
		t.Fatalf("bob with dana's address: %s:\n%s", resp.Status, body)
	}
	if u := mtUser(t, mtTenantB+"/"+mtOID); u != nil {
		t.Fatalf("bob was linked or created: %+v", u)
	}

	// Bob with his own address, then with alice's: he keeps his.
	claims["email"] = "bob@example.com"
	w.idp.SetClaims("bob", claims)
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "bob", "bob-pw"))
	claims["email"] = "alice@example.com"
	w.idp.SetClaims("bob", claims)
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "bob", "bob-pw"))
	if bob := mtUser(t, mtTenantB+"/"+mtOID); bob == nil || bob.Email != "bob@example.com" {
		t.Fatalf("bob after asking for alice's address: %+v", bob)
	}
	if u := mtUser(t, mtTenantA+"/"+mtOID); u.Email != "alice@example.com" {
		t.Fatalf("alice lost her address: %+v", u)
	}
}

// TestEntraMultiTenantCaddyfileErrors: tenants is checked at its line:
// tenant IDs, or any alone, only with Entra's organizations or common
// issuer, which need it (reported at the block's first line, as what a
// block lacks is).
func TestEntraMultiTenantCaddyfileErrors(t *testing.T) {
	const org = "https://login.microsoftonline.com/organizations/v2.0"
	block := func(lines ...string) string {
		return "{\n\tsso {\n\t\tidp a oidc {\n\t\t\t" + strings.Join(lines, "\n\t\t\t") + "\n\t\t}\n\t}\n}\n"
	}
	for _, tt := range []struct {
		name, caddyfile string
		want            []string
	}{
		{"organizations without tenants", block("issuer "+org, "client_id x"), []string{"Caddyfile:3", "sso idp a", "multi-tenant endpoint: it needs tenants"}},
		{"common without tenants", block("issuer https://login.microsoftonline.com/common/v2.0", "client_id x"), []string{"Caddyfile:3", "it needs tenants"}},
		{"tenants on another issuer", block("issuer https://login.example.com", "client_id x", "tenants "+mtTenantA), []string{"Caddyfile:6", "sso idp a: tenants is only for Microsoft Entra ID's multi-tenant issuers"}},
		{"tenants on a tenant's issuer, issuer after", block("tenants "+mtTenantA, "issuer https://login.microsoftonline.com/"+mtTenantA+"/v2.0", "client_id x"), []string{"Caddyfile:5", "tenants is only for"}},
		{"tenants not a GUID", block("issuer "+org, "client_id x", "tenants contoso.com"), []string{"Caddyfile:6", `tenants: "contoso.com" is not a tenant ID`}},
		{"tenants any among others", block("issuer "+org, "client_id x", "tenants any "+mtTenantA), []string{"Caddyfile:6", `"any" admits every tenant and stands alone`}},
		{"tenants with tenant_id", block("issuer "+org, "client_id x", "tenants "+mtTenantA, "tenant_id "+mtTenantA), []string{"Caddyfile:7", "tenants and tenant_id exclude each other"}},
		{"tenants without a value", block("issuer "+org, "client_id x", "tenants"), []string{"Caddyfile:6", "tenants needs at least one value"}},
		{"tenants twice", block("issuer "+org, "client_id x", "tenants "+mtTenantA, "tenants "+mtTenantB), []string{"Caddyfile:7", "tenants given twice"}},
		{"tenants in a saml block", "{\n\tsso {\n\t\tidp a saml {\n\t\t\ttenants any\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "tenants is an oidc setting"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(tt.caddyfile), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatal("adapted without error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
