// Package idpcheck judges an identity provider as sign-in will meet it:
// it runs the probes of idp/oidc and idp/saml (the code sign-in runs) and
// words each finding for an administrator, with the fix where there is
// one. `caddy sso check` prints the findings; the sso app logs the
// problems among them at start (docs/troubleshooting.md,
// "idp_misconfigured"). One wording serves both.
package idpcheck

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/internal/termtext"
)

// Levels of a finding.
const (
	OK    = "ok"
	Info  = "info"
	Warn  = "warning"
	Error = "error"
)

// CertWarning is how close to expiry an IdP signing certificate draws a
// warning.
const CertWarning = 30 * 24 * time.Hour

// Finding is one finding.
type Finding struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// Problem reports a finding that needs an administrator: an error, or a
// warning.
func (f Finding) Problem() bool { return f.Level == Error || f.Level == Warn }

// LogProblems logs each problem among fs at WARN, the way the sso app
// reports its IdPs at start, or at INFO that there is none.
//
// A finding's message quotes the IdP's own text (its discovery document,
// metadata, errors), and zap's console encoder, which Caddy uses on a
// terminal, writes a line's message raw where it escapes fields: so the
// message goes through termtext.Line, and an ESC sequence or a newline the
// IdP sent shows as \x1b or \n instead of retitling the terminal or
// forging a log line. The wording stays what troubleshooting.md quotes.
func LogProblems(logger *zap.Logger, idpName string, fs []Finding) {
	problems := 0
	for _, f := range fs {
		if f.Problem() {
			logger.Warn(termtext.Line(f.Message), zap.String("idp", idpName), zap.String("finding", f.Level))
			problems++
		}
	}
	logger.Info("identity provider checked", zap.String("idp", idpName), zap.Int("problems", problems))
}

type findings []Finding

func (fs *findings) add(level, format string, args ...any) {
	*fs = append(*fs, Finding{Level: level, Message: fmt.Sprintf(format, args...)})
}

// OIDC checks the OpenID provider at issuer: discovery, the issuer it
// names, PKCE, the ID-token algorithms (allowed: the configured
// allow-list, empty for the default), logout, and the JWKS.
func OIDC(ctx context.Context, client *http.Client, issuer string, allowed []string) []Finding {
	var fs findings
	r, err := oidc.Probe(ctx, client, issuer)
	if err != nil {
		if r == nil {
			fs.add(Error, "%v", err)
		} else {
			fs.add(Error, "discovery document %s unreachable: %v", r.DiscoveryURL, err)
		}
		return fs
	}
	fs.add(OK, "discovery document: %s", r.DiscoveryURL)
	if r.IssuerErr == nil {
		fs.add(OK, "issuer matches: %s", issuer)
	} else {
		fs.add(Error, "issuer mismatch: the IdP's discovery document says %q, the configuration says %q; they must be equal, character for character (a trailing / counts): set issuer %s in the idp block, or correct the IdP's issuer; until then every sign-in fails with idp_misconfigured", r.Issuer, issuer, r.Issuer)
	}
	if r.EndpointsErr != nil {
		fs.add(Error, "discovery document: %v; sign-ins fail with idp_misconfigured until the IdP's discovery document is corrected", r.EndpointsErr)
	}
	switch {
	case r.PKCEErr != nil:
		fs.add(Error, "PKCE S256 not supported (the IdP offers %s); sign-in requires it: enable PKCE with S256 for this application at the IdP; until then every sign-in fails with idp_misconfigured", strings.Join(r.CodeChallengeMethods, ", "))
	case slices.Contains(r.CodeChallengeMethods, "S256"):
		fs.add(OK, "PKCE S256 supported")
	default:
		fs.add(Warn, "the IdP does not advertise PKCE (code_challenge_methods_supported); sign-in sends S256 anyway")
	}
	if err := r.AlgorithmsErr(allowed); err != nil {
		fs.add(Error, "%v: set algorithms in the idp block to one the IdP signs with", err)
	}
	if r.EndSessionEndpoint != "" {
		fs.add(Info, "end_session_endpoint present: signing out also ends the IdP session")
	} else {
		fs.add(Info, "no end_session_endpoint: signing out ends only the local session")
	}
	switch {
	case r.BackChannelLogout && r.FrontChannelLogout:
		fs.add(Info, "the IdP offers back-channel and front-channel logout: register one of the logout URIs below, and sign-outs elsewhere end this site's sessions")
	case r.BackChannelLogout:
		fs.add(Info, "the IdP offers back-channel logout: register the back-channel logout URI below, and sign-outs elsewhere end this site's sessions")
	case r.FrontChannelLogout:
		fs.add(Info, "the IdP offers front-channel logout: register the front-channel logout URL below, and sign-outs elsewhere end this site's sessions")
	default:
		fs.add(Info, "the discovery document advertises neither back- nor front-channel logout (some IdPs offer them without saying so; see the IdP's page in docs/)")
	}
	switch {
	case r.JWKSErr != nil:
		fs.add(Error, "JWKS %s: %v", r.JWKSURI, r.JWKSErr)
	case r.SigningKeys > 0:
		fs.add(OK, "JWKS: %d signing key(s) at %s", r.SigningKeys, r.JWKSURI)
	}
	return fs
}

// SAML checks the IdP metadata of src (entityID picks one IdP out of
// several) at now: that it loads and parses, its validity, its signing
// certificates, and its SingleSignOnService and SingleLogoutService.
func SAML(ctx context.Context, client *http.Client, src saml.MetadataSource, entityID string, now time.Time) []Finding {
	var fs findings
	r, err := saml.Probe(ctx, client, src, entityID)
	if err != nil {
		fs.add(Error, "metadata %s: %v", r.Source, err)
		return fs
	}
	fs.add(OK, "metadata parsed: %s (IdP entity ID %s)", r.Source, r.EntityID)
	if !r.ValidUntil.IsZero() && r.ValidUntil.Before(now) {
		fix := "download the IdP's current metadata and replace the configured copy"
		if src.URL != "" && len(src.XML) == 0 && src.File == "" {
			fix = "the IdP still publishes expired metadata at this URL: have its administrator renew it (or point metadata_url at its current metadata)"
		}
		fs.add(Error, "metadata expired at %s (validUntil): %s; until then every sign-in fails with idp_misconfigured", r.ValidUntil.UTC().Format(time.RFC3339), fix)
	}
	for _, cert := range r.Certificates {
		fs.cert(cert, now)
	}
	if r.Usable != nil {
		fs.add(Error, "%v", r.Usable)
	} else {
		fs.add(OK, "SingleSignOnService (HTTP-Redirect or HTTP-POST) present")
	}
	if r.SingleLogout {
		fs.add(Info, "SingleLogoutService present: signing out also ends the IdP session")
	} else {
		fs.add(Info, "no SingleLogoutService: signing out ends only the local session")
	}
	return fs
}

// cert judges a signing certificate's validity at now.
func (fs *findings) cert(c saml.Certificate, now time.Time) {
	if c.Err != nil {
		fs.add(Error, "signing certificate %v", c.Err)
		return
	}
	expiry := c.NotAfter.UTC().Format("2006-01-02")
	left := c.NotAfter.Sub(now)
	switch {
	case left <= 0:
		// Sign-in still takes it (metadata keys are bare keys, as
		// Shibboleth and mod_auth_mellon hold them), but an IdP
		// signing with an expired certificate is overdue for its roll.
		fs.add(Warn, "signing certificate %q expired on %s: sign-ins still verify with its key while the metadata lists it, but have the IdP roll it", c.Name, expiry)
	case left < CertWarning:
		fs.add(Warn, "signing certificate %q expires on %s (in %d days): have the IdP publish its next certificate", c.Name, expiry, int(left.Hours()/24))
	default:
		fs.add(OK, "signing certificate %q valid until %s", c.Name, expiry)
	}
	if c.NotBefore.After(now) {
		fs.add(Warn, "signing certificate %q is not valid before %s", c.Name, c.NotBefore.UTC().Format(time.RFC3339))
	}
}
