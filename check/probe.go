package check

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// probeOIDC turns what oidc.Probe found into findings.
func probeOIDC(ctx context.Context, client *http.Client, c *caddymodule.IdPConfig, repl *caddy.Replacer, ic *IdPCheck) {
	issuer := repl.ReplaceKnown(c.OIDC.Issuer, "")
	r, err := oidc.Probe(ctx, client, issuer)
	if err != nil {
		if r == nil {
			ic.add(Error, "%v", err)
		} else {
			ic.add(Error, "discovery document %s unreachable: %v", r.DiscoveryURL, err)
		}
		return
	}
	ic.add(OK, "discovery document: %s", r.DiscoveryURL)
	if r.IssuerErr == nil {
		ic.add(OK, "issuer matches: %s", issuer)
	} else {
		ic.add(Error, "issuer mismatch: the IdP says %q, the config says %q (they must be equal)", r.Issuer, issuer)
	}
	if r.EndpointsErr != nil {
		ic.add(Error, "discovery document: %v", r.EndpointsErr)
	}
	switch {
	case r.PKCEErr != nil:
		ic.add(Error, "PKCE S256 not supported (the IdP offers %s); sign-in requires it", strings.Join(r.CodeChallengeMethods, ", "))
	case slices.Contains(r.CodeChallengeMethods, "S256"):
		ic.add(OK, "PKCE S256 supported")
	default:
		ic.add(Warn, "the IdP does not advertise PKCE (code_challenge_methods_supported); sign-in sends S256 anyway")
	}
	if err := r.AlgorithmsErr(c.OIDC.Algorithms); err != nil {
		ic.add(Error, "%v", err)
	}
	if r.EndSessionEndpoint != "" {
		ic.add(Info, "end_session_endpoint present: signing out also ends the IdP session")
	} else {
		ic.add(Info, "no end_session_endpoint: signing out ends only the local session")
	}
	switch {
	case r.JWKSErr != nil:
		ic.add(Error, "JWKS %s: %v", r.JWKSURI, r.JWKSErr)
	case r.SigningKeys > 0:
		ic.add(OK, "JWKS: %d signing key(s) at %s", r.SigningKeys, r.JWKSURI)
	}
}

// probeSAML turns what saml.Probe found into findings.
func probeSAML(ctx context.Context, client *http.Client, c *caddymodule.IdPConfig, repl *caddy.Replacer, ic *IdPCheck, now time.Time) {
	s := c.SAML
	src := saml.MetadataSource{
		URL:  repl.ReplaceKnown(s.MetadataURL, ""),
		File: repl.ReplaceKnown(s.MetadataFile, ""),
		XML:  []byte(s.Metadata),
	}
	r, err := saml.Probe(ctx, client, src, repl.ReplaceKnown(s.IdPEntityID, ""))
	if err != nil {
		ic.add(Error, "metadata %s: %v", r.Source, err)
		return
	}
	ic.add(OK, "metadata parsed: %s (IdP entity ID %s)", r.Source, r.EntityID)
	if !r.ValidUntil.IsZero() && r.ValidUntil.Before(now) {
		ic.add(Error, "metadata expired at %s (validUntil)", r.ValidUntil.UTC().Format(time.RFC3339))
	}
	for _, cert := range r.Certificates {
		certFindings(cert, now, ic)
	}
	if r.Usable != nil {
		ic.add(Error, "%v", r.Usable)
	} else {
		ic.add(OK, "SingleSignOnService (HTTP-Redirect or HTTP-POST) present")
	}
	if r.SingleLogout {
		ic.add(Info, "SingleLogoutService present: signing out also ends the IdP session")
	} else {
		ic.add(Info, "no SingleLogoutService: signing out ends only the local session")
	}
}

// certFindings judges a signing certificate's validity at now.
func certFindings(c saml.Certificate, now time.Time, ic *IdPCheck) {
	if c.Err != nil {
		ic.add(Error, "signing certificate %v", c.Err)
		return
	}
	expiry := c.NotAfter.UTC().Format("2006-01-02")
	left := c.NotAfter.Sub(now)
	switch {
	case left <= 0:
		ic.add(Error, "signing certificate %q expired on %s", c.Name, expiry)
	case left < certWarning:
		ic.add(Warn, "signing certificate %q expires on %s (in %d days): have the IdP publish its next certificate", c.Name, expiry, int(left.Hours()/24))
	default:
		ic.add(OK, "signing certificate %q valid until %s", c.Name, expiry)
	}
	if c.NotBefore.After(now) {
		ic.add(Warn, "signing certificate %q is not valid before %s", c.Name, c.NotBefore.UTC().Format(time.RFC3339))
	}
}
