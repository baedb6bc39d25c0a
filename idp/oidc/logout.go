package oidc

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sso/caddy-sso/idp"
)

// The logout endpoints' names under the IdP's base URL (see idp.Provider):
// register base + BackChannelLogoutEndpoint as the back-channel logout URI
// (Okta, PingOne) and base + FrontChannelLogoutEndpoint as the front-channel
// logout URL (Entra ID).
const (
	BackChannelLogoutEndpoint  = "backchannel-logout"
	FrontChannelLogoutEndpoint = "frontchannel-logout"
)

// Endpoints are the endpoints ServeEndpoint serves, with what the IdP's
// registration calls each: the one list by which the gateway labels their
// metrics and caddy sso check lists the URLs to register.
func Endpoints() []idp.Endpoint {
	return []idp.Endpoint{
		{Name: BackChannelLogoutEndpoint, Field: "Back-channel logout URI"},
		{Name: FrontChannelLogoutEndpoint, Field: "Front-channel logout URL"},
	}
}

// Codes of refused logout messages (*idp.LoginError with Logout set). Like
// the sign-in codes they are stable, and the log names them.
const (
	CodeLogoutTokenMissing  = "logout_token_missing"     // no (or several) logout_token in the POST
	CodeLogoutTokenInvalid  = "logout_token_invalid"     // malformed, encrypted, alg not allowed, or a bad signature
	CodeLogoutTokenType     = "logout_token_type"        // a typ header other than logout+jwt (or JWT)
	CodeLogoutTokenIssuer   = "logout_token_issuer"      // iss is not the issuer
	CodeLogoutTokenAudience = "logout_token_audience"    // aud lacks the client ID, or azp names another client
	CodeLogoutTokenIssuedAt = "logout_token_iat"         // iat missing, or further than the clock skew from now
	CodeLogoutTokenExpired  = "logout_token_expired"     // exp passed
	CodeLogoutTokenEvent    = "logout_token_event"       // no back-channel logout event in "events"
	CodeLogoutTokenNonce    = "logout_token_nonce"       // carries a nonce, which only ID tokens may
	CodeLogoutTokenSubject  = "logout_token_subject"     // neither sub nor sid (or an oversized one)
	CodeLogoutTokenJTI      = "logout_token_jti"         // no jti, or an oversized one
	CodeLogoutTokenReplayed = "logout_token_replayed"    // this jti was used before
	CodeLogoutFailed        = "oidc_logout_failed"       // the sessions could not be ended (store)
	CodeFrontChannelIssuer  = "frontchannel_issuer"      // iss given and not the issuer
	CodeFrontChannelSID     = "frontchannel_sid_missing" // no sid: the message names no session
)

const (
	// backChannelEvent is the member of a logout token's "events" claim
	// that makes it one (OpenID Connect Back-Channel Logout 1.0, 2.4).
	backChannelEvent = "http://schemas.openid.net/event/backchannel-logout"
	// logoutReplayKind is the single-use namespace of logout token jti.
	logoutReplayKind = "oidc_logout_jti"
	// maxLogoutForm bounds the back-channel POST body: a logout token is
	// a few hundred bytes, a kilobyte or two with a large key ID.
	maxLogoutForm = 64 << 10
	// maxLogoutID bounds jti, sub and sid, which become store keys.
	maxLogoutID = 512
)

// ServeEndpoint serves the logout endpoints the IdP calls, those Endpoints
// lists (the callback, idp.OIDCCallbackEndpoint, is Callback's):
//
//   - backchannel-logout (OpenID Connect Back-Channel Logout 1.0): the IdP
//     POSTs a signed logout token server to server. It is answered here,
//     for the IdP rather than a person: 200 once the named sessions have
//     ended, 400 with a JSON error (RFC 6749 5.2) when the token is
//     refused, having changed nothing; each with Cache-Control: no-store.
//   - frontchannel-logout (OpenID Connect Front-Channel Logout 1.0): the
//     IdP's logout page loads it in an iframe with the session's sid (and
//     iss). It is answered with a small page that may be framed; a refused
//     request is a *idp.LoginError with Logout set, nothing written.
//
// Every other name is idp.ErrNoEndpoint.
func (p *Provider) ServeEndpoint(w http.ResponseWriter, r *http.Request, _, name string) error {
	if p.rt.Sessions == nil {
		return idp.ErrNoEndpoint // started without the means to end sessions
	}
	switch name {
	case BackChannelLogoutEndpoint:
		p.serveBackChannelLogout(w, r)
		return nil
	case FrontChannelLogoutEndpoint:
		return p.serveFrontChannelLogout(w, r)
	}
	return idp.ErrNoEndpoint
}

// serveBackChannelLogout verifies the logout token, and ends exactly the
// sessions it names, on every instance (idp.Runtime.Sessions ends them in
// the store, which all instances share), using its jti up in the same
// transaction: a replay ends nothing, and a logout whose sessions could
// not be ended can be sent again.
func (p *Provider) serveBackChannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeLogoutError(w, http.StatusMethodNotAllowed, "invalid_request", "back-channel logout takes POST")
		return
	}
	ctx := r.Context()
	lt, err := p.readLogoutToken(ctx, w, r)
	if pending := (*keysPendingError)(nil); errors.As(err, &pending) {
		// Signed under a key the JWKS fetched last lacks, which may not
		// be fetched again yet: possibly the IdP's new key, and the
		// fetch spent by anyone's token just before. Not refused as
		// forged (a 400 the IdP does not retry would leave the session
		// signed in): 503, retried after Retry-After, when the fetch is
		// allowed again; the jti is not used up. Anyone can POST a
		// made-up kid here: one line a minute, as for an outage.
		p.refusals.Warn(p.cfg.Logger, "unchecked/"+p.cfg.Name+"/"+CodeSigningKeyPending, p.cfg.Now(),
			"back-channel logout: the logout token could not be checked",
			zap.String("idp", p.cfg.Name), zap.String("reason", CodeSigningKeyPending), zap.Error(err))
		// Whole seconds, rounded up: a retry a moment early would meet the limit again.
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((pending.retryIn+time.Second-1)/time.Second))))
		writeLogoutError(w, http.StatusServiceUnavailable, "temporarily_unavailable", CodeSigningKeyPending)
		return
	}
	if err != nil {
		var le *idp.LoginError
		if errors.As(err, &le) && le.Code != CodeIdPUnavailable && le.Code != idp.CodeMisconfigured {
			p.refused(le)
			writeLogoutError(w, http.StatusBadRequest, "invalid_request", le.Code)
			return
		}
		// The IdP's discovery or keys could not be had (an outage, or
		// a certificate or document refused here until an administrator
		// acts): not the token's fault, and the IdP may try again, as
		// it does after a 500. Anyone can POST a made-up token here, each
		// of which meets the outage unchecked: one ERROR line a minute
		// per IdP and reason, the rest at DEBUG, as sign-in's own
		// outage lines (docs/security.md, "Unauthenticated traffic").
		reason := idp.ErrorCode(err, CodeIdPUnavailable)
		p.refusals.Error(p.cfg.Logger, "unchecked/"+p.cfg.Name+"/"+reason, p.cfg.Now(), "back-channel logout: the logout token could not be checked",
			zap.String("idp", p.cfg.Name), zap.String("reason", reason), zap.Error(err))
		writeLogoutError(w, http.StatusInternalServerError, "server_error", reason)
		return
	}
	n, err := p.rt.Sessions.EndSessions(ctx, p.cfg.Name, lt.subject, []string{lt.sessionID}, p.logoutTokenOnce(lt))
	if err != nil {
		var le *idp.LoginError
		if errors.As(err, &le) {
			p.refused(le)
			writeLogoutError(w, http.StatusBadRequest, "invalid_request", le.Code)
			return
		}
		// The store failed: the jti was not used up, so the IdP's retry
		// ends the sessions.
		p.cfg.Logger.Error("back-channel logout: ending the sessions failed", zap.String("idp", p.cfg.Name),
			zap.String("reason", CodeLogoutFailed), zap.Error(err))
		writeLogoutError(w, http.StatusInternalServerError, "server_error", CodeLogoutFailed)
		return
	}
	p.cfg.Logger.Info("back-channel logout", zap.String("idp", p.cfg.Name), zap.Int("sessions_ended", n))
	w.WriteHeader(http.StatusOK)
}

// asLogout makes a sign-in error (discoveryFailed, fetchFailed) a logout
// message's, with its code, so that a logout token the IdP's discovery or
// keys left unchecked gets sign-in's code for the same failure.
func asLogout(err error) error {
	if le := (*idp.LoginError)(nil); errors.As(err, &le) {
		return idp.FailLogout(le.Code, le.Err)
	}
	return err
}

// writeLogoutError is the JSON error body of OAuth 2.0 (RFC 6749 5.2),
// which Back-Channel Logout 1.0 (2.8) allows in a 400. The description is
// the reference code alone: the details go to the log.
func writeLogoutError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc}) //nolint:errcheck // the IdP went away
}

// logoutToken is what a verified logout token says.
type logoutToken struct {
	subject, sessionID, jti string
	issuedAt                time.Time
}

// readLogoutToken takes the logout_token of a back-channel POST and
// verifies it (verifyLogoutToken).
func (p *Provider) readLogoutToken(ctx context.Context, w http.ResponseWriter, r *http.Request) (*logoutToken, error) {
	if err := idp.ReadForm(w, r, maxLogoutForm); err != nil {
		return nil, idp.FailLogout(CodeLogoutTokenMissing, err)
	}
	if v := r.PostForm["logout_token"]; len(v) != 1 || v[0] == "" {
		return nil, idp.FailLogout(CodeLogoutTokenMissing, fmt.Errorf("%d logout_token fields", len(v)))
	}
	return p.verifyLogoutToken(ctx, r.PostForm.Get("logout_token"))
}

// verifyLogoutToken makes every check of OpenID Connect Back-Channel
// Logout 1.0, 2.6, each with its own code: the signature as for an ID
// token (the IdP's keys, the algorithm allow-list, never "none"), iss, aud
// (and azp), iat within the clock skew of now, exp when present, the
// back-channel logout event, no nonce, sub and/or sid, and a jti (made
// single-use by the caller).
func (p *Provider) verifyLogoutToken(ctx context.Context, raw string) (*logoutToken, error) {
	fail := idp.FailLogout
	if strings.Count(raw, ".") != 2 {
		// Five parts would be a JWE: encrypted logout tokens are not
		// supported (nor are encrypted ID tokens).
		return nil, fail(CodeLogoutTokenInvalid, errors.New("not a signed JWT (JWS compact serialization)"))
	}
	jws, err := p.keys.parse(raw)
	if err != nil {
		return nil, fail(CodeLogoutTokenInvalid, err)
	}
	// Discovery names the JWKS (a logout may be the first message since
	// a restart).
	if _, err := p.disc.get(ctx); err != nil {
		return nil, asLogout(discoveryFailed(err))
	}
	// 2.4: logout tokens should be typed logout+jwt, so that no other
	// kind of JWT the IdP signs (an ID token, an access token) can pass
	// for one; IdPs that predate it send JWT or nothing.
	if typ, present := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType]; present {
		s, _ := typ.(string)
		if !slices.Contains([]string{"logout+jwt", "application/logout+jwt", "JWT"}, s) {
			return nil, fail(CodeLogoutTokenType, fmt.Errorf("typ %q", s))
		}
	}
	payload, err := p.keys.verify(ctx, jws)
	if errors.Is(err, errKeysUnavailable) {
		return nil, asLogout(fetchFailed(err, CodeIdPUnavailable))
	}
	if errors.Is(err, errRefreshLimited) {
		return nil, fail(CodeSigningKeyPending, err)
	}
	if err != nil {
		return nil, fail(CodeLogoutTokenInvalid, err)
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, fail(CodeLogoutTokenInvalid, fmt.Errorf("claims: %w", err))
	}
	now, skew, clientID := p.cfg.Now(), p.cfg.ClockSkew, p.cfg.ClientID
	tid := ""
	if p.template != "" {
		// Multi-tenant: the issuer of the token's own tid, a tenant
		// admitted; it names sessions by "<tid>/<sub>", as sign-in
		// recorded them.
		var errIss, errTenant error
		if tid, errIss, errTenant = p.tokenTenant(claims); errIss != nil || errTenant != nil {
			return nil, fail(CodeLogoutTokenIssuer, cmp.Or(errIss, errTenant))
		}
	} else if iss, _ := claims["iss"].(string); iss != p.cfg.Issuer {
		return nil, fail(CodeLogoutTokenIssuer, fmt.Errorf("iss %q, want %q", iss, p.cfg.Issuer))
	}
	aud, ok := audience(claims["aud"])
	if !ok || !slices.Contains(aud, clientID) {
		return nil, fail(CodeLogoutTokenAudience, fmt.Errorf("aud %q does not contain the client ID", aud))
	}
	if azp, present := claims["azp"]; present || len(aud) > 1 {
		if s, _ := azp.(string); s != clientID {
			return nil, fail(CodeLogoutTokenAudience, fmt.Errorf("azp %v is not the client ID (aud %q)", azp, aud))
		}
	}
	iat, ok := numericDate(claims["iat"])
	if !ok {
		return nil, fail(CodeLogoutTokenIssuedAt, errors.New("iat missing or not a number"))
	}
	if d := now.Sub(iat); d > skew || d < -skew {
		return nil, fail(CodeLogoutTokenIssuedAt, fmt.Errorf("issued at %v, more than %v from now (%v)", iat, skew, now))
	}
	if v, present := claims["exp"]; present {
		if exp, ok := numericDate(v); !ok || !now.Before(exp.Add(skew)) {
			return nil, fail(CodeLogoutTokenExpired, fmt.Errorf("exp %v passed (now %v)", v, now))
		}
	}
	events, _ := claims["events"].(map[string]any)
	if _, ok := events[backChannelEvent].(map[string]any); !ok {
		return nil, fail(CodeLogoutTokenEvent, errors.New("events lacks "+backChannelEvent))
	}
	if _, present := claims["nonce"]; present {
		// 2.4: forbidden, so that an ID token can never pass for a
		// logout token.
		return nil, fail(CodeLogoutTokenNonce, errors.New("a logout token must not carry a nonce"))
	}
	sub, _ := claims["sub"].(string)
	sid, _ := claims["sid"].(string)
	if sub == "" && sid == "" || len(sub) > maxLogoutID || len(sid) > maxLogoutID {
		return nil, fail(CodeLogoutTokenSubject, errors.New("neither sub nor sid (or one too long)"))
	}
	jti, _ := claims["jti"].(string)
	if jti == "" || len(jti) > maxLogoutID {
		return nil, fail(CodeLogoutTokenJTI, errors.New("jti missing or too long"))
	}
	if tid != "" && sub != "" {
		sub = tenantKey(tid, sub)
	}
	return &logoutToken{subject: sub, sessionID: sid, jti: jti, issuedAt: iat}, nil
}

// logoutTokenOnce makes the token's jti single-use, across restarts and
// instances (the store's single-use register). It is remembered as long as
// the token could be accepted: until iat plus the clock skew, and a margin.
func (p *Provider) logoutTokenOnce(lt *logoutToken) *idp.SingleUse {
	return &idp.SingleUse{Kind: logoutReplayKind, ID: p.cfg.Name + "/" + lt.jti,
		Until: lt.issuedAt.Add(2 * p.cfg.ClockSkew), Code: CodeLogoutTokenReplayed}
}

// serveFrontChannelLogout ends the sessions of the sid the IdP names. The
// IdP's logout page loads it in an iframe on another site, where the
// browser sends no SameSite=Lax session cookie: the sid is all there is.
// iss, when present, must be the issuer; Entra ID leaves it out, and the
// endpoint's path names the IdP anyway.
func (p *Provider) serveFrontChannelLogout(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "front-channel logout takes GET", http.StatusMethodNotAllowed)
		return nil
	}
	q := r.URL.Query()
	if iss, present := q["iss"]; present && (len(iss) != 1 || !p.frontChannelIssuer(iss[0])) {
		first := ""
		if len(iss) > 0 {
			first = iss[0]
		}
		// The request's text, capped: anyone can send it.
		return idp.FailLogout(CodeFrontChannelIssuer, fmt.Errorf("iss %.100q (%d values), want %q", first, len(iss), p.cfg.Issuer))
	}
	sid := q["sid"]
	if len(sid) != 1 || sid[0] == "" || len(sid[0]) > maxLogoutID {
		return idp.FailLogout(CodeFrontChannelSID, errors.New("front-channel logout without one sid"))
	}
	n, err := p.rt.Sessions.EndSessions(r.Context(), p.cfg.Name, "", sid, nil)
	if err != nil {
		return idp.FailLogout(CodeLogoutFailed, err)
	}
	// Anyone can GET this with a made-up sid, which ends nothing: only a
	// logout that ended a session is news at INFO.
	lvl := zapcore.DebugLevel
	if n > 0 {
		lvl = zapcore.InfoLevel
	}
	p.cfg.Logger.Log(lvl, "front-channel logout", zap.String("idp", p.cfg.Name), zap.Int("sessions_ended", n))
	// Framed by the IdP's page: no X-Frame-Options, no frame-ancestors.
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write([]byte("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed out</title></head><body>Signed out.</body></html>\n"))
	return err
}

// frontChannelIssuer reports whether a front-channel logout's iss names
// the issuer: exactly, or, for a multi-tenant one, the issuer of a tenant
// admitted (the sid then names the session).
func (p *Provider) frontChannelIssuer(iss string) bool {
	if p.template == "" {
		return iss == p.cfg.Issuer
	}
	tid, ok := p.tenantOfIssuer(iss)
	return ok && p.tenantAllowed(tid)
}

// refused logs a refused back-channel logout: the first of each reason per
// minute at WARN, the rest at DEBUG, since anyone can POST there.
func (p *Provider) refused(le *idp.LoginError) {
	p.refusals.Warn(p.cfg.Logger, le.Code, p.cfg.Now(), "back-channel logout refused",
		zap.String("idp", p.cfg.Name), zap.String("reason", le.Code), zap.Error(le))
}
