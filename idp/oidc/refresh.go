package oidc

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/caddy-sso/caddy-sso/idp"
)

// expiry is when an access token the token endpoint just issued expires,
// on this package's clock; zero when the IdP did not say (expires_in is
// optional in OAuth 2.0).
func (p *Provider) expiry(tok *oauth2.Token) time.Time {
	if tok.ExpiresIn > 0 {
		return p.cfg.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	return tok.Expiry
}

// Refresh renews t at the token endpoint with its refresh token (OAuth 2.0
// grant_type=refresh_token, RFC 6749 6) and returns the whole new set: the
// new access token and its expiry, the new refresh token when the IdP
// rotated it (else t's), and the new ID token when the IdP sent one (else
// t's).
//
// A new ID token is verified as OpenID Connect Core 12.2 requires: signed
// by the IdP with an allowed algorithm, not expired, and with the same
// iss, sub, aud and azp as the session's (and the same auth_time and nonce
// when it carries them). A refresh the IdP refuses with invalid_grant (the
// grant was revoked or the refresh token already used), or whose ID token
// is about another subject or for another client, wraps
// idp.ErrGrantRevoked: the session must end. Any other error is passing
// (the IdP unreachable) and names no token.
//
// A new ID token refused for a passing reason (its signature does not
// verify, say while the IdP's new signing key cannot be fetched yet; it is
// expired or issued in the future by the clocks' skew; its at_hash does not
// match) does not undo the refresh: the token endpoint has issued the new
// access token and, with rotation, a new refresh token and retired t's,
// so losing them would lose the grant. Refresh then returns both: the new
// tokens with t's ID token in place of the refused one, and the error
// saying why it was refused. The caller keeps the tokens and reports the
// error. The access token is as trustworthy as any refreshed one: the
// token endpoint gave it to this client's credentials over TLS, and an ID
// token is not what vouches for it.
func (p *Provider) Refresh(ctx context.Context, t *idp.Tokens) (*idp.Tokens, error) {
	if t == nil || t.RefreshToken == "" {
		return nil, fmt.Errorf("oidc idp %q: refresh: no refresh token", p.cfg.Name)
	}
	md, err := p.disc.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("oidc idp %q: refresh: %w", p.cfg.Name, err)
	}
	src := p.oauth2Config(md, "").TokenSource(context.WithValue(ctx, oauth2.HTTPClient, p.tokenClient),
		&oauth2.Token{RefreshToken: t.RefreshToken})
	tok, err := src.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return nil, fmt.Errorf("oidc idp %q: refresh refused (invalid_grant %.200q): %w", p.cfg.Name, re.ErrorDescription, idp.ErrGrantRevoked)
		}
		// Every other failure, an outage (idpUnavailable) or not, is
		// passing: the session keeps its grant.
		return nil, fmt.Errorf("oidc idp %q: refresh: %w", p.cfg.Name, tokenFailure(err))
	}
	out := &idp.Tokens{IDToken: t.IDToken, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: p.expiry(tok)}
	if out.RefreshToken == "" {
		out.RefreshToken = t.RefreshToken // not rotated
	}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		err := p.verifyRefreshedIDToken(ctx, raw, t.IDToken, tok.AccessToken)
		switch {
		case errors.Is(err, idp.ErrGrantRevoked):
			return nil, fmt.Errorf("oidc idp %q: refreshed ID token: %w", p.cfg.Name, err)
		case err != nil:
			// out keeps t's ID token: the refused one is neither passed
			// on nor the reference of the next refresh's checks.
			return out, fmt.Errorf("oidc idp %q: refreshed ID token refused (the new access and refresh tokens are kept, with the session's ID token): %w", p.cfg.Name, err)
		}
		out.IDToken = raw
	}
	return out, nil
}

// verifyRefreshedIDToken checks an ID token from a refresh against the
// session's original one (OpenID Connect Core 12.2). The original was
// verified at sign-in and has been kept sealed since, so its claims are
// read without verifying it again. A claim that names another subject or
// client wraps idp.ErrGrantRevoked; those are checked before anything that
// may fail for a passing reason but the signature.
func (p *Provider) verifyRefreshedIDToken(ctx context.Context, raw, original, accessToken string) error {
	orig, err := unverifiedClaims(original)
	if err != nil {
		return fmt.Errorf("the session's ID token: %w", err)
	}
	jws, err := p.keys.parse(raw)
	var payload []byte
	if err == nil {
		payload, err = p.keys.verify(ctx, jws)
	}
	if err != nil {
		// Unverified, the token's claims still decide whether the
		// answer is about someone else, which ends the session (the
		// cautious outcome, whatever the signature) rather than keep its
		// access token; claims that do not even read end it too.
		claims, cerr := unverifiedClaims(raw)
		if cerr == nil {
			cerr = p.sameGrant(claims, orig)
		}
		if cerr != nil {
			return fmt.Errorf("%v, and its claims: %w", err, errors.Join(cerr, idp.ErrGrantRevoked))
		}
		return err
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return err
	}
	if err := p.sameGrant(claims, orig); err != nil {
		return err
	}
	now, skew := p.cfg.Now(), p.cfg.ClockSkew
	exp, ok := numericDate(claims["exp"])
	if !ok || !now.Before(exp.Add(skew)) {
		return errors.New("expired, or exp missing")
	}
	// No age bound on iat (maxIDTokenAge), and no email_verified rule
	// (AllowUnverifiedEmail): a refreshed token changes neither who the
	// session is nor its email, both the sign-in's, and refusing it would
	// only pass the session's older ID token on in its place.
	if iat, ok := numericDate(claims["iat"]); !ok || iat.After(now.Add(skew)) {
		return errors.New("iat missing or in the future")
	}
	if atHash, present := claims["at_hash"]; present {
		if err := checkHalfHash(jws.Signatures[0].Header.Algorithm, "at_hash", atHash, accessToken); err != nil {
			return err
		}
	}
	return nil
}

// sameGrant checks that a refreshed ID token's claims name the subject
// and client of the session's original ones (orig). The grant belongs to
// one subject and one client: a token that says otherwise ends the
// session (an error wrapping idp.ErrGrantRevoked) rather than changing who
// it is. verifyRefreshedIDToken runs it before the checks that fail for
// passing reasons (times, at_hash), after which Refresh keeps the new
// access token: a token about someone else ends the session even if it is
// expired, or unverifiable, too.
func (p *Provider) sameGrant(claims, orig map[string]any) error {
	same := func(name string) error {
		if scalarsEqual(claims[name], orig[name]) {
			return nil
		}
		return fmt.Errorf("%s differs from the session's ID token: %w", name, idp.ErrGrantRevoked)
	}
	if p.template != "" {
		// Multi-tenant: iss filled with the token's own tid, a tenant
		// still admitted, and the session's tenant (tid, hence iss,
		// below): a grant never moves to another tenant.
		if _, errIss, errTenant := p.tokenTenant(claims); errIss != nil || errTenant != nil {
			return fmt.Errorf("%w: %w", cmp.Or(errIss, errTenant), idp.ErrGrantRevoked)
		}
		for _, name := range []string{"tid", "iss"} {
			if err := same(name); err != nil {
				return err
			}
		}
	} else if iss, _ := claims["iss"].(string); !p.issuerMatches(iss) {
		return fmt.Errorf("iss %q, want %q: %w", iss, p.cfg.Issuer, idp.ErrGrantRevoked)
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return fmt.Errorf("sub missing: %w", idp.ErrGrantRevoked)
	}
	aud, ok := audience(claims["aud"])
	if !ok || !slices.Contains(aud, p.cfg.ClientID) {
		return fmt.Errorf("aud %q lacks the client ID: %w", aud, idp.ErrGrantRevoked)
	}
	for _, name := range []string{"sub", "aud", "azp"} {
		if err := same(name); err != nil {
			return err
		}
	}
	// auth_time and nonce may be left out of a refreshed token; when
	// present they must be the original's.
	for _, name := range []string{"auth_time", "nonce"} {
		if _, present := claims[name]; present {
			if err := same(name); err != nil {
				return err
			}
		}
	}
	if p.cfg.TenantID != "" {
		if tid, _ := claims["tid"].(string); !strings.EqualFold(tid, p.cfg.TenantID) {
			return fmt.Errorf("tid %q, want %q: %w", tid, p.cfg.TenantID, idp.ErrGrantRevoked)
		}
	}
	return nil
}

// unverifiedClaims decodes the claims of a JWS compact token without
// checking its signature: only for tokens this gateway verified itself
// and kept sealed since.
func unverifiedClaims(raw string) (map[string]any, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	return decodeClaims(payload)
}

// scalarsEqual compares two claim values as their flattened text, so that
// "aud" as a string equals a one-element array, and numbers compare by
// their digits.
func scalarsEqual(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return slices.Equal(flattenValue(a), flattenValue(b))
}
