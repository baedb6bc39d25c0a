package check_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/check"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// cli runs `caddy sso <args>` and returns its output.
var cli = caddytest.RunCLI

// checkCaddyfile writes a Caddyfile into a temp dir and returns its path.
func checkCaddyfile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestCheckReachableIdPs(t *testing.T) {
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	sp, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })

	path := checkCaddyfile(t, `{
	sso {
		idp corp oidc {
			preset entra
			issuer `+op.Issuer+`
			client_id app
		}
		idp partner saml {
			preset okta
			metadata_url `+sp.MetadataURL()+`
		}
	}
}

app.example.com {
	sso corp
	respond "app"
}

docs.example.com {
	# The endpoints' path too: under /private/* alone, Caddy would send
	# the ACS to respond (routeorder.Misrouted).
	@private path /private/* /.sso/*
	handle @private {
		sso partner
	}
	respond "docs"
}
`)
	out, err := cli(context.Background(), "check", "--config", path)
	if err != nil {
		t.Fatalf("check failed: %v\n%s", err, out)
	}
	t.Log(out)
	checkLines(t, out,
		"IdP corp (oidc, preset entra)",
		"✓ discovery document: "+op.Issuer+"/.well-known/openid-configuration",
		"✓ issuer matches: "+op.Issuer,
		"✓ PKCE S256 supported",
		"i end_session_endpoint present",
		"✓ JWKS: 1 signing key(s)",
		"https://app.example.com/.sso/oidc/corp/callback\n",
		"Post-logout redirect URI  https://app.example.com/\n",
		"Back-channel logout URI   https://app.example.com/.sso/oidc/corp/backchannel-logout\n",
		"Front-channel logout URL  https://app.example.com/.sso/oidc/corp/frontchannel-logout\n",
		"i the IdP offers back-channel and front-channel logout",
		"uniqueUserId  uniqueUserId, userUniqueId, oid\n",
		"IdP partner (saml, preset okta)",
		"✓ metadata parsed: "+sp.MetadataURL()+" (IdP entity ID "+sp.EntityID()+")",
		"✓ signing certificate \"samltest IdP\" valid until",
		"https://docs.example.com/.sso/saml/partner/acs\n",
		"https://docs.example.com/.sso/saml/partner/metadata\n",
		"https://docs.example.com/.sso/saml/partner/slo\n",
		"0 error(s), 0 warning(s)",
	)
	if strings.Contains(out, "✗") || strings.Contains(out, "docs.example.com/.sso/oidc") || strings.Contains(out, "app.example.com/.sso/saml") {
		t.Errorf("unexpected line in:\n%s", out)
	}

	// --json: the exact values per site.
	out, err = cli(context.Background(), "check", "--config", path, "--json")
	if err != nil {
		t.Fatalf("check --json failed: %v\n%s", err, out)
	}
	var r check.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !r.OK || len(r.IdPs) != 2 {
		t.Fatalf("report: %+v", r)
	}
	values := map[string]string{}
	for _, ic := range r.IdPs {
		for _, v := range ic.Values {
			values[ic.Name+"/"+v.Field] = v.Value
		}
	}
	for k, want := range map[string]string{
		"corp/Redirect URI":                                "https://app.example.com/.sso/oidc/corp/callback",
		"corp/Back-channel logout URI":                     "https://app.example.com/.sso/oidc/corp/backchannel-logout",
		"corp/Front-channel logout URL":                    "https://app.example.com/.sso/oidc/corp/frontchannel-logout",
		"partner/SP entity ID (Identifier / Audience URI)": "https://docs.example.com/.sso/saml/partner/metadata",
		"partner/ACS URL (Reply URL / Single sign-on URL)": "https://docs.example.com/.sso/saml/partner/acs",
	} {
		if values[k] != want {
			t.Errorf("%s = %q, want %q", k, values[k], want)
		}
	}
}

func TestCheckUnreachableIssuer(t *testing.T) {
	// A reserved port nothing listens on.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testport.For(t)))
	path := checkCaddyfile(t, `{
	sso {
		idp corp oidc {
			issuer http://`+addr+`
			client_id app
		}
	}
}

app.example.com {
	sso
	respond "app"
}
`)
	out, err := cli(context.Background(), "check", "--config", path, "--timeout", "5s")
	if err == nil {
		t.Fatalf("check succeeded against an unreachable issuer:\n%s", out)
	}
	checkLines(t, out,
		"✗ discovery document http://"+addr+"/.well-known/openid-configuration unreachable",
		// The values to enter are printed all the same.
		"https://app.example.com/.sso/oidc/corp/callback",
		"1 error(s)",
	)
}

func TestCheckSAMLCertExpiringSoon(t *testing.T) {
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
	// The samltest IdP says its metadata is valid for two days, which a
	// file copy draws a warning for (TestCheckSAMLMetadataValidUntil):
	// this test is about the certificate alone.
	ed.ValidUntil = time.Time{}
	// Replace the signing certificate with one that expires in 10 days.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "short-lived IdP"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ed.IDPSSODescriptors {
		kds := ed.IDPSSODescriptors[i].KeyDescriptors
		for j := range kds {
			for k := range kds[j].KeyInfo.X509Data.X509Certificates {
				kds[j].KeyInfo.X509Data.X509Certificates[k].Data = base64.StdEncoding.EncodeToString(der)
			}
		}
	}
	md, err := xml.MarshalIndent(&ed, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	mdFile := filepath.Join(t.TempDir(), "idp-metadata.xml")
	if err := os.WriteFile(mdFile, md, 0o600); err != nil {
		t.Fatal(err)
	}
	path := checkCaddyfile(t, `{
	sso {
		idp partner saml {
			metadata_file `+mdFile+`
			entity_id urn:example:sp
		}
	}
}

app.example.com:8443 {
	sso
	respond "app"
}
`)
	out, err := cli(context.Background(), "check", "--config", path)
	if err != nil {
		t.Fatalf("a warning must not fail the check: %v\n%s", err, out)
	}
	checkLines(t, out,
		"! signing certificate \"short-lived IdP\" expires on "+tmpl.NotAfter.UTC().Format("2006-01-02"),
		"urn:example:sp\n",
		"https://app.example.com:8443/.sso/saml/partner/acs\n",
		"0 error(s), 1 warning(s)",
	)

	// A DOCTYPE is refused.
	doctype := filepath.Join(t.TempDir(), "doctype.xml")
	if err := os.WriteFile(doctype, append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), md...), 0o600); err != nil {
		t.Fatal(err)
	}
	path = checkCaddyfile(t, strings.Replace(mustRead(t, path), mdFile, doctype, 1))
	out, err = cli(context.Background(), "check", "--config", path)
	if err == nil || !strings.Contains(out, "DOCTYPE") {
		t.Fatalf("DOCTYPE metadata: err %v\n%s", err, out)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCheckHostlessRoutes: `caddy sso check` reports a route that would
// refuse to start sign-ins (no host name, no base_url) as an error, and
// prints the values of a route with base_url at that origin.
func TestCheckHostlessRoutes(t *testing.T) {
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	caddyfile := func(directive string) string {
		return checkCaddyfile(t, "{\n\tsso {\n\t\tidp corp oidc {\n\t\t\tissuer "+op.Issuer+"\n\t\t\tclient_id app\n\t\t}\n\t}\n}\n\n:8443 {\n"+directive+"\trespond app\n}\n")
	}
	out, err := cli(context.Background(), "check", "--config", caddyfile("\tsso corp\n"))
	if err == nil {
		t.Errorf("check passed a route that refuses sign-ins:\n%s", out)
	}
	checkLines(t, out, "✗", "matches no host and has no base_url")

	out, err = cli(context.Background(), "check", "--config", caddyfile("\tsso corp {\n\t\tbase_url https://app.example.com\n\t}\n"))
	if err != nil {
		t.Fatalf("check failed: %v\n%s", err, out)
	}
	checkLines(t, out, "https://app.example.com/.sso/oidc/corp/callback\n", "0 error(s)")
}

// TestCheckVerifyHostsFailOpen: a forward-auth gateway whose site names
// its hosts lets a request for any other Host through, since Caddy
// answers it with an empty 200 that nginx's auth_request takes as "signed
// in"; check refuses such a config unless a site without a host refuses
// the rest.
func TestCheckVerifyHostsFailOpen(t *testing.T) {
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	global := "{\n\tsso {\n\t\tidp corp oidc {\n\t\t\tissuer " + op.Issuer + "\n\t\t\tclient_id app\n\t\t}\n\t}\n}\n\n"
	gateway := "http://app.localhost:9091, http://wiki.localhost:9091 {\n\tsso corp {\n\t\tmode auth_request\n\t}\n}\n"
	const warning = "answers only for app.localhost, wiki.localhost"

	for _, tt := range []struct {
		name, site string // site: a host-less site beside the gateway's
		failOpen   bool
	}{
		{"no other site", "", true},
		{"a catch-all site that refuses", "http://:9091 {\n\trespond 403\n}\n", false},
		{"a catch-all site by path /*", "http://:9091/* {\n\trespond 403\n}\n", false},
		// Other paths of an unknown Host still get Caddy's empty 200.
		{"a host-less site of one path", "http://:9091/health {\n\trespond 403\n}\n", true},
		// A route without matchers whose handlers answer only some
		// requests: the rest run out of handlers, and get the empty 200.
		{"a host-less site that refuses one path", "http://:9091 {\n\trespond /health 403\n}\n", true},
		{"a host-less site of one handle", "http://:9091 {\n\thandle /x {\n\t\trespond 403\n\t}\n}\n", true},
		{"a host-less site that answers nothing", "http://:9091 {\n\theader X-A b\n}\n", true},
		{"a host-less site that refuses all but /health", "http://:9091 {\n\thandle /health {\n\t\trespond 200\n\t}\n\trespond 403\n}\n", false},
		{"a host-less site that proxies", "http://:9091 {\n\treverse_proxy 127.0.0.1:1\n}\n", false},
		{"a host-less site that errors", "http://:9091 {\n\terror 403\n}\n", false},
		{"a host-less verify site", "http://:9091 {\n\tsso corp {\n\t\tmode forward_auth\n\t\tbase_url http://localhost:9091\n\t}\n}\n", false},
		{"a host-less protect site", "http://:9091 {\n\tsso corp {\n\t\tbase_url http://localhost:9091\n\t}\n}\n", true},
	} {
		out, err := cli(context.Background(), "check", "--config", checkCaddyfile(t, global+gateway+"\n"+tt.site))
		if !tt.failOpen {
			if err != nil || strings.Contains(out, warning) {
				t.Errorf("%s: %v\n%s", tt.name, err, out)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: check passed a verify endpoint that lets unknown hosts through:\n%s", tt.name, out)
		}
		checkLines(t, out, "✗", warning)
	}
}

// TestCheckProtectModeWrittenOut: `mode protect`, the default written out,
// is no verify mode: a site named by host that serves its app needs no
// site refusing other hosts (Caddy's empty 200 is no proxy's "allowed").
func TestCheckProtectModeWrittenOut(t *testing.T) {
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	global := "{\n\tsso {\n\t\tidp corp oidc {\n\t\t\tissuer " + op.Issuer + "\n\t\t\tclient_id app\n\t\t}\n\t}\n}\n\n"
	site := "http://app.localhost:9091 {\n\tsso corp {\n\t\tmode protect\n\t}\n\trespond \"app\"\n}\n"
	out, err := cli(context.Background(), "check", "--config", checkCaddyfile(t, global+site))
	if err != nil || strings.Contains(out, "endpoint answers only for") {
		t.Errorf("check of an sso in mode protect, written out: %v\n%s", err, out)
	}
}

// TestCheckMisroutedEndpoints: an sso handler whose IdP's endpoints
// Caddy's routes send elsewhere (the app, when the sso is under /admin/*
// only) is an error in its IdP's block, naming the callback and the fix;
// with a path_prefix its route receives, or a route that also matches the
// endpoints' path, the check passes.
func TestCheckMisroutedEndpoints(t *testing.T) {
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	global := "{\n\tsso {\n\t\tidp corp oidc {\n\t\t\tissuer " + op.Issuer + "\n\t\t\tclient_id app\n\t\t}\n\t}\n}\n\n"
	for _, tc := range []struct {
		name, site string
		misrouted  bool
	}{
		{"sso under /admin/* only, the app answers the rest", "app.example.com {\n\thandle /admin/* {\n\t\tsso corp\n\t\trespond admin\n\t}\n\trespond app\n}\n", true},
		{"a path_prefix under /admin/", "app.example.com {\n\thandle /admin/* {\n\t\tsso corp {\n\t\t\tpath_prefix /admin/.sso/\n\t\t}\n\t\trespond admin\n\t}\n\trespond app\n}\n", false},
		{"the route matches the endpoints' path too", "app.example.com {\n\t@private path /admin/* /.sso/*\n\thandle @private {\n\t\tsso corp\n\t\trespond admin\n\t}\n\trespond app\n}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := cli(context.Background(), "check", "--config", checkCaddyfile(t, global+tc.site))
			says := strings.Contains(out, "✗ server srv0: the sso handler of IdP corp with path_prefix /.sso/ on app.example.com can never complete a sign-in") &&
				strings.Contains(out, "/.sso/oidc/corp/callback") && strings.Contains(out, "path_prefix of its own")
			if says != tc.misrouted || (err != nil) != tc.misrouted {
				t.Errorf("check (err %v) reports the misrouted endpoints: %v, want %v:\n%s", err, says, tc.misrouted, out)
			}
		})
	}
}
