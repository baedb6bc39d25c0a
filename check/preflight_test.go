package check_test

// `caddy sso check` as an operator's pre-flight: configurations whose every
// sign-in fails (or will fail on a date check can see), which check used
// to pass with 0 errors and 0 warnings because the IdP's probes were told
// only the issuer and algorithms (OIDC) or the metadata source (SAML).

import (
	"context"
	"encoding/xml"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// oidcCheckCaddyfile is a config with one OIDC IdP at issuer, extra lines
// in its block, used by app.example.com.
func oidcCheckCaddyfile(t *testing.T, issuer, extra string) string {
	t.Helper()
	return checkCaddyfile(t, "{\n\tsso {\n\t\tidp corp oidc {\n\t\t\tissuer "+issuer+"\n\t\t\tclient_id app\n"+extra+
		"\t\t}\n\t}\n}\n\napp.example.com {\n\tsso corp\n\trespond app\n}\n")
}

// samlCheckCaddyfile is a config with one SAML IdP whose block holds the
// lines given (its metadata source first).
func samlCheckCaddyfile(t *testing.T, lines string) string {
	t.Helper()
	return checkCaddyfile(t, "{\n\tsso {\n\t\tidp partner saml {\n"+lines+"\t\t}\n\t}\n}\n\napp.example.com {\n\tsso\n\trespond app\n}\n")
}

// runCheck runs `caddy sso check` on path; fails says whether the check
// must fail (an error) or pass (warnings alone).
func runCheck(t *testing.T, path string, fails bool) string {
	t.Helper()
	out, err := cli(context.Background(), "check", "--config", path)
	if (err != nil) != fails {
		t.Errorf("check: err %v, want failure %v:\n%s", err, fails, out)
	}
	return out
}

func lacks(t *testing.T, out string, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if strings.Contains(out, u) {
			t.Errorf("output holds %q:\n%s", u, out)
		}
	}
}

func startOIDC(t *testing.T) *oidctest.Server {
	t.Helper()
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	return op
}

// offering makes op's discovery document list methods as its
// token_endpoint_auth_methods_supported.
func offering(methods ...string) oidctest.Hooks {
	return oidctest.Hooks{Discovery: func(d map[string]any) { d["token_endpoint_auth_methods_supported"] = methods }}
}

// TestCheckTokenAuthAgainstDiscovery: the client authentication the code
// exchange will use (token_auth, else Basic unless discovery lists only
// Post) must be one the IdP lists, or every code exchange is refused.
func TestCheckTokenAuthAgainstDiscovery(t *testing.T) {
	op := startOIDC(t)
	const secret = "\t\t\tclient_secret {env.CHECK_TEST_SECRET}\n"

	// An Auth0 or PingOne application registered for POST.
	op.SetHooks(offering("client_secret_post"))
	out := runCheck(t, oidcCheckCaddyfile(t, op.Issuer, secret+"\t\t\ttoken_auth client_secret_basic\n"), true)
	checkLines(t, out, "✗ token endpoint: token_auth client_secret_basic is not among the IdP's token_endpoint_auth_methods_supported (client_secret_post): set token_auth client_secret_post", "token_exchange_failed")
	// Without token_auth the exchange takes Post by itself.
	out = runCheck(t, oidcCheckCaddyfile(t, op.Issuer, secret), false)
	checkLines(t, out, "✓ token endpoint authentication client_secret_post: offered by the IdP", "0 error(s), 0 warning(s)")

	// No secret-based method at all.
	op.SetHooks(offering("private_key_jwt", "tls_client_auth"))
	out = runCheck(t, oidcCheckCaddyfile(t, op.Issuer, secret), true)
	checkLines(t, out, "lists private_key_jwt, tls_client_auth: this IdP offers no secret-based method for this client: enable client_secret_basic or client_secret_post")

	// A public client (no secret) the IdP does not list "none" for:
	// Keycloak and Auth0 accept one all the same, so an info line, no
	// WARN at every start.
	op.SetHooks(offering("client_secret_basic", "client_secret_post"))
	out = runCheck(t, oidcCheckCaddyfile(t, op.Issuer, ""), false)
	checkLines(t, out, "i without a client_secret this client authenticates at the token endpoint as a public client (none)", "0 error(s), 0 warning(s)")
}

// TestCheckJWKSWithoutKeyForAlgorithms: algorithms ES256 against an IdP
// that advertises RS256 and ES256 (as Keycloak does, whatever the realm's
// keys) but whose JWKS holds only an RSA key: no ID token can verify,
// where check printed "✓ JWKS: 1 signing key(s)".
func TestCheckJWKSWithoutKeyForAlgorithms(t *testing.T) {
	op := startOIDC(t)
	op.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) {
		d["id_token_signing_alg_values_supported"] = []string{"RS256", "ES256"}
	}})
	out := runCheck(t, oidcCheckCaddyfile(t, op.Issuer, "\t\t\talgorithms ES256\n"), true)
	checkLines(t, out, "✗ JWKS "+op.Issuer+"/jwks holds no key for an accepted ID-token algorithm (ES256): its keys are RSA,", "id_token_signature")
	lacks(t, out, "✓ JWKS")

	out = runCheck(t, oidcCheckCaddyfile(t, op.Issuer, "\t\t\talgorithms ES256 PS256\n"), false)
	checkLines(t, out, "✓ JWKS: 1 signing key(s) at "+op.Issuer+"/jwks", "0 error(s)")
}

// dated serves h with every answer's Date off by *offset from this host's
// clock, at an issuer of its own; it returns the origin.
func dated(t *testing.T, offset *atomic.Int64, h func(origin string) http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()
	next := h(origin)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(time.Duration(offset.Load())).UTC().Format(http.TimeFormat))
		next.ServeHTTP(w, r)
	})}
	go hs.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { hs.Close() })
	return origin
}

// TestCheckIdPClockOff: an IdP whose clock (the Date of its answers) is off
// from this host's by more than sign-in tolerates fails every sign-in on
// the token's times; check sees it in the discovery and JWKS answers.
func TestCheckIdPClockOff(t *testing.T) {
	var offset atomic.Int64
	origin := dated(t, &offset, func(origin string) http.Handler {
		op, err := oidctest.NewServer(origin)
		if err != nil {
			t.Fatal(err)
		}
		return op
	})
	for _, tc := range []struct {
		name   string
		offset time.Duration
		extra  string
		want   string // "" for no warning
	}{
		{"20 minutes ahead", 20 * time.Minute, "", "! the IdP's clock is at least "},
		{"3 minutes behind", -3 * time.Minute, "", "! the IdP's clock is at least "},
		{"30 seconds ahead", 30 * time.Second, "", ""},
		{"3 minutes ahead, clock_skew 5m", 3 * time.Minute, "\t\t\tclock_skew 5m\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offset.Store(int64(tc.offset))
			out := runCheck(t, oidcCheckCaddyfile(t, origin, tc.extra), false)
			if tc.want == "" {
				checkLines(t, out, "✓ the IdP's clock agrees with this host's", "0 error(s), 0 warning(s)")
				return
			}
			checkLines(t, out, tc.want, "NTP", "1 warning(s)")
			if tc.offset > 0 {
				checkLines(t, out, "ahead of this host's", "1m0s tolerated", "id_token_iat")
			} else {
				checkLines(t, out, "behind this host's", "logout_token_iat")
			}
		})
	}

	// SAML metadata by URL: assertions dated ahead beyond clock_skew are
	// not yet valid, and a Response more than 90 s old has expired.
	sp, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	md, err := sp.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	samlOrigin := dated(t, &offset, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(md) })
	})
	for _, tc := range []struct {
		name   string
		offset time.Duration
		extra  string
		want   string
	}{
		{"SAML 5 minutes ahead", 5 * time.Minute, "", "saml_not_yet_valid"},
		{"SAML 2 minutes ahead, clock_skew 3m", 2 * time.Minute, "\t\t\tclock_skew 3m\n", ""},
		{"SAML 3 minutes behind, clock_skew 3m", -3 * time.Minute, "\t\t\tclock_skew 3m\n", "saml_expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offset.Store(int64(tc.offset))
			out := runCheck(t, samlCheckCaddyfile(t, "\t\t\tmetadata_url "+samlOrigin+"/metadata\n"+tc.extra), false)
			if tc.want == "" {
				checkLines(t, out, "✓ the IdP's clock agrees with this host's", "0 error(s), 0 warning(s)")
				return
			}
			checkLines(t, out, "! the IdP's clock is at least", tc.want, "NTP", "1 warning(s)")
		})
	}
}

// samlMetadataFile writes the samltest IdP's metadata, edited by edit, to a
// file and returns its path.
func samlMetadataFile(t *testing.T, edit func(*saml.EntityDescriptor)) string {
	t.Helper()
	sp, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	raw, err := sp.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil {
		t.Fatal(err)
	}
	edit(&ed)
	md, err := xml.MarshalIndent(&ed, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "idp-metadata.xml")
	if err := os.WriteFile(path, md, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// validFor sets the metadata's validUntil d from now (zero: none), on the
// entity alone.
func validFor(d time.Duration) func(*saml.EntityDescriptor) {
	return func(ed *saml.EntityDescriptor) {
		ed.ValidUntil = time.Time{}
		if d != 0 {
			ed.ValidUntil = time.Now().Add(d).UTC().Truncate(time.Second)
		}
		for i := range ed.IDPSSODescriptors {
			ed.IDPSSODescriptors[i].ValidUntil = nil
		}
	}
}

// TestCheckSAMLWantsSignedRequests: metadata saying
// WantAuthnRequestsSigned="true" (Shibboleth, ADFS, Keycloak's "client
// signature required") while sign_requests is off: the IdP refuses every
// unsigned AuthnRequest.
func TestCheckSAMLWantsSignedRequests(t *testing.T) {
	yes := true
	file := samlMetadataFile(t, func(ed *saml.EntityDescriptor) {
		validFor(0)(ed)
		for i := range ed.IDPSSODescriptors {
			ed.IDPSSODescriptors[i].WantAuthnRequestsSigned = &yes
		}
	})
	out := runCheck(t, samlCheckCaddyfile(t, "\t\t\tmetadata_file "+file+"\n"), false)
	checkLines(t, out, "! the IdP's metadata says WantAuthnRequestsSigned=\"true\" and sign_requests is off", "add sign_requests to the idp block", "0 error(s), 1 warning(s)")

	out = runCheck(t, samlCheckCaddyfile(t, "\t\t\tmetadata_file "+file+"\n\t\t\tsign_requests\n"), false)
	checkLines(t, out, "0 error(s), 0 warning(s)")
}

// TestCheckSAMLMetadataValidUntil: metadata whose validUntil is near:
// sign-in refuses it from then on. Inline metadata never renews itself; a
// metadata file is read again every metadata_refresh and at validUntil,
// so it warns only that close to its end that nobody seems to renew it;
// a metadata_url's copy is fetched again by then.
func TestCheckSAMLMetadataValidUntil(t *testing.T) {
	soon := samlMetadataFile(t, validFor(40*time.Hour))
	out := runCheck(t, samlCheckCaddyfile(t, "\t\t\tmetadata_file "+soon+"\n"), false)
	checkLines(t, out, "! metadata valid until ", "(validUntil, in 39 hours): after that date every sign-in fails with idp_misconfigured; metadata_file is read again", "0 error(s), 1 warning(s)")
	lacks(t, out, "never renews itself")

	// A file a job keeps current, its validUntil two weeks out at every
	// download (a federation's per-entity metadata).
	kept := samlMetadataFile(t, validFor(14*24*time.Hour))
	out = runCheck(t, samlCheckCaddyfile(t, "\t\t\tmetadata_file "+kept+"\n"), false)
	checkLines(t, out, "i metadata valid until ", "metadata_file is read again every metadata_refresh and at that date", "0 error(s), 0 warning(s)")

	inline, err := os.ReadFile(kept)
	if err != nil {
		t.Fatal(err)
	}
	out = runCheck(t, samlCheckCaddyfile(t, "\t\t\tmetadata `"+string(inline)+"`\n"), false)
	checkLines(t, out, "! metadata valid until ", "never renews itself", "0 error(s), 1 warning(s)")

	later := samlMetadataFile(t, validFor(60*24*time.Hour))
	out = runCheck(t, samlCheckCaddyfile(t, "\t\t\tmetadata_file "+later+"\n"), false)
	checkLines(t, out, "0 error(s), 0 warning(s)")
	lacks(t, out, "validUntil")

	// The samltest IdP publishes metadata valid for two days.
	sp, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	out = runCheck(t, samlCheckCaddyfile(t, "\t\t\tmetadata_url "+sp.MetadataURL()+"\n"), false)
	checkLines(t, out, "i metadata valid until ", "the IdP must publish renewed metadata at this URL before that date", "0 error(s), 0 warning(s)")
}

// TestCheckScopeNotListed: offline_access against an IdP whose
// scopes_supported lacks it (Google's does, and Google answers
// invalid_scope for it).
func TestCheckScopeNotListed(t *testing.T) {
	op := startOIDC(t)
	op.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) { d["scopes_supported"] = []string{"openid", "profile", "email"} }})
	out := runCheck(t, oidcCheckCaddyfile(t, op.Issuer, "\t\t\toffline_access\n"), false)
	checkLines(t, out, "! scope offline_access not among the IdP's scopes_supported (openid, profile, email)", "invalid_scope", "0 error(s), 1 warning(s)")

	// A scope OpenID Connect does not define: IdPs accept many they do
	// not list (an API's, a custom server's), so an info line.
	out = runCheck(t, oidcCheckCaddyfile(t, op.Issuer, "\t\t\tscopes openid email groups\n"), false)
	checkLines(t, out, "i scope groups not among", "0 error(s), 0 warning(s)")

	out = runCheck(t, oidcCheckCaddyfile(t, op.Issuer, ""), false)
	checkLines(t, out, "0 error(s), 0 warning(s)")
}

// TestCheckEntraDocsConfigNoWarnings: docs/entra-oidc.md's configuration
// (a client secret, offline_access, the API's api://<app-id>/<scope>)
// against Entra's discovery document (no code_challenge_methods_supported,
// scopes_supported openid profile email offline_access, no "none" among
// its token authentication methods): the check at start would log each
// warning at WARN, so none; what Entra leaves unsaid is info lines.
func TestCheckEntraDocsConfigNoWarnings(t *testing.T) {
	op := startOIDC(t)
	op.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) {
		delete(d, "code_challenge_methods_supported")
		d["scopes_supported"] = []string{"openid", "profile", "email", "offline_access"}
		d["token_endpoint_auth_methods_supported"] = []string{"client_secret_post", "private_key_jwt", "client_secret_basic"}
	}})
	out := runCheck(t, oidcCheckCaddyfile(t, op.Issuer, "\t\t\tpreset entra\n\t\t\tclient_secret {env.CHECK_TEST_SECRET}\n"+
		"\t\t\tscopes openid profile email api://0b1f9c2e-7d3a-4a51-9e0f-5c8d2b6a4f10/access_as_user\n\t\t\toffline_access\n"), false)
	checkLines(t, out, "i the IdP does not advertise PKCE (code_challenge_methods_supported); sign-in sends S256 anyway",
		"i scope api://0b1f9c2e-7d3a-4a51-9e0f-5c8d2b6a4f10/access_as_user not among the IdP's scopes_supported (openid, profile, email, offline_access)",
		"✓ token endpoint authentication client_secret_basic: offered by the IdP", "0 error(s), 0 warning(s)")
}

// TestCheckEntraTemplateIssuer: an issuer whose discovery document names
// Entra ID's multi-tenant template (…/organizations/v2.0/, a slash too
// many; or the multi-tenant endpoint, its document naming another
// origin's template) is not told to set the template as its issuer, which
// no token's iss ever equals.
func TestCheckEntraTemplateIssuer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()
	op, err := oidctest.NewServer(origin + "/organizations/v2.0")
	if err != nil {
		t.Fatal(err)
	}
	op.SetIssuerTemplate(origin + "/" + oidctest.TenantPlaceholder + "/v2.0")
	hs := &http.Server{Handler: op}
	go hs.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { hs.Close() })

	out := runCheck(t, oidcCheckCaddyfile(t, op.Issuer+"/", ""), true)
	checkLines(t, out, "✗ issuer mismatch: the discovery document names Microsoft Entra's multi-tenant issuer template",
		"use "+origin+"/organizations/v2.0 or "+origin+"/common/v2.0 with tenants (docs/entra-oidc.md, Multi-tenant apps), or "+origin+"/<tenant-id>/v2.0")
	lacks(t, out, "set issuer "+origin+"/{tenantid}")

	// The multi-tenant endpoint itself, whose document names another
	// origin's template: no issuer setting fits that document.
	op.SetIssuerTemplate("https://login.microsoftonline.com/" + oidctest.TenantPlaceholder + "/v2.0")
	out = runCheck(t, oidcCheckCaddyfile(t, op.Issuer, "\t\t\ttenants any\n"), true)
	checkLines(t, out, "✗ issuer mismatch: the discovery document is for issuer \"https://login.microsoftonline.com/{tenantid}/v2.0\", want the multi-tenant issuer template \""+origin+"/{tenantid}/v2.0\"",
		"must name the template on its own origin")
	lacks(t, out, "set issuer https://login.microsoftonline.com/{tenantid}")
}
