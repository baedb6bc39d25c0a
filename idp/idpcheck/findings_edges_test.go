package idpcheck

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// TestOneScopeNotListed: a single scope scopes_supported lacks is reported
// as several are: a standard one (Google refuses offline_access) warns, an
// unpublished one (an Okta custom authorization server's) is an info line.
func TestOneScopeNotListed(t *testing.T) {
	google := serveIdP(t, googleDoc, keys(jwk(t, false, "RS256", "sig")), nil)
	fs := OIDC(context.Background(), google.Client(), oidc.Config{Name: "google", Issuer: google.URL, ClientID: "app", ClientSecret: "s",
		Scopes: []string{"openid", "email", "profile"}, OfflineAccess: true})
	has(t, fs, Warn, "scope offline_access not among the IdP's scopes_supported (openid, email, profile)", "remove it from the idp block")

	okta := serveIdP(t, oktaDoc, keys(jwk(t, false, "RS256", "sig")), nil)
	fs = OIDC(context.Background(), okta.Client(), oidc.Config{Name: "okta", Issuer: okta.URL + "/oauth2/default", ClientID: "app", ClientSecret: "s",
		Scopes: []string{"openid", "profile", "email", "inventory:read"}})
	noProblems(t, "Okta with one unpublished scope", fs)
	has(t, fs, Info, "scope inventory:read not among")
}

// TestSAMLMetadataJustExpired: metadata whose validUntil passed a minute
// ago is expired, the error every sign-in meets, not a date still ahead.
func TestSAMLMetadataJustExpired(t *testing.T) {
	now := time.Now()
	fs := SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(shibbolethMetadata(t, now.Add(-time.Minute)))}, now)
	has(t, fs, Error, "metadata expired at", "until then every sign-in fails with idp_misconfigured")
}

// TestJWKSLineCountsUsableKeys: the JWKS line counts the keys that verify
// an ID token under the configured algorithms, not every key published
// (an RSA-only allow-list cannot use the IdP's EC key), and a discovery
// document without a jwks_uri draws no JWKS line saying all is well.
func TestJWKSLineCountsUsableKeys(t *testing.T) {
	srv := serveIdP(t, keycloakDoc, keys(jwk(t, false, "RS256", "sig"), jwk(t, true, "ES256", "sig")), nil)
	fs := OIDC(context.Background(), srv.Client(), oidc.Config{Name: "kc", Issuer: srv.URL + "/realms/corp", ClientID: "app", ClientSecret: "s",
		Algorithms: []string{"RS256"}})
	has(t, fs, OK, "JWKS: 1 signing key(s) at "+srv.URL+"/realms/corp/protocol/openid-connect/certs")

	doc := strings.Replace(keycloakDoc, `"jwks_uri":"BASE/realms/corp/protocol/openid-connect/certs",`, "", 1)
	if doc == keycloakDoc {
		t.Fatal("the document has no jwks_uri")
	}
	srv = serveIdP(t, doc, keys(jwk(t, false, "RS256", "sig")), nil)
	for _, f := range OIDC(context.Background(), srv.Client(), oidc.Config{Name: "kc", Issuer: srv.URL + "/realms/corp", ClientID: "app", ClientSecret: "s"}) {
		if f.Level == OK && strings.HasPrefix(f.Message, "JWKS") {
			t.Errorf("without a jwks_uri: %s %s", f.Level, f.Message)
		}
	}
}

// TestSAMLSingleLogoutLine: the check says whether signing out reaches
// the IdP: AD FS's metadata lists a SingleLogoutService, Shibboleth's
// (here) none, and each gets its own line, not the other's.
func TestSAMLSingleLogoutLine(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name, md, want, not string
	}{
		{"AD FS", adfsMetadata(certificate(t, "adfs.corp.example", now.AddDate(1, 0, 0))),
			"SingleLogoutService present: signing out also ends the IdP session", "no SingleLogoutService"},
		{"Shibboleth", shibbolethMetadata(t, now.AddDate(1, 0, 0)),
			"no SingleLogoutService: signing out ends only the local session", "SingleLogoutService present"},
	} {
		fs := SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(c.md)}, now)
		has(t, fs, Info, c.want)
		for _, f := range fs {
			if strings.Contains(f.Message, c.not) {
				t.Errorf("%s: %s %s", c.name, f.Level, f.Message)
			}
		}
	}
}

// TestSAMLFindingsThatFailTheCheck: metadata without a SingleSignOnService
// sign-in can use, and a signing certificate that does not decode, are
// errors (✗, and the check fails), not warnings.
func TestSAMLFindingsThatFailTheCheck(t *testing.T) {
	now := time.Now()
	md := shibbolethMetadata(t, now.AddDate(1, 0, 0))
	i, j := strings.Index(md, "<md:SingleSignOnService"), strings.Index(md, "</md:IDPSSODescriptor>")
	has(t, SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(md[:i] + md[j:])}, now), Error,
		"metadata lists no HTTP-Redirect or HTTP-POST SingleSignOnService")
	md = adfsMetadata(certificate(t, "adfs.corp.example", now.AddDate(1, 0, 0)), "bm90IGEgY2VydA==") // "not a cert"
	has(t, SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(md)}, now), Error, "signing certificate does not parse")
}
