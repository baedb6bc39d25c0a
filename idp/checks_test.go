package idp_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestLocalPathRefusedBytes: a control character (DEL included) is refused
// in the query and fragment as in the path, since a header cannot carry it
// and browsers drop some of them; so is raw non-ASCII from its first byte,
// 0x80, which browsers would percent-encode themselves; so is a path
// escaped more deeply than the rounds of decoding checked.
func TestLocalPathRefusedBytes(t *testing.T) {
	for _, bad := range []string{
		"/a?q=\x7f", "/a#\x7f", "/a?q=\x01", "/a#x\ty", "/a?q=\r\nSet-Cookie:x",
		"/\x80", "/a?q=\x80", "/a\x7f", "/a\x1fb",
	} {
		if got := idp.LocalPath(bad); got != "/" {
			t.Errorf("%q kept as %q, want \"/\"", bad, got)
		}
	}
	for _, ok := range []string{"/a?q=~", "/a#~", "/~user"} {
		if got := idp.LocalPath(ok); got != ok {
			t.Errorf("%q rewritten to %q", ok, got)
		}
	}
	// Escapes nested deeper than the three rounds checked are refused
	// outright, harmless or not: the fourth decoding is never looked at.
	for _, deep := range []string{"/%2525252F%2525252Fevil.example", "/a%2525252520b"} {
		if got := idp.LocalPath(deep); got != "/" {
			t.Errorf("%q, four layers deep, kept as %q", deep, got)
		}
	}
}

// TestIsFlowCookie: every flow cookie's name is stripped from what the
// upstream sees, the __Secure- names of earlier versions too, and no other.
func TestIsFlowCookie(t *testing.T) {
	for name, want := range map[string]bool{
		"sso_flow_abc": true, "__Host-sso_flow_abc": true, "__Secure-sso_flow_abc": true,
		"sso_session": false, "__Host-sso_session": false, "__Secure-sso_session": false,
		"app_sso_flow_abc": false, "__Host-other": false,
	} {
		if got := idp.IsFlowCookie(name); got != want {
			t.Errorf("IsFlowCookie(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestSignInFlowIDApart: a SAML sign-in's flow ID can never be a SAML
// logout's ("saml/<name>/logout/<relay state>", idp/saml), whatever
// RelayState the ACS is posted, so a logout's flow cookie is never taken
// for a sign-in's; nor is one protocol's or IdP's taken for another's.
func TestSignInFlowIDApart(t *testing.T) {
	for _, key := range []string{"r", "logout/r", "/logout/r", "login/r"} {
		if id := idp.SignInFlowID(idp.ProtocolSAML, "corp", key); strings.HasPrefix(id, "saml/corp/logout/") {
			t.Errorf("sign-in flow ID %q (RelayState %q) has a logout's form", id, key)
		}
	}
	ids := map[string]bool{}
	for _, id := range []string{
		idp.SignInFlowID(idp.ProtocolSAML, "corp", "k"), idp.SignInFlowID(idp.ProtocolOIDC, "corp", "k"),
		idp.SignInFlowID(idp.ProtocolSAML, "other", "k"), idp.SignInFlowID(idp.ProtocolOIDC, "other", "k"),
	} {
		if ids[id] {
			t.Errorf("flow ID %q given twice", id)
		}
		ids[id] = true
	}
}

// TestCheckName: an IdP's name is a segment of its endpoint paths, so
// each thing a URL path would resolve away or split on is refused, and the
// error gives examples of names that work.
func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"okta": true, "entra-prod": true, "corp_saml": true, "a.b": true, "...": true, "ÿkta": true,
		"": false, ".": false, "..": false, "a/b": false, `a\b`: false, "a?b": false, "a#b": false,
		"a%2Fb": false, "a b": false, "a\tb": false, "a\u00a0b": false, "a\x00b": false, "a\x7fb": false,
	} {
		err := idp.CheckName(name)
		if ok != (err == nil) {
			t.Errorf("CheckName(%q) = %v, want accepted=%v", name, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "such as okta, entra-prod, corp_saml") {
			t.Errorf("CheckName(%q): %v gives no example", name, err)
		}
	}
}

// TestCheckURLRefuses: what comes from an IdP's URL decides whose
// signatures are trusted, so only an absolute https URL (plain http on
// loopback) without fragment or credentials is taken; the error says why.
func TestCheckURLRefuses(t *testing.T) {
	for raw, want := range map[string]string{
		"https://idp.example.com/#frag":      "without fragment or credentials",
		"https://user:pw@idp.example.com/":   "without fragment or credentials",
		"https://user@idp.example.com/":      "without fragment or credentials",
		"/realms/corp":                       "without fragment or credentials",
		"http://idp.example.com/":            "must be https (plain http is allowed only for loopback hosts)",
		"http://10.0.0.1:8080/":              "must be https",
		"ftp://idp.example.com/":             "scheme must be https",
		"http://localhost.example.com:8080/": "must be https",
	} {
		if _, err := idp.CheckURL(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckURL(%q) = %v, want an error saying %q", raw, err, want)
		}
	}
	for _, ok := range []string{"https://idp.example.com/realms/corp", "http://localhost:8080/", "http://127.0.0.1/", "http://[::1]:9000/x"} {
		if _, err := idp.CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q): %v", ok, err)
		}
	}
}

// TestBlank: a list setting's value of white space alone is blank.
func TestBlank(t *testing.T) {
	for v, want := range map[string]bool{"": true, " ": true, "\t\n": true, "a": false, " a ": false} {
		if got := idp.Blank(v); got != want {
			t.Errorf("Blank(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestParseOrigin: a configured origin is scheme://host[:port] only, as
// browsers write it (lower case, an internationalized name as its
// A-label, without the scheme's default port), so redirect URIs built on
// it are the ones registered at the IdP and the site's own forms are
// same-origin.
func TestParseOrigin(t *testing.T) {
	for raw, want := range map[string]string{
		"https://App.Example.COM":          "https://app.example.com",
		"https://app.example.com:443/":     "https://app.example.com",
		"https://app.example.com:8443":     "https://app.example.com:8443",
		"http://localhost:80":              "http://localhost",
		"http://127.0.0.1:8080":            "http://127.0.0.1:8080",
		"https://app.example.com:80":       "https://app.example.com:80",
		"http://LOCALHOST:443":             "http://localhost:443",
		"https://[::1]:443":                "https://[::1]",
		"https://app.example.com/":         "https://app.example.com",
		"https://app.example.com/app":      "",
		"https://app.example.com/?x=1":     "",
		"https://app.example.com?x=1":      "",
		"http://app.example.com":           "",
		"https://app.example.com/#section": "",
		"https://bücher.example":           "https://xn--bcher-kva.example",
		"https://BÜCHER.example:443":       "https://xn--bcher-kva.example",
		"https://bücher.example:8443/":     "https://xn--bcher-kva.example:8443",
		"https://xn--bcher-kva.example":    "https://xn--bcher-kva.example",
		"https://a\u200db.example":         "",
	} {
		o, err := idp.ParseOrigin(raw)
		if want == "" {
			if err == nil {
				t.Errorf("ParseOrigin(%q) = %v, want an error", raw, o)
			}
			continue
		}
		if err != nil || o.String() != want {
			t.Errorf("ParseOrigin(%q) = %v, %v; want %s", raw, o, err, want)
		}
	}
}

// TestOriginSecure: cookies are Secure everywhere but on a plain-http
// loopback site, whose clients would drop them; a plain-http site on
// another host sits behind a TLS proxy. Without an origin attached, a
// request's own TLS decides.
func TestOriginSecure(t *testing.T) {
	for o, want := range map[idp.Origin]bool{
		{Scheme: "https", Host: "app.example.com"}: true,
		{Scheme: "https", Host: "localhost:8443"}:  true,
		{Scheme: "http", Host: "app.example.com"}:  true,
		{Scheme: "http", Host: "127.0.0.1:8080"}:   false,
		{Scheme: "http", Host: "LOCALHOST"}:        false,
	} {
		if got := o.Secure(); got != want {
			t.Errorf("%v.Secure() = %v, want %v", o, got, want)
		}
	}
	plain := httptest.NewRequest("GET", "http://127.0.0.1:8080/", nil)
	if o := idp.RequestOrigin(plain); o.String() != "http://127.0.0.1:8080" || idp.SecureRequest(plain) {
		t.Errorf("a plain-http loopback request: %v, secure %v", o, idp.SecureRequest(plain))
	}
	tlsReq := httptest.NewRequest("GET", "https://127.0.0.1:8443/", nil)
	if o := idp.RequestOrigin(tlsReq); o.Scheme != "https" || !idp.SecureRequest(tlsReq) {
		t.Errorf("a TLS request: %v", o)
	}
	// The handler's origin (a trusted proxy's X-Forwarded-Proto) wins.
	behind := idp.WithOrigin(plain, idp.Origin{Scheme: "https", Host: "app.example.com"})
	if o := idp.RequestOrigin(behind); o.String() != "https://app.example.com" || !idp.SecureRequest(behind) {
		t.Errorf("the attached origin was not used: %v", o)
	}
}

// TestLoginErrorText: the log line says whether a sign-in failed or a
// logout message was refused, with the code and the detail; ErrorCode
// finds the code through wrapping.
func TestLoginErrorText(t *testing.T) {
	detail := errors.New("bad signature")
	for err, want := range map[error]string{
		idp.Fail("saml_signature_invalid", detail):         "login failed: saml_signature_invalid: bad signature",
		idp.Fail("state_missing", nil):                     "login failed: state_missing",
		idp.FailLogout("logout_token_invalid", detail):     "logout refused: logout_token_invalid: bad signature",
		&idp.LoginError{Code: "slo_unknown", Logout: true}: "logout refused: slo_unknown",
	} {
		if err.Error() != want {
			t.Errorf("%q, want %q", err.Error(), want)
		}
	}
	if !errors.Is(idp.Fail("x", detail), detail) {
		t.Error("a LoginError does not unwrap to its detail")
	}
	wrapped := fmt.Errorf("callback: %w", idp.FailLogout("logout_token_invalid", nil))
	if got := idp.ErrorCode(wrapped, "fallback"); got != "logout_token_invalid" {
		t.Errorf("ErrorCode = %q", got)
	}
	if got := idp.ErrorCode(detail, "login_failed"); got != "login_failed" {
		t.Errorf("ErrorCode without a LoginError = %q", got)
	}
}

// TestAssertionAttributes: the attribute names an error page lists come
// sorted (a stable page for an IdP admin), and First skips empty values.
func TestAssertionAttributes(t *testing.T) {
	a := &idp.Assertion{Attributes: map[string][]string{
		"groups": {"", "admins"}, "email": {"a@example.com"}, "name": {""}, "Zeta": nil, "given": {"A"},
	}}
	if got, want := strings.Join(a.AttributeNames(), ","), "Zeta,email,given,groups,name"; got != want {
		t.Errorf("AttributeNames = %s, want %s", got, want)
	}
	for name, want := range map[string]string{"groups": "admins", "email": "a@example.com", "name": "", "absent": ""} {
		if got := a.First(name); got != want {
			t.Errorf("First(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestUntrustedCertificate: each way a certificate fails to verify gets
// the operator's fix, once however often it is worded, with the failing
// request's own text after it; any other error gets none.
func TestUntrustedCertificate(t *testing.T) {
	cert := &x509.Certificate{}
	urlErr := func(err error) error {
		return &url.Error{Op: "Get", URL: "https://idp.example.com/jwks", Err: err}
	}
	for name, cause := range map[string]error{
		"unknown authority": x509.UnknownAuthorityError{Cert: cert},
		"expired":           x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired},
		"other name":        x509.HostnameError{Certificate: cert, Host: "idp.example.com"},
		"tls verification":  &tls.CertificateVerificationError{Err: errors.New("chain too long")},
	} {
		err := idp.UntrustedCertificate(urlErr(cause))
		if err == nil {
			t.Errorf("%s: no fix given", name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, idp.UntrustedCertificateFix+": ") || !strings.Contains(msg, "https://idp.example.com/jwks") {
			t.Errorf("%s: %q", name, msg)
		}
		if again := idp.UntrustedCertificate(fmt.Errorf("refresh: %w", err)); again == nil || strings.Count(again.Error(), idp.UntrustedCertificateFix) != 1 {
			t.Errorf("%s: worded again: %v", name, again)
		}
	}
	for _, other := range []error{nil, urlErr(errors.New("connection refused")), errors.New("EOF")} {
		if err := idp.UntrustedCertificate(other); err != nil {
			t.Errorf("UntrustedCertificate(%v) = %v, want nil", other, err)
		}
	}
}

// TestWritePostFormPolicy: the page that carries a signed message or a
// token runs nothing but its own script, loads nothing, has no base URL to
// move its form's action, and cannot be framed.
func TestWritePostFormPolicy(t *testing.T) {
	rec := httptest.NewRecorder()
	idp.WritePostForm(rec, idp.PostForm("https://idp.example/sso", idp.FormField{Name: "SAMLRequest", Value: "x"}))
	csp := rec.Header().Get("Content-Security-Policy")
	want := regexp.MustCompile(`^default-src 'none'; script-src 'nonce-[A-Za-z0-9]{20,}'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'$`)
	if !want.MatchString(csp) {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if body := rec.Body.String(); !strings.Contains(body, `<input type="hidden" name="SAMLRequest" value="x">`) {
		t.Errorf("the field is not a hidden input:\n%s", body)
	}
}
