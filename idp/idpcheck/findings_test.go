package idpcheck

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// TestClockOffsetTruncatedAge: Age, like Date, counts whole seconds, so a
// cached answer from an IdP in step may be up to a second older than its
// Age says; that second must not read as the IdP being behind.
func TestClockOffsetTruncatedAge(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 700e6, time.UTC) // request sent
	// The cache got the answer at 11:55:59.9 (Date 11:55:59); 240.8 s
	// later it is served with Age 240.
	c := &clock{seen: []dated{{date: time.Date(2030, 1, 1, 11, 55, 59, 0, time.UTC), age: 240 * time.Second, sent: t0, got: t0.Add(time.Second)}}}
	if got, ok := c.offset(); !ok || got != 0 {
		t.Errorf("offset = %v, %v; want 0", got, ok)
	}
}

// TestClockFinding: the IdP's clock is judged against each direction's own
// tolerance (for SAML, ahead by clock_skew, behind by crewjam's 90 s
// IssueInstant age), an offset of exactly the tolerance still agrees.
func TestClockFinding(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	// at is one answer from an IdP whose clock is off by exactly off.
	at := func(off time.Duration) *clock {
		return &clock{seen: []dated{{date: now.Add(off), sent: now.Add(-time.Second), got: now}}}
	}
	for _, tc := range []struct {
		name  string
		off   time.Duration
		level string
		want  string
	}{
		{"exactly the tolerance ahead", time.Minute, OK, "agrees"},
		{"beyond the tolerance ahead", 2 * time.Minute, Warn, "ahead of this host's"},
		{"behind by more than ahead tolerates, less than behind does", -3 * time.Minute, OK, "agrees"},
		{"beyond the tolerance behind", -6 * time.Minute, Warn, "behind this host's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fs findings
			fs.clock(at(tc.off), time.Minute, 5*time.Minute, "AHEAD", "BEHIND")
			if len(fs) != 1 {
				t.Fatalf("findings %+v, want one", fs)
			}
			has(t, fs, tc.level, tc.want)
		})
	}
}

// TestClockTolerances: the tolerances the checks pass are the ones sign-in
// applies: an OIDC IdP 2 minutes ahead agrees with clock_skew 3m; a SAML
// IdP 75 s behind is within crewjam's 90 s IssueInstant age, whatever
// clock_skew is (1 minute by default).
func TestClockTolerances(t *testing.T) {
	srv := serveIdP(t, entraDoc, entraKeys(t), nil)
	client := &http.Client{Transport: &dateShift{next: srv.Client().Transport, by: 2 * time.Minute}}
	fs := OIDC(context.Background(), client, oidc.Config{Name: "e", Issuer: srv.URL + "/v2.0", ClientID: "app", ClientSecret: "s", ClockSkew: 3 * time.Minute})
	has(t, fs, OK, "the IdP's clock agrees")

	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write([]byte(shibbolethMetadata(t, time.Now().Add(365*24*time.Hour))))
	}))
	t.Cleanup(md.Close)
	client = &http.Client{Transport: &dateShift{next: md.Client().Transport, by: -75 * time.Second}}
	fs = SAML(context.Background(), client, saml.Config{MetadataURL: md.URL}, time.Now())
	has(t, fs, OK, "the IdP's clock agrees")
}

// TestSAMLCertificateFindings: of several certificates that outlast
// CertWarning, the one valid longest is named as the expiring one's
// successor; a certificate not valid yet warns.
func TestSAMLCertificateFindings(t *testing.T) {
	now := time.Now()
	old := certificate(t, "old", now.Add(10*24*time.Hour))
	soon := certificate(t, "next", now.Add(100*24*time.Hour))
	late := certificate(t, "next", now.Add(355*24*time.Hour))
	fs := SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(adfsMetadata(soon, late, old))}, now)
	has(t, fs, Info, `signing certificate "old" expires on`, "being replaced by the certificate valid until "+now.Add(355*24*time.Hour).UTC().Format("2006-01-02"))

	future := certificateFrom(t, "future", now.Add(48*time.Hour), now.Add(400*24*time.Hour))
	fs = SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(adfsMetadata(future))}, now)
	has(t, fs, Warn, `signing certificate "future" is not valid before `+now.Add(48*time.Hour).UTC().Format("2006-01-02"))
}

// certificateFrom is certificate with its NotBefore too.
func certificateFrom(t *testing.T, cn string, notBefore, notAfter time.Time) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// TestOIDCFindingWording: the findings an administrator acts on name the
// fix for the case at hand: the token_auth to set is the other secret
// method; an IdP without a secret method for the client is told apart; the
// logout line says which logout the IdP offers.
func TestOIDCFindingWording(t *testing.T) {
	entraMethods := `"token_endpoint_auth_methods_supported":["client_secret_post","private_key_jwt","client_secret_basic"]`
	for _, tc := range []struct {
		name      string
		from, to  string
		tokenAuth string
		level     string
		want      []string
	}{
		{"basic only, post configured", entraMethods, `"token_endpoint_auth_methods_supported":["client_secret_basic"]`, "client_secret_post",
			Error, []string{"token_auth client_secret_post is not among", "set token_auth client_secret_basic;"}},
		{"post only, basic configured", entraMethods, `"token_endpoint_auth_methods_supported":["client_secret_post"]`, "client_secret_basic",
			Error, []string{"token_auth client_secret_basic is not among", "set token_auth client_secret_post;"}},
		{"no secret method", entraMethods, `"token_endpoint_auth_methods_supported":["private_key_jwt"]`, "",
			Error, []string{"offers no secret-based method"}},
		{"both logouts", `"frontchannel_logout_supported":true`, `"frontchannel_logout_supported":true,"backchannel_logout_supported":true`, "",
			Info, []string{"offers back-channel and front-channel logout"}},
		{"front-channel only", "", "", "", Info, []string{"offers front-channel logout"}},
		{"end_session_endpoint", "", "", "", Info, []string{"end_session_endpoint present"}},
		{"no end_session_endpoint", `"end_session_endpoint":"BASE/oauth2/v2.0/logout",`, "", "", Info, []string{"no end_session_endpoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := entraDoc
			if tc.from != "" {
				if doc = strings.Replace(entraDoc, tc.from, tc.to, 1); doc == entraDoc {
					t.Fatalf("the document has no %s", tc.from)
				}
			}
			srv := serveIdP(t, doc, entraKeys(t), nil)
			fs := OIDC(context.Background(), srv.Client(), oidc.Config{Name: "e", Issuer: srv.URL + "/v2.0", ClientID: "app", ClientSecret: "s", TokenAuth: tc.tokenAuth})
			has(t, fs, tc.level, tc.want...)
		})
	}
}

// TestSAMLExpiredMetadataFix: expired metadata is fixed where it comes
// from: a configured copy is replaced, a URL's publisher renews it.
func TestSAMLExpiredMetadataFix(t *testing.T) {
	now := time.Now()
	expired := shibbolethMetadata(t, now.Add(-time.Hour))
	has(t, SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(expired)}, now), Error,
		"metadata expired at", "download the IdP's current metadata and replace the configured copy")
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(expired)) }))
	t.Cleanup(md.Close)
	has(t, SAML(context.Background(), md.Client(), saml.Config{MetadataURL: md.URL}, now), Error,
		"metadata expired at", "the IdP still publishes expired metadata at this URL")
}

// TestMetadataValidUntilFarOff: only a metadata_file's copy is judged by
// metadata_refresh (it is read again that often); metadata from a URL or
// the config with more than CertWarning left draws no validUntil line,
// however long metadata_refresh is.
func TestMetadataValidUntilFarOff(t *testing.T) {
	now := time.Now()
	fs := SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(shibbolethMetadata(t, now.Add(40*24*time.Hour))), MetadataRefresh: 60 * 24 * time.Hour}, now)
	for _, f := range fs {
		if strings.Contains(f.Message, "validUntil") {
			t.Errorf("inline metadata 40 days from its validUntil: %s: %s", f.Level, f.Message)
		}
	}
}

// TestSAMLWantsSignedRequests: an IdP whose metadata wants signed
// AuthnRequests draws a warning while sign_requests is off, and none once
// it is on: a warning that stays after the fix is a WARN at every start.
func TestSAMLWantsSignedRequests(t *testing.T) {
	now := time.Now()
	md := strings.Replace(shibbolethMetadata(t, now.Add(365*24*time.Hour)), "<md:IDPSSODescriptor ", `<md:IDPSSODescriptor WantAuthnRequestsSigned="true" `, 1)
	has(t, SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(md)}, now), Warn, `WantAuthnRequestsSigned="true" and sign_requests is off`)
	for _, f := range SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(md), SignRequests: true}, now) {
		if strings.Contains(f.Message, "WantAuthnRequestsSigned") {
			t.Errorf("with sign_requests on: %s: %s", f.Level, f.Message)
		}
	}
}

// TestLogProblemsCount: the start-up summary counts the problems (errors
// and warnings), not the other findings, each of which it logs at WARN.
func TestLogProblemsCount(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	LogProblems(zap.New(core), "okta", []Finding{{Level: OK, Message: "a"}, {Level: Warn, Message: "b"}, {Level: Info, Message: "c"}, {Level: Error, Message: "d"}})
	if warns := logs.FilterLevelExact(zapcore.WarnLevel).Len(); warns != 2 {
		t.Errorf("%d WARN lines, want 2", warns)
	}
	sum := logs.FilterMessage("identity provider checked").All()
	if len(sum) != 1 || sum[0].ContextMap()["problems"] != int64(2) {
		t.Errorf("summary %+v, want problems=2", sum)
	}
}

// TestOIDCTokenAuthUnlisted: an IdP that lists no token endpoint
// authentication methods draws no token endpoint finding: basic, the
// default, is tried.
func TestOIDCTokenAuthUnlisted(t *testing.T) {
	doc := strings.Replace(entraDoc, `"token_endpoint_auth_methods_supported":["client_secret_post","private_key_jwt","client_secret_basic"],`, "", 1)
	if doc == entraDoc {
		t.Fatal("the document has no token_endpoint_auth_methods_supported")
	}
	srv := serveIdP(t, doc, entraKeys(t), nil)
	for _, f := range OIDC(context.Background(), srv.Client(), oidc.Config{Name: "e", Issuer: srv.URL + "/v2.0", ClientID: "app", ClientSecret: "s"}) {
		if strings.Contains(f.Message, "token endpoint") || strings.Contains(f.Message, "token_endpoint_auth") {
			t.Errorf("%s: %s", f.Level, f.Message)
		}
	}
}

// TestSAMLMetadataWithoutSSO: metadata sign-in cannot use (no
// SingleSignOnService of a binding it sends) is an error, not the OK line.
func TestSAMLMetadataWithoutSSO(t *testing.T) {
	now := time.Now()
	md := shibbolethMetadata(t, now.Add(365*24*time.Hour))
	i, j := strings.Index(md, "<md:SingleSignOnService"), strings.Index(md, "</md:IDPSSODescriptor>")
	fs := SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(md[:i] + md[j:])}, now)
	for _, f := range fs {
		if f.Level == OK && strings.Contains(f.Message, "SingleSignOnService") {
			t.Errorf("metadata without SingleSignOnService: %s", f.Message)
		}
	}
	if len(problems(fs)) == 0 {
		t.Errorf("no problem reported: %+v", fs)
	}
}

// TestOIDCDiscoveryFindings: each check of the discovery document and the
// JWKS answers with its own line, and a problem's line names its fix: an
// IdP listing S256 is OK (not the info line for an IdP that lists no
// methods); a plain issuer mismatch, a multi-tenant issuer whose document
// lacks the template, and a single-tenant issuer whose document names the
// template each say what to set; missing endpoints, an algorithm the IdP
// does not sign with, an unreadable JWKS and a JWKS without a fitting key
// are errors; an issuer sign-in would not even ask is one.
func TestOIDCDiscoveryFindings(t *testing.T) {
	ecKeys := keys(jwk(t, true, "ES256", "sig"))
	for _, tc := range []struct {
		name        string
		doc, issuer string // issuer: the path configured after the server's URL
		jwks        any
		algorithms  []string
		level       string
		want        []string
	}{
		{"S256 listed", oktaDoc, "/oauth2/default", nil, nil, OK, []string{"PKCE S256 supported"}},
		{"issuer matches", oktaDoc, "/oauth2/default", nil, nil, OK, []string{"issuer matches: SRV/oauth2/default"}},
		{"signing keys", oktaDoc, "/oauth2/default", nil, nil, OK, []string{"JWKS: 1 signing key(s) at SRV/oauth2/default/v1/keys"}},
		{"issuer mismatch", strings.Replace(entraDoc, `"issuer":"BASE/v2.0"`, `"issuer":"https://login.example/other"`, 1), "/v2.0", nil, nil,
			Error, []string{`issuer mismatch: the IdP's discovery document says "https://login.example/other"`, "set issuer https://login.example/other in the idp block"}},
		{"multi-tenant without template", entraDoc, "/organizations/v2.0", nil, nil,
			Error, []string{"issuer mismatch", "multi-tenant endpoint must name the template"}},
		{"template for one tenant", strings.Replace(entraDoc, `"issuer":"BASE/v2.0"`, `"issuer":"BASE/{tenantid}/v2.0"`, 1), "/v2.0", nil, nil,
			Error, []string{"names Microsoft Entra's multi-tenant issuer template", "use SRV/organizations/v2.0 or SRV/common/v2.0"}},
		{"no token endpoint", strings.Replace(entraDoc, `"token_endpoint":"BASE/oauth2/v2.0/token",`, "", 1), "/v2.0", nil, nil,
			Error, []string{"discovery document: ", "until the IdP's discovery document is corrected"}},
		{"algorithm not offered", entraDoc, "/v2.0", nil, []string{"ES256"},
			Error, []string{"no accepted ID-token algorithm", "set algorithms in the idp block"}},
		{"JWKS unreadable", entraDoc, "/v2.0", "not a key set", nil,
			Error, []string{"JWKS SRV/discovery/v2.0/keys", "fetching JWKS"}},
		{"no key for the algorithms", keycloakDoc, "/realms/corp", ecKeys, []string{"RS256"},
			Error, []string{"holds no key for an accepted ID-token algorithm (RS256)", "so no ID token verifies"}},
		{"issuer with a query", entraDoc, "/v2.0?x=1", nil, nil, Error, []string{"issuer: ", "an issuer has no query"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jwks := tc.jwks
			if jwks == nil {
				jwks = entraKeys(t)
			}
			srv := serveIdP(t, tc.doc, jwks, nil)
			fs := OIDC(context.Background(), srv.Client(), oidc.Config{Name: "x", Issuer: srv.URL + tc.issuer, ClientID: "app", ClientSecret: "s", Algorithms: tc.algorithms})
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = strings.ReplaceAll(w, "SRV", srv.URL)
			}
			has(t, fs, tc.level, want...)
			if tc.level == OK {
				if p := problems(fs); len(p) > 0 {
					t.Errorf("problems: %q", p)
				}
				for _, f := range fs {
					if strings.Contains(f.Message, "does not advertise PKCE") {
						t.Errorf("an IdP listing S256 drew %s: %s", f.Level, f.Message)
					}
				}
			}
		})
	}
}

// TestOIDCUntrustedCertificate: an IdP whose TLS certificate this host
// does not trust (an internal CA) is worded with the fix sign-in's log
// gives for it (idp.UntrustedCertificateFix), not only Go's x509 error.
func TestOIDCUntrustedCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "never reached", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	// The default client: httptest's CA is not among the system's.
	fs := OIDC(context.Background(), &http.Client{}, oidc.Config{Name: "x", Issuer: srv.URL + "/v2.0", ClientID: "app", ClientSecret: "s"})
	has(t, fs, Error, "discovery document "+srv.URL+"/v2.0/.well-known/openid-configuration unreachable: "+idp.UntrustedCertificateFix)
}
