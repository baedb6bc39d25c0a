package oidc

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

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
	// BackChannelLogout and FrontChannelLogout: the discovery document
	// says the IdP offers that logout channel.
	BackChannelLogout, FrontChannelLogout bool
	// IssuerErr, EndpointsErr and PKCEErr are what sign-in would refuse
	// the discovery document for, one per rule; nil: accepted.
	IssuerErr, EndpointsErr, PKCEErr error
	// SigningKeys counts the JWKS's keys that can verify an ID token.
	// JWKSErr says why the JWKS could not be used. Both stay zero when
	// the JWKS was not fetched (EndpointsErr then says why).
	SigningKeys int
	JWKSErr     error
}

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
	md, err := fetchMetadata(ctx, client, issuer)
	if err != nil {
		return r, err
	}
	r.Issuer, r.EndSessionEndpoint, r.JWKSURI = md.Issuer, md.EndSessionEndpoint, md.JWKSURI
	r.CodeChallengeMethods, r.IDTokenAlgs = md.CodeChallengeMethods, md.IDTokenAlgs
	r.BackChannelLogout, r.FrontChannelLogout = md.BackChannelLogout, md.FrontChannelLogout
	r.IssuerErr, r.EndpointsErr, r.PKCEErr = md.checkIssuer(issuer), md.checkEndpoints(), md.checkPKCE()
	if md.JWKSURI != "" && checkURL(md.JWKSURI, true) == nil {
		keys, err := fetchJWKS(ctx, client, md.JWKSURI)
		r.SigningKeys, r.JWKSErr = len(keys), err
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
