package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/caddy-sso/caddy-sso/idp"
)

// ProbeResult is what Probe found at an OpenID provider: what sign-in will
// meet there, and each rule sign-in applies to it, judged by the code
// sign-in runs.
type ProbeResult struct {
	DiscoveryURL         string
	Issuer               string // as the discovery document names it
	EndSessionEndpoint   string
	CodeChallengeMethods []string
	IDTokenAlgs          []string
	JWKSURI              string
	// TokenAuthMethods and ScopesSupported are the discovery document's
	// token_endpoint_auth_methods_supported and scopes_supported; empty:
	// the IdP says nothing.
	TokenAuthMethods, ScopesSupported []string
	// IssuerTemplate: the document's issuer is Microsoft Entra ID's
	// multi-tenant template (…/{tenantid}/…), which no token's iss equals.
	IssuerTemplate bool
	// BackChannelLogout and FrontChannelLogout: the discovery document
	// says the IdP offers that logout channel.
	BackChannelLogout, FrontChannelLogout bool
	// IssuerErr, EndpointsErr and PKCEErr are what sign-in would refuse
	// the discovery document for, one per rule; nil: accepted.
	IssuerErr, EndpointsErr, PKCEErr error
	// SigningKeys counts the JWKS's keys that can verify an ID token
	// under some algorithm (UsableKeys: under the allowed ones). JWKSErr
	// says why the JWKS could not be used. Both stay zero when the JWKS
	// was not fetched (EndpointsErr then says why).
	SigningKeys int
	JWKSErr     error
	keys        []jose.JSONWebKey
}

// MaxIDTokenAge is how long before the callback a sign-in's ID token may
// have been issued, clock_skew apart: an IdP clock further behind than
// that makes every sign-in fail with id_token_iat.
const MaxIDTokenAge = maxIDTokenAge

// Probe fetches the issuer's discovery document and JWKS as sign-in does
// and reports on them (`caddy sso check`). The error is for an issuer that
// sign-in would not even ask, or a discovery document that cannot be
// fetched or read; everything else is in the result.
func Probe(ctx context.Context, client *http.Client, issuer string) (*ProbeResult, error) {
	if err := checkURL(issuer, false); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	// As New does: the redirects the IdP answers with are held to the
	// rule its URLs are.
	client = idp.SafeRedirects(client)
	r := &ProbeResult{DiscoveryURL: wellKnown(issuer)}
	// fetchMetadata's request, reading also what only the check compares.
	var doc struct {
		metadata
		// Raw: sign-in never reads it, so a shape other than a list of
		// strings must not fail the check of a document sign-in takes;
		// it only leaves the scopes uncompared.
		ScopesSupported json.RawMessage `json:"scopes_supported"`
	}
	if err := getJSON(ctx, client, r.DiscoveryURL, &doc); err != nil {
		return r, fmt.Errorf("discovery: %w", err)
	}
	md := &doc.metadata
	r.Issuer, r.EndSessionEndpoint, r.JWKSURI = md.Issuer, md.EndSessionEndpoint, md.JWKSURI
	r.CodeChallengeMethods, r.IDTokenAlgs = md.CodeChallengeMethods, md.IDTokenAlgs
	r.TokenAuthMethods = md.TokenAuthMethods
	_ = json.Unmarshal(doc.ScopesSupported, &r.ScopesSupported) // see doc
	r.IssuerTemplate = strings.Contains(md.Issuer, tenantPlaceholder)
	r.BackChannelLogout, r.FrontChannelLogout = md.BackChannelLogout, md.FrontChannelLogout
	r.IssuerErr, r.EndpointsErr, r.PKCEErr = md.checkIssuer(issuer), md.checkEndpoints(issuer), md.checkPKCE()
	if md.JWKSURI != "" && checkEndpointURL(md.JWKSURI, issuer) == nil {
		r.keys, r.JWKSErr = fetchJWKS(ctx, client, md.JWKSURI)
		r.SigningKeys = len(r.keys)
	}
	return r, nil
}

// AlgorithmsErr reports an ID-token signature allow-list (empty: the
// default) that shares no algorithm with those the IdP says it signs with.
// An IdP that says nothing is given the benefit of the doubt.
func (r *ProbeResult) AlgorithmsErr(allowed []string) error {
	if len(allowed) == 0 {
		allowed = defaultAlgorithms
	}
	if len(r.IDTokenAlgs) == 0 || slices.ContainsFunc(allowed, func(a string) bool { return slices.Contains(r.IDTokenAlgs, a) }) {
		return nil
	}
	return fmt.Errorf("no accepted ID-token algorithm (%s) among the IdP's (%s)", strings.Join(allowed, ", "), strings.Join(r.IDTokenAlgs, ", "))
}

// UsableKeys counts the JWKS's keys that can verify an ID token signed
// with one of the allowed algorithms (empty: the default), as keySet
// verifies one: the key's type fits the algorithm (RSA for RS* and PS*,
// EC on the algorithm's curve for ES*, Ed25519 for EdDSA), and its alg,
// when it names one, is that algorithm.
func (r *ProbeResult) UsableKeys(allowed []string) int {
	if len(allowed) == 0 {
		allowed = defaultAlgorithms
	}
	n := 0
	for _, k := range r.keys {
		if slices.ContainsFunc(allowed, func(a string) bool { return keyVerifies(k, a) }) {
			n++
		}
	}
	return n
}

// KeysErr reports a JWKS that holds signing keys, none of which can verify
// an ID token signed with an allowed algorithm (UsableKeys), so that no
// sign-in can succeed. An allowed HS* algorithm needs no JWKS key: the
// client secret keys it.
func (r *ProbeResult) KeysErr(allowed []string) error {
	if len(allowed) == 0 {
		allowed = defaultAlgorithms
	}
	if len(r.keys) == 0 || r.UsableKeys(allowed) > 0 || slices.ContainsFunc(allowed, func(a string) bool { return strings.HasPrefix(a, "HS") }) {
		return nil
	}
	return fmt.Errorf("holds no key for an accepted ID-token algorithm (%s): its keys are %s", strings.Join(allowed, ", "), strings.Join(r.KeyTypes(), ", "))
}

// KeyTypes describes the JWKS's signing keys ("RSA", "EC P-256 (alg
// ES256)"…), for a finding that says why none fits.
func (r *ProbeResult) KeyTypes() []string {
	var out []string
	for _, k := range r.keys {
		t := keyType(k.Key)
		if k.Algorithm != "" {
			t += " (alg " + k.Algorithm + ")"
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func keyType(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "OKP Ed25519"
	}
	return fmt.Sprintf("%T", key)
}

// keyVerifies reports whether k can verify a signature of algorithm alg.
func keyVerifies(k jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		return curve != nil && key.Curve == curve
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// TokenAuth is how sign-in will authenticate at the token endpoint, for
// the token_auth setting and a client secret (set or not) of cfg:
// "client_secret_basic", "client_secret_post", or "none" for a public
// client. It is the choice the code exchange makes (oauth2Config), made
// by that code.
func (r *ProbeResult) TokenAuth(cfg Config) string {
	p := &Provider{cfg: Config{TokenAuth: cfg.TokenAuth, ClientSecret: cfg.ClientSecret}}
	switch {
	case cfg.ClientSecret == "":
		return "none"
	case p.oauth2Config(&metadata{TokenAuthMethods: r.TokenAuthMethods}, "").Endpoint.AuthStyle == oauth2.AuthStyleInParams:
		return "client_secret_post"
	}
	return "client_secret_basic"
}

// MissingScopes are the scopes sign-in asks for under cfg (its defaults
// and offline_access, as New sets them) that the IdP's scopes_supported,
// when it lists any, does not: standard, those OpenID Connect itself
// defines (StandardScope), which an IdP lists when it offers them, so one
// missing is likely refused (Google and offline_access); other, the rest,
// which IdPs commonly leave out though they accept them (an API's scope
// at Microsoft Entra ID, api://<app-id>/<scope> or Microsoft Graph's
// User.Read, which docs/entra-oidc.md recommends; a scope an Okta custom
// authorization server does not publish in its metadata).
func (r *ProbeResult) MissingScopes(cfg Config) (standard, other []string) {
	if len(r.ScopesSupported) == 0 {
		return nil, nil
	}
	// normalize is the rule; the fields it holds to theirs are given
	// values that pass, as this compares only the scopes.
	c := Config{Name: "probe", Issuer: "https://probe.invalid", ClientID: "probe", Scopes: cfg.Scopes, OfflineAccess: cfg.OfflineAccess}
	if normalize(&c) != nil {
		return nil, nil // scopes New refuses: the configuration's error says so
	}
	for _, s := range c.Scopes {
		switch {
		case slices.Contains(r.ScopesSupported, s):
		case StandardScope(s):
			standard = append(standard, s)
		default:
			other = append(other, s)
		}
	}
	return standard, other
}

// StandardScope reports whether scope is one OpenID Connect Core defines
// (openid; profile, email, address and phone, §5.4; offline_access,
// §11).
func StandardScope(scope string) bool {
	switch scope {
	case "openid", "profile", "email", "address", "phone", scopeOfflineAccess:
		return true
	}
	return false
}
