// Package idpcheck judges an identity provider as sign-in will meet it:
// it runs the probes of idp/oidc and idp/saml (the code sign-in runs) and
// words each finding for an administrator, with the fix where there is
// one. `caddy sso check` prints the findings; the sso app logs the
// problems among them at start (docs/troubleshooting.md,
// "idp_misconfigured"). One wording serves both.
package idpcheck

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
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

// OIDC checks the OpenID provider of cfg, the relying party's settings
// (the issuer resolved; the client secret only tells whether there is
// one), as sign-in will meet it: discovery, the issuer it names, PKCE, the
// ID-token algorithms, the token endpoint's client authentication, the
// scopes, logout, the JWKS, and the IdP's clock.
func OIDC(ctx context.Context, client *http.Client, cfg oidc.Config) []Finding {
	var fs findings
	client, clk := withClock(client)
	issuer := cfg.Issuer
	r, err := oidc.Probe(ctx, client, issuer)
	if err != nil {
		if r == nil {
			fs.add(Error, "%v", err)
		} else {
			fs.add(Error, "discovery document %s unreachable: %v", r.DiscoveryURL, fetchError(err))
		}
		return fs
	}
	fs.add(OK, "discovery document: %s", r.DiscoveryURL)
	switch {
	case r.IssuerErr == nil:
		fs.add(OK, "issuer matches: %s", issuer)
	case oidc.MultiTenantIssuer(issuer):
		fs.add(Error, "issuer mismatch: the discovery %v: the document of Microsoft Entra's multi-tenant endpoint must name the template on its own origin (docs/entra-oidc.md, Multi-tenant apps); until then every sign-in fails with idp_misconfigured", r.IssuerErr)
	case r.IssuerTemplate:
		// "set issuer <the template>" would be wrong: no token's iss is
		// the template, and only the multi-tenant endpoints accept it.
		origin := issuer
		if u, err := url.Parse(issuer); err == nil && u.Host != "" {
			origin = u.Scheme + "://" + u.Host
		}
		fs.add(Error, "issuer mismatch: the discovery document names Microsoft Entra's multi-tenant issuer template %q, the configuration says %q: use %s/organizations/v2.0 or %s/common/v2.0 with tenants (docs/entra-oidc.md, Multi-tenant apps), or %s/<tenant-id>/v2.0 for one tenant; until then every sign-in fails with idp_misconfigured", r.Issuer, issuer, origin, origin, origin)
	default:
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
		// Not a problem: Microsoft Entra ID supports S256 and lists no
		// methods; an IdP that lists some without S256 is PKCEErr.
		fs.add(Info, "the IdP does not advertise PKCE (code_challenge_methods_supported); sign-in sends S256 anyway")
	}
	if err := r.AlgorithmsErr(cfg.Algorithms); err != nil {
		fs.add(Error, "%v: set algorithms in the idp block to one the IdP signs with", err)
	}
	fs.tokenAuth(r, cfg)
	// Only a scope OpenID Connect defines warns: IdPs list those they
	// offer, and leave out the others they accept (an API's, a custom
	// authorization server's unpublished ones: oidc.ProbeResult.MissingScopes).
	standard, other := r.MissingScopes(cfg)
	if len(standard) > 0 {
		fs.add(Warn, "scope %s not among the IdP's scopes_supported (%s): if the IdP refuses it, every sign-in fails with idp_error (the IdP answers error=invalid_scope); scopes_supported may be incomplete, so if a first sign-in fails so, remove it from the idp block (scopes, or the offline_access setting)", strings.Join(standard, ", "), strings.Join(r.ScopesSupported, ", "))
	}
	if len(other) > 0 {
		fs.add(Info, "scope %s not among the IdP's scopes_supported (%s), which IdPs commonly limit to the scopes OpenID Connect defines (an API's scope, such as Microsoft Entra ID's api://<app-id>/<scope>, is seldom listed): if the IdP refuses it, every sign-in fails with idp_error (error=invalid_scope)", strings.Join(other, ", "), strings.Join(r.ScopesSupported, ", "))
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
	switch keysErr := r.KeysErr(cfg.Algorithms); {
	case r.JWKSErr != nil:
		fs.add(Error, "JWKS %s: %v", r.JWKSURI, fetchError(r.JWKSErr))
	case keysErr != nil:
		fs.add(Error, "JWKS %s %v, so no ID token verifies and every sign-in fails with id_token_signature: set algorithms in the idp block to ones these keys sign with, or have the IdP publish a key for one of those", r.JWKSURI, keysErr)
	case r.SigningKeys > 0:
		fs.add(OK, "JWKS: %d signing key(s) at %s", r.UsableKeys(cfg.Algorithms), r.JWKSURI)
	}
	skew := cmp.Or(cfg.ClockSkew, idp.DefaultClockSkew)
	fs.clock(clk, skew, skew,
		"ID tokens are refused as issued in the future (id_token_iat), so every sign-in fails",
		fmt.Sprintf("back-channel logout tokens are refused (logout_token_iat), every sign-in fails once the lag passes the ID tokens' lifetime plus clock_skew "+
			"(id_token_expired; Keycloak's are 5 minutes), and from %v behind in any case (id_token_iat)", oidc.MaxIDTokenAge+skew))
	return fs
}

// fetchError is err, a request to the IdP that failed, worded with the fix
// when the IdP's TLS certificate is not trusted here: the hint sign-in
// logs for the same failure (idp.UntrustedCertificate).
func fetchError(err error) error {
	if u := idp.UntrustedCertificate(err); u != nil {
		return u
	}
	return err
}

// tokenAuth judges how sign-in will authenticate at the token endpoint
// (oidc.ProbeResult.TokenAuth: the choice the code exchange makes) against
// the methods the IdP lists: an IdP that registers one method per client
// (Auth0, PingOne) refuses the other at every code exchange.
func (fs *findings) tokenAuth(r *oidc.ProbeResult, cfg oidc.Config) {
	method, offered := r.TokenAuth(cfg), r.TokenAuthMethods
	if len(offered) == 0 {
		return // the IdP says nothing: basic, RFC 8414's default, is tried
	}
	list := strings.Join(offered, ", ")
	if slices.Contains(offered, method) {
		fs.add(OK, "token endpoint authentication %s: offered by the IdP", method)
		return
	}
	const failing = "until then every code exchange is refused (token_exchange_failed)"
	switch {
	case method == "none":
		// Not a problem: Keycloak and Auth0 accept public clients and do
		// not list none; a confidential client's mismatch is an error.
		fs.add(Info, "without a client_secret this client authenticates at the token endpoint as a public client (none), which the IdP's token_endpoint_auth_methods_supported (%s) does not list (Keycloak and Auth0 accept public clients without listing it): if the code exchange is refused (token_exchange_failed), set client_secret, or register the application as a public client at the IdP", list)
	case slices.Contains(offered, "client_secret_post") || slices.Contains(offered, "client_secret_basic"):
		other := "client_secret_post"
		if method == other {
			other = "client_secret_basic"
		}
		fs.add(Error, "token endpoint: token_auth %s is not among the IdP's token_endpoint_auth_methods_supported (%s): set token_auth %s; %s", method, list, other, failing)
	default:
		fs.add(Error, "token endpoint: the IdP's token_endpoint_auth_methods_supported lists %s: this IdP offers no secret-based method for this client: enable client_secret_basic or client_secret_post for it at the IdP; %s", list, failing)
	}
}

// SAML checks the IdP metadata of cfg, the service provider's settings
// (its metadata source, idp_entity_id, sign_requests, clock_skew,
// metadata_refresh), at now:
// that it loads and parses, its validity, its signing certificates, its
// SingleSignOnService and SingleLogoutService, whether it wants signed
// requests, and the IdP's clock (metadata fetched from a URL).
func SAML(ctx context.Context, client *http.Client, cfg saml.Config, now time.Time) []Finding {
	var fs findings
	client, clk := withClock(client)
	src := saml.MetadataSource{URL: cfg.MetadataURL, File: cfg.MetadataFile, XML: cfg.MetadataXML}
	fromURL := src.URL != "" && len(src.XML) == 0 && src.File == ""
	fromFile := src.File != "" && len(src.XML) == 0
	r, err := saml.Probe(ctx, client, src, cfg.IdPEntityID)
	if err != nil {
		fs.add(Error, "metadata %s: %v", r.Source, fetchError(err))
		return fs
	}
	fs.add(OK, "metadata parsed: %s (IdP entity ID %s)", r.Source, r.EntityID)
	switch until := r.ValidUntil.UTC().Format(time.RFC3339); {
	case r.ValidUntil.IsZero():
	case r.ValidUntil.Before(now):
		fix := "download the IdP's current metadata and replace the configured copy"
		if fromURL {
			fix = "the IdP still publishes expired metadata at this URL: have its administrator renew it (or point metadata_url at its current metadata)"
		}
		fs.add(Error, "metadata expired at %s (validUntil): %s; until then every sign-in fails with idp_misconfigured", until, fix)
	case r.ValidUntil.Sub(now) >= CertWarning && (!fromFile || r.ValidUntil.Sub(now) >= fileRenewal(cfg)):
	case fromURL:
		fs.add(Info, "metadata valid until %s (validUntil, %s): it is fetched again by then, and the IdP must publish renewed metadata at this URL before that date", until, in(r.ValidUntil.Sub(now)))
	case fromFile && r.ValidUntil.Sub(now) >= fileRenewal(cfg):
		fs.add(Info, "metadata valid until %s (validUntil, %s): metadata_file is read again every metadata_refresh and at that date, so keep the file current with the IdP's renewed metadata", until, in(r.ValidUntil.Sub(now)))
	case fromFile:
		fs.add(Warn, "metadata valid until %s (validUntil, %s): after that date every sign-in fails with idp_misconfigured; metadata_file is read again every metadata_refresh and at that date, but a file kept current is renewed long before its end: replace it with the IdP's current metadata, or use metadata_url", until, in(r.ValidUntil.Sub(now)))
	default:
		// Sign-in refuses metadata past its validUntil, and a copy in
		// the config never renews itself.
		fs.add(Warn, "metadata valid until %s (validUntil, %s): after that date every sign-in fails with idp_misconfigured, as this copy never renews itself: download the IdP's current metadata before then, or use metadata_url", until, in(r.ValidUntil.Sub(now)))
	}
	next := successor(r.Certificates, now)
	for _, cert := range r.Certificates {
		fs.cert(cert, next, now)
	}
	if r.Usable != nil {
		fs.add(Error, "%v", r.Usable)
	} else {
		fs.add(OK, "SingleSignOnService (HTTP-Redirect or HTTP-POST) present")
	}
	if r.WantsSignedRequests && !cfg.SignRequests {
		fs.add(Warn, "the IdP's metadata says WantAuthnRequestsSigned=\"true\" and sign_requests is off: the IdP may refuse every unsigned AuthnRequest, with its own error page: add sign_requests to the idp block (the SP metadata URL below carries the certificate the IdP checks them with)")
	}
	if r.SingleLogout {
		fs.add(Info, "SingleLogoutService present: signing out also ends the IdP session")
	} else {
		fs.add(Info, "no SingleLogoutService: signing out ends only the local session")
	}
	skew := cmp.Or(cfg.ClockSkew, idp.DefaultClockSkew)
	fs.clock(clk, skew, saml.MaxIssueAge(),
		"assertions are refused as not yet valid (saml_not_yet_valid), so every sign-in fails",
		fmt.Sprintf("a Response issued more than %v ago is refused whatever clock_skew is, so every sign-in fails (saml_expired)", saml.MaxIssueAge()))
	return fs
}

// fileRenewal is how much validUntil a metadata_file's copy keeps while a
// job keeps the file current (docs/operations.md, "use metadata_file with
// a copy you keep current"): a job renews it long before its end (a
// federation's metadata is valid for one to four weeks and downloaded
// daily), so a copy with less left than one metadata_refresh, the
// interval at which Caddy reads the file again, and a day to act is one
// nobody renews, and warns; more left is an info line, as for
// metadata_url.
func fileRenewal(cfg saml.Config) time.Duration {
	return cmp.Or(cfg.MetadataRefresh, saml.DefaultMetadataRefresh) + 24*time.Hour
}

// successor is the signing certificate of certs that stays valid longest,
// if that is beyond CertWarning from now: an IdP rolling its key (AD FS's
// AutoCertificateRollover) lists its next certificate beside the one
// expiring, and sign-in trusts both.
func successor(certs []saml.Certificate, now time.Time) *saml.Certificate {
	var next *saml.Certificate
	for i, c := range certs {
		if c.Err == nil && c.NotAfter.Sub(now) >= CertWarning && (next == nil || c.NotAfter.After(next.NotAfter)) {
			next = &certs[i]
		}
	}
	return next
}

// in says how far away d is, in days, or hours under two days.
func in(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("in %d hours", int(d.Hours()))
	}
	return fmt.Sprintf("in %d days", int(d.Hours()/24))
}

// cert judges a signing certificate's validity at now; next, when not
// nil, is another signing certificate of the metadata, valid beyond
// CertWarning, which replaces one expiring.
func (fs *findings) cert(c saml.Certificate, next *saml.Certificate, now time.Time) {
	if c.Err != nil {
		fs.add(Error, "signing certificate %v", c.Err)
		return
	}
	expiry := c.NotAfter.UTC().Format("2006-01-02")
	left := c.NotAfter.Sub(now)
	switch {
	case left < CertWarning && next != nil:
		fs.add(Info, "signing certificate %q %s: being replaced by the certificate valid until %s, which the metadata lists too; sign-ins verify with either", c.Name, ending(left, expiry), next.NotAfter.UTC().Format("2006-01-02"))
	case left <= 0:
		// Sign-in still takes it (metadata keys are bare keys, as
		// Shibboleth and mod_auth_mellon hold them), but an IdP
		// signing with an expired certificate is overdue for its roll.
		fs.add(Warn, "signing certificate %q expired on %s: sign-ins still verify with its key while the metadata lists it, but have the IdP roll it", c.Name, expiry)
	case left < CertWarning:
		fs.add(Warn, "signing certificate %q %s: have the IdP publish its next certificate", c.Name, ending(left, expiry))
	default:
		fs.add(OK, "signing certificate %q valid until %s", c.Name, expiry)
	}
	if c.NotBefore.After(now) {
		fs.add(Warn, "signing certificate %q is not valid before %s", c.Name, c.NotBefore.UTC().Format(time.RFC3339))
	}
}

// ending says when a certificate with left before its expiry date ends.
func ending(left time.Duration, expiry string) string {
	if left <= 0 {
		return "expired on " + expiry
	}
	return fmt.Sprintf("expires on %s (in %d days)", expiry, int(left.Hours()/24))
}
