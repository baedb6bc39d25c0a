package idpcheck

// The discovery documents and metadata real IdPs publish, with the
// configurations the docs recommend for them: the check at start logs
// each problem at WARN, so a correct configuration must draw none, or an
// operator learns to ignore them. The documents are as the IdPs serve
// them (trimmed), served by a local HTTP server.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// serveIdP serves doc, BASE replaced by the server's URL, as the
// discovery document, and jwks at every other path, each answer with hdr.
func serveIdP(t *testing.T, doc string, jwks any, hdr map[string]string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			_, _ = w.Write([]byte(strings.ReplaceAll(doc, "BASE", srv.URL)))
			return
		}
		_ = json.NewEncoder(w).Encode(jwks)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// jwk is a fresh public key as a JWKS entry, with alg and use as given
// ("" leaves the member out).
func jwk(t *testing.T, ec bool, alg, use string) map[string]any {
	t.Helper()
	var pub any
	if ec {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
	} else {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
	}
	b, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: "k" + alg + use, Algorithm: alg, Use: use})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func keys(ks ...map[string]any) any { return map[string]any{"keys": ks} }

// problems are the findings LogProblems logs at WARN.
func problems(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Problem() {
			out = append(out, f.Level+": "+f.Message)
		}
	}
	return out
}

// noProblems fails when fs holds a problem, and returns the info lines.
func noProblems(t *testing.T, what string, fs []Finding) string {
	t.Helper()
	if p := problems(fs); len(p) > 0 {
		t.Errorf("%s: %d problem(s), each a WARN at every start:\n%s", what, len(p), strings.Join(p, "\n"))
	}
	var info []string
	for _, f := range fs {
		if f.Level == Info {
			info = append(info, f.Message)
		}
	}
	return strings.Join(info, "\n")
}

// has fails unless fs holds a finding of level whose message holds every
// one of want.
func has(t *testing.T, fs []Finding, level string, want ...string) {
	t.Helper()
	for _, f := range fs {
		if f.Level != level {
			continue
		}
		found := true
		for _, w := range want {
			found = found && strings.Contains(f.Message, w)
		}
		if found {
			return
		}
	}
	t.Errorf("no %s finding with %q among:\n%+v", level, want, fs)
}

// entraDoc is Microsoft Entra ID's v2.0 discovery document for one tenant:
// no code_challenge_methods_supported (Entra supports S256 without
// listing it), scopes_supported only four of OpenID Connect's scopes, no
// "none" among token_endpoint_auth_methods_supported.
const entraDoc = `{"token_endpoint":"BASE/oauth2/v2.0/token",
"token_endpoint_auth_methods_supported":["client_secret_post","private_key_jwt","client_secret_basic"],
"jwks_uri":"BASE/discovery/v2.0/keys","response_modes_supported":["query","fragment","form_post"],
"subject_types_supported":["pairwise"],"id_token_signing_alg_values_supported":["RS256"],
"response_types_supported":["code","id_token","code id_token","id_token token"],
"scopes_supported":["openid","profile","email","offline_access"],
"issuer":"BASE/v2.0","request_uri_parameter_supported":false,
"userinfo_endpoint":"https://graph.microsoft.com/oidc/userinfo",
"authorization_endpoint":"BASE/oauth2/v2.0/authorize",
"device_authorization_endpoint":"BASE/oauth2/v2.0/devicecode",
"http_logout_supported":true,"frontchannel_logout_supported":true,
"end_session_endpoint":"BASE/oauth2/v2.0/logout",
"claims_supported":["sub","iss","cloud_instance_name","cloud_instance_host_name","cloud_graph_host_name","msgraph_host","aud","exp","iat","auth_time","acr","nonce","preferred_username","name","tid","ver","at_hash","c_hash","email"],
"kerberos_endpoint":"BASE/kerberos","tenant_region_scope":"EU","cloud_instance_name":"microsoftonline.com",
"cloud_graph_host_name":"graph.windows.net","msgraph_host":"graph.microsoft.com","rbac_url":"https://pas.windows.net"}`

// entraKeys is Entra's JWKS: RSA keys with use and issuer, without alg.
func entraKeys(t *testing.T) any {
	k := jwk(t, false, "", "sig")
	k["issuer"] = "https://login.microsoftonline.com/tid/v2.0"
	return keys(k)
}

// keycloakDoc is a Keycloak realm's discovery document (trimmed): a
// public client ("Client authentication" off) exchanges codes with PKCE
// alone, yet "none" is not among token_endpoint_auth_methods_supported.
const keycloakDoc = `{"issuer":"BASE/realms/corp","authorization_endpoint":"BASE/realms/corp/protocol/openid-connect/auth",
"token_endpoint":"BASE/realms/corp/protocol/openid-connect/token","userinfo_endpoint":"BASE/realms/corp/protocol/openid-connect/userinfo",
"end_session_endpoint":"BASE/realms/corp/protocol/openid-connect/logout","frontchannel_logout_session_supported":true,"frontchannel_logout_supported":true,
"jwks_uri":"BASE/realms/corp/protocol/openid-connect/certs",
"id_token_signing_alg_values_supported":["PS384","RS384","EdDSA","ES384","HS256","HS512","ES256","RS256","HS384","ES512","PS256","PS512","RS512"],
"token_endpoint_auth_methods_supported":["private_key_jwt","client_secret_basic","client_secret_post","tls_client_auth","client_secret_jwt"],
"scopes_supported":["openid","acr","basic","address","web-origins","microprofile-jwt","phone","email","profile","organization","roles","service_account","offline_access"],
"code_challenge_methods_supported":["plain","S256"],"backchannel_logout_supported":true,"backchannel_logout_session_supported":true}`

// auth0Doc is an Auth0 tenant's discovery document (trimmed): a Native or
// SPA application's token endpoint authentication method None is not
// listed either.
const auth0Doc = `{"issuer":"BASE/","authorization_endpoint":"BASE/authorize","token_endpoint":"BASE/oauth/token",
"device_authorization_endpoint":"BASE/oauth/device/code","userinfo_endpoint":"BASE/userinfo","mfa_challenge_endpoint":"BASE/mfa/challenge",
"jwks_uri":"BASE/.well-known/jwks.json","registration_endpoint":"BASE/oidc/register","revocation_endpoint":"BASE/oauth/revoke",
"scopes_supported":["openid","profile","offline_access","name","given_name","family_name","nickname","email","email_verified","picture","created_at","identities","phone","address"],
"response_types_supported":["code","token","id_token","code token","code id_token","token id_token","code token id_token"],
"code_challenge_methods_supported":["S256","plain"],"response_modes_supported":["query","fragment","form_post"],
"subject_types_supported":["public"],"token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","private_key_jwt"],
"claims_supported":["aud","auth_time","created_at","email","email_verified","exp","family_name","given_name","iat","identities","iss","name","nickname","phone_number","picture","sub"],
"request_uri_parameter_supported":false,"request_parameter_supported":false,"id_token_signing_alg_values_supported":["HS256","RS256","PS256"],
"end_session_endpoint":"BASE/oidc/logout","backchannel_logout_supported":true,"backchannel_logout_session_supported":true}`

// googleDoc is accounts.google.com's discovery document: no
// offline_access among scopes_supported (Google answers invalid_scope for
// it).
const googleDoc = `{"issuer":"BASE","authorization_endpoint":"BASE/o/oauth2/v2/auth","device_authorization_endpoint":"BASE/device/code",
"token_endpoint":"BASE/token","userinfo_endpoint":"BASE/v1/userinfo","revocation_endpoint":"BASE/revoke","jwks_uri":"BASE/oauth2/v3/certs",
"response_types_supported":["code","token","id_token","code token","code id_token","token id_token","code token id_token","none"],
"response_modes_supported":["query","fragment","form_post"],"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"],
"scopes_supported":["openid","email","profile"],"token_endpoint_auth_methods_supported":["client_secret_post","client_secret_basic"],
"claims_supported":["aud","email","email_verified","exp","family_name","given_name","iat","iss","name","picture","sub"],
"code_challenge_methods_supported":["plain","S256"],"grant_types_supported":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code","urn:ietf:params:oauth:grant-type:jwt-bearer"]}`

// oktaDoc is an Okta custom authorization server's discovery document
// (default): its scopes_supported lists only the scopes marked "include in
// public metadata".
const oktaDoc = `{"issuer":"BASE/oauth2/default","authorization_endpoint":"BASE/oauth2/default/v1/authorize","token_endpoint":"BASE/oauth2/default/v1/token",
"userinfo_endpoint":"BASE/oauth2/default/v1/userinfo","registration_endpoint":"BASE/oauth2/v1/clients","jwks_uri":"BASE/oauth2/default/v1/keys",
"response_types_supported":["code","id_token","code id_token","code token","id_token token","code id_token token"],
"response_modes_supported":["query","fragment","form_post","okta_post_message"],"grant_types_supported":["authorization_code","implicit","refresh_token","password","urn:ietf:params:oauth:grant-type:device_code"],
"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"],
"scopes_supported":["openid","profile","email","address","phone","offline_access","device_sso"],
"token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","client_secret_jwt","private_key_jwt","none"],
"claims_supported":["iss","ver","sub","aud","iat","exp","jti","auth_time","amr","idp","nonce","name","nickname","preferred_username","given_name","middle_name","family_name","email","email_verified","profile","zoneinfo","locale","address","phone_number","picture","website","gender","birthdate","updated_at","at_hash","c_hash"],
"code_challenge_methods_supported":["S256"],"introspection_endpoint":"BASE/oauth2/default/v1/introspect","revocation_endpoint":"BASE/oauth2/default/v1/revoke",
"end_session_endpoint":"BASE/oauth2/default/v1/logout","request_parameter_supported":true,"request_object_signing_alg_values_supported":["HS256","HS384","HS512","RS256","RS384","RS512","ES256","ES384","ES512"]}`

// TestPKCENotAdvertisedIsInfo: Entra's discovery document lists no
// code_challenge_methods_supported though Entra takes S256, which sign-in
// sends anyway: docs/entra-oidc.md's configuration draws an info line, no
// WARN at every start. A list of methods without S256 stays an error.
func TestPKCENotAdvertisedIsInfo(t *testing.T) {
	srv := serveIdP(t, entraDoc, entraKeys(t), nil)
	cfg := oidc.Config{Name: "entra", Issuer: srv.URL + "/v2.0", ClientID: "app", ClientSecret: "s", OfflineAccess: true}
	fs := OIDC(context.Background(), srv.Client(), cfg)
	noProblems(t, "Entra, the docs' configuration", fs)
	has(t, fs, Info, "the IdP does not advertise PKCE", "sign-in sends S256 anyway")

	plain := serveIdP(t, strings.Replace(entraDoc, `"token_endpoint":`, `"code_challenge_methods_supported":["plain"],"token_endpoint":`, 1), entraKeys(t), nil)
	cfg.Issuer = plain.URL + "/v2.0"
	has(t, OIDC(context.Background(), plain.Client(), cfg), Error, "PKCE S256 not supported (the IdP offers plain)")
}

// TestNonStandardScopeNotListedIsInfo: only a scope OpenID Connect
// defines warns when scopes_supported lacks it. An API's scope
// (docs/entra-oidc.md: api://<app-id>/<scope>), Microsoft Graph's, or an
// Okta custom authorization server's unpublished scope is accepted though
// never listed: an info line.
func TestNonStandardScopeNotListedIsInfo(t *testing.T) {
	entra := serveIdP(t, entraDoc, entraKeys(t), nil)
	for _, scope := range []string{"api://0b1f9c2e-7d3a-4a51-9e0f-5c8d2b6a4f10/access_as_user", "User.Read", "https://graph.microsoft.com/.default"} {
		fs := OIDC(context.Background(), entra.Client(), oidc.Config{Name: "entra", Issuer: entra.URL + "/v2.0", ClientID: "app", ClientSecret: "s",
			Scopes: []string{"openid", "profile", "email", scope}, OfflineAccess: true})
		noProblems(t, "Entra with "+scope, fs)
		has(t, fs, Info, "scope "+scope+" not among the IdP's scopes_supported (openid, profile, email, offline_access)", "invalid_scope")
	}

	okta := serveIdP(t, oktaDoc, keys(jwk(t, false, "RS256", "sig")), nil)
	fs := OIDC(context.Background(), okta.Client(), oidc.Config{Name: "okta", Issuer: okta.URL + "/oauth2/default", ClientID: "app", ClientSecret: "s",
		Scopes: []string{"openid", "profile", "email", "groups", "inventory:read"}})
	noProblems(t, "Okta custom authorization server with unpublished scopes", fs)
	has(t, fs, Info, "scope groups, inventory:read not among")

	// Google lists the OpenID Connect scopes it offers, and refuses
	// offline_access: a warning, beside the info line for the other.
	google := serveIdP(t, googleDoc, keys(jwk(t, false, "RS256", "sig")), nil)
	fs = OIDC(context.Background(), google.Client(), oidc.Config{Name: "google", Issuer: google.URL, ClientID: "app", ClientSecret: "s",
		Scopes: []string{"openid", "email", "profile", "phone", "https://www.googleapis.com/auth/calendar.readonly"}, OfflineAccess: true})
	has(t, fs, Warn, "scope phone, offline_access not among the IdP's scopes_supported (openid, email, profile)", "remove it from the idp block")
	has(t, fs, Info, "scope https://www.googleapis.com/auth/calendar.readonly not among")
	if p := problems(fs); len(p) != 1 {
		t.Errorf("Google: want the one scope warning, got:\n%s", strings.Join(p, "\n"))
	}
}

// TestPublicClientNotListedIsInfo: README: an empty client_secret is a
// public client (PKCE only). Keycloak and Auth0 accept public clients
// without listing "none" among token_endpoint_auth_methods_supported: an
// info line, no WARN at every start. A confidential client whose method
// the IdP does not list stays an error.
func TestPublicClientNotListedIsInfo(t *testing.T) {
	for name, tc := range map[string]struct{ doc, issuer string }{
		"keycloak": {keycloakDoc, "/realms/corp"},
		"auth0":    {auth0Doc, "/"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := serveIdP(t, tc.doc, keys(jwk(t, false, "RS256", "sig"), jwk(t, false, "RSA-OAEP", "enc")), nil)
			fs := OIDC(context.Background(), srv.Client(), oidc.Config{Name: name, Issuer: srv.URL + tc.issuer, ClientID: "app"})
			noProblems(t, name+" public client", fs)
			has(t, fs, Info, "as a public client (none), which the IdP's token_endpoint_auth_methods_supported", "does not list")
		})
	}
	// Google lists post and basic; a confidential client set to a method
	// Google does not list would be refused at every code exchange.
	srv := serveIdP(t, strings.Replace(googleDoc, `["client_secret_post","client_secret_basic"]`, `["client_secret_post"]`, 1), keys(jwk(t, false, "RS256", "sig")), nil)
	fs := OIDC(context.Background(), srv.Client(), oidc.Config{Name: "google", Issuer: srv.URL, ClientID: "app", ClientSecret: "s", TokenAuth: "client_secret_basic"})
	has(t, fs, Error, "token_auth client_secret_basic is not among the IdP's token_endpoint_auth_methods_supported (client_secret_post)")
}

// TestRealIdPDocumentsDrawNoProblems: the IdPs' documents with the docs'
// configurations draw no WARN: Google behind a cache (a Date 50 minutes
// old with its Age), Okta's custom server (confidential and public),
// Keycloak (keys with and without alg and use, an EC key), Auth0 with
// token_auth client_secret_post, Entra's organizations endpoint with
// tenants.
func TestRealIdPDocumentsDrawNoProblems(t *testing.T) {
	entraOrgs := strings.ReplaceAll(entraDoc, `"issuer":"BASE/v2.0"`, `"issuer":"BASE/{tenantid}/v2.0"`)
	cached := map[string]string{"Age": "3000", "Date": time.Now().Add(-3000 * time.Second).UTC().Format(http.TimeFormat)}
	for name, tc := range map[string]struct {
		doc, issuer string
		jwks        any
		cfg         oidc.Config
		hdr         map[string]string
	}{
		"google":              {googleDoc, "", keys(jwk(t, false, "RS256", "sig"), jwk(t, false, "RS256", "sig")), oidc.Config{ClientSecret: "s"}, cached},
		"okta custom":         {oktaDoc, "/oauth2/default", keys(jwk(t, false, "RS256", "sig")), oidc.Config{ClientSecret: "s", OfflineAccess: true}, nil},
		"okta public":         {oktaDoc, "/oauth2/default", keys(jwk(t, false, "RS256", "sig")), oidc.Config{}, nil},
		"keycloak":            {keycloakDoc, "/realms/corp", keys(jwk(t, false, "RS256", "sig"), jwk(t, false, "RSA-OAEP", "enc"), jwk(t, true, "ES256", "sig")), oidc.Config{ClientSecret: "s"}, nil},
		"keycloak no alg":     {keycloakDoc, "/realms/corp", keys(jwk(t, false, "", "")), oidc.Config{ClientSecret: "s", Algorithms: []string{"RS256"}}, nil},
		"auth0":               {auth0Doc, "/", keys(jwk(t, false, "RS256", "sig")), oidc.Config{ClientSecret: "s", TokenAuth: "client_secret_post", OfflineAccess: true}, nil},
		"entra":               {entraDoc, "/v2.0", entraKeys(t), oidc.Config{ClientSecret: "s", OfflineAccess: true}, nil},
		"entra organizations": {entraOrgs, "/organizations/v2.0", entraKeys(t), oidc.Config{ClientSecret: "s", Tenants: []string{"72f988bf-86f1-41af-91ab-2d7cd011db47"}, OfflineAccess: true}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			srv := serveIdP(t, tc.doc, tc.jwks, tc.hdr)
			cfg := tc.cfg
			cfg.Name, cfg.Issuer, cfg.ClientID = "x", srv.URL+tc.issuer, "app"
			noProblems(t, name, OIDC(context.Background(), srv.Client(), cfg))
		})
	}
}

// certificate is a fresh self-signed certificate, base64 DER, valid from
// yesterday until notAfter.
func certificate(t *testing.T, cn string, notAfter time.Time) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// adfsMetadata is AD FS's federation metadata (trimmed) listing the
// signing certificates given, as AD FS does mid-rollover: the new
// (primary) one first, the old (secondary) one after it.
func adfsMetadata(signing ...string) string {
	kd := ""
	for _, c := range signing {
		kd += `<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>` + c + `</X509Certificate></X509Data></KeyInfo></KeyDescriptor>`
	}
	return `<?xml version="1.0" encoding="utf-8"?>
<EntityDescriptor ID="_e1" entityID="http://adfs.corp.example/adfs/services/trust" xmlns="urn:oasis:names:tc:SAML:2.0:metadata">
 <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <KeyDescriptor use="encryption"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>` + signing[0] + `</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
  ` + kd + `
  <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://adfs.corp.example/adfs/ls/"/>
  <NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</NameIDFormat>
  <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://adfs.corp.example/adfs/ls/"/>
  <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://adfs.corp.example/adfs/ls/"/>
 </IDPSSODescriptor>
</EntityDescriptor>`
}

// TestSAMLCertificateBeingReplacedIsInfo: AD FS's
// AutoCertificateRollover publishes the next token-signing certificate
// before the current one expires and lists both until the old one is
// gone; sign-in trusts both. The old one, expiring or expired, is an info
// line naming its successor; alone, it stays a warning.
func TestSAMLCertificateBeingReplacedIsInfo(t *testing.T) {
	now := time.Now()
	const cn = "ADFS Signing - adfs.corp.example"
	next := certificate(t, cn, now.Add(355*24*time.Hour))
	nextDay := now.Add(355 * 24 * time.Hour).UTC().Format("2006-01-02")
	for name, old := range map[string]time.Time{
		"expiring": now.Add(10 * 24 * time.Hour),
		"expired":  now.Add(-2 * 24 * time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			oldCert := certificate(t, cn, old)
			ending := "expires on " + old.UTC().Format("2006-01-02")
			if name == "expired" {
				ending = "expired on " + old.UTC().Format("2006-01-02")
			}
			fs := SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(adfsMetadata(next, oldCert))}, now)
			noProblems(t, "AD FS mid-rollover", fs)
			has(t, fs, Info, `signing certificate "`+cn+`" `+ending, "being replaced by the certificate valid until "+nextDay)
			has(t, fs, OK, `signing certificate "`+cn+`" valid until `+nextDay)

			// Without its successor it is a problem.
			fs = SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(adfsMetadata(oldCert))}, now)
			has(t, fs, Warn, `signing certificate "`+cn+`" `+ending)
		})
	}
	// Two certificates both within CertWarning: neither replaces the other.
	a, b := certificate(t, "a", now.Add(5*24*time.Hour)), certificate(t, "b", now.Add(20*24*time.Hour))
	fs := SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(adfsMetadata(a, b))}, now)
	has(t, fs, Warn, `signing certificate "a" expires on`)
	has(t, fs, Warn, `signing certificate "b" expires on`)
}

// shibbolethMetadata is a Shibboleth IdP's metadata as a federation's
// per-entity metadata serves it, with a validUntil.
func shibbolethMetadata(t *testing.T, validUntil time.Time) string {
	t.Helper()
	return `<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.uni.example/idp/shibboleth" validUntil="` + validUntil.UTC().Format(time.RFC3339) + `">
 <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` + certificate(t, "idp.uni.example", time.Now().AddDate(3, 0, 0)) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
  <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.uni.example/idp/profile/SAML2/Redirect/SSO"/>
 </md:IDPSSODescriptor>
</md:EntityDescriptor>`
}

// TestMetadataFileValidUntil: metadata_file is read again every
// metadata_refresh and at its validUntil (saml.Config.MetadataRefresh),
// so a file a job keeps current (docs/operations.md), its validUntil a
// week or two out at every download, is an info line; a copy with less
// left than metadata_refresh and a day is one nobody renews: a warning.
// Inline metadata never renews itself: a warning within CertWarning.
func TestMetadataFileValidUntil(t *testing.T) {
	now := time.Now()
	file := func(until time.Duration) string {
		path := filepath.Join(t.TempDir(), "idp-metadata.xml")
		if err := os.WriteFile(path, []byte(shibbolethMetadata(t, now.Add(until))), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name    string
		until   time.Duration
		refresh time.Duration
		level   string
		want    string
	}{
		{"kept current, 14 days left", 14 * 24 * time.Hour, 0, Info, "(validUntil, in 13 days): metadata_file is read again every metadata_refresh and at that date, so keep the file current"},
		{"kept current, 3 days left", 3 * 24 * time.Hour, 0, Info, "metadata_file is read again every metadata_refresh"},
		{"not renewed, 40 hours left", 40 * time.Hour, 0, Warn, "(validUntil, in 39 hours): after that date every sign-in fails with idp_misconfigured; metadata_file is read again every metadata_refresh and at that date, but a file kept current is renewed long before its end"},
		{"weekly refresh, 7 days left", 7 * 24 * time.Hour, 7 * 24 * time.Hour, Warn, "a file kept current is renewed long before its end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := SAML(context.Background(), nil, saml.Config{MetadataFile: file(tc.until), MetadataRefresh: tc.refresh}, now)
			has(t, fs, tc.level, "metadata valid until ", tc.want)
			if tc.level == Info {
				noProblems(t, tc.name, fs)
			}
			for _, f := range fs {
				if strings.Contains(f.Message, "never renews itself") {
					t.Errorf("a metadata_file is said to never renew itself: %s", f.Message)
				}
			}
		})
	}
	fs := SAML(context.Background(), nil, saml.Config{MetadataXML: []byte(shibbolethMetadata(t, now.Add(14*24*time.Hour)))}, now)
	has(t, fs, Warn, "metadata valid until ", "as this copy never renews itself")
}
