package idpcheck

import (
	"context"
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
