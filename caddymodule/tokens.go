package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
)

// Default names of the token headers (pass_access_token, pass_id_token
// without a name). Every route strips them from inbound requests, whether
// it passes tokens or not (headers.go).
const (
	defaultAccessTokenHeader = "X-Forwarded-Access-Token"
	defaultIDTokenHeader     = "X-Forwarded-Id-Token"
)

// defaultTokenRefreshMargin is how long before its expiry an access token
// is refreshed, unless the route says (token_refresh_margin): enough for
// an upstream to use it in a slow request.
const defaultTokenRefreshMargin = time.Minute

// tokenRefresher is what a route that passes tokens needs of its IdPs'
// providers: idp/oidc's Provider has it, SAML has no tokens.
type tokenRefresher interface {
	Refresh(ctx context.Context, t *idp.Tokens) (*idp.Tokens, error)
}

// routeTokens is what a route hands the upstream of the session's OIDC
// tokens (pass_access_token, pass_id_token, set_authorization_header).
// The tokens stay with the session on the server, sealed; they reach the
// upstream only on such a route, and never the browser.
type routeTokens struct {
	access, id string // canonical header keys; "" for none
	bearer     bool   // Authorization: Bearer <access token>
	margin     time.Duration
	refresh    map[string]session.RefreshFunc // by IdP name: the route's IdPs
}

// passesTokens reports whether the route hands any token upstream.
func (h *Handler) passesTokens() bool {
	return h.PassAccessToken != "" || h.PassIDToken != "" || h.SetAuthorizationHeader
}

// validateTokens checks the token settings on their own.
func (h *Handler) validateTokens() error {
	if h.TokenRefreshMargin < 0 {
		return errors.New("sso handler: token_refresh_margin must be positive")
	}
	if h.TokenRefreshMargin != 0 && !h.passesTokens() {
		return errors.New("sso handler: token_refresh_margin needs pass_access_token, pass_id_token or set_authorization_header")
	}
	for _, name := range []string{h.PassAccessToken, h.PassIDToken} {
		if name == "" {
			continue
		}
		if strings.ContainsAny(name, " \t:\r\n") {
			return fmt.Errorf("sso handler: %q is not a header name", name)
		}
		switch http.CanonicalHeaderKey(name) {
		case "Authorization":
			return errors.New("sso handler: pass the access token in Authorization with set_authorization_header, which adds the Bearer scheme")
		case "Cookie", "Host", "Connection":
			return fmt.Errorf("sso handler: the tokens cannot be passed in %s", name)
		}
	}
	if h.PassAccessToken != "" && strings.EqualFold(h.PassAccessToken, h.PassIDToken) {
		return errors.New("sso handler: pass_access_token and pass_id_token need two header names")
	}
	return nil
}

// provisionTokens readies a route that passes tokens: its IdPs must be
// OpenID Connect ones, which then keep the tokens with their sessions
// (identityProvider.keepTokens), and the route protects its token headers (and, with
// set_authorization_header, Authorization) from inbound copies.
func (h *Handler) provisionTokens(providers []*identityProvider) error {
	if !h.passesTokens() {
		return nil
	}
	t := &routeTokens{bearer: h.SetAuthorizationHeader, margin: time.Duration(h.TokenRefreshMargin),
		refresh: make(map[string]session.RefreshFunc, len(providers))}
	if t.margin == 0 {
		t.margin = defaultTokenRefreshMargin
	}
	for _, p := range providers {
		r, ok := p.provider.(tokenRefresher)
		if !ok {
			return fmt.Errorf("sso handler: IdP %q is %s: only OpenID Connect IdPs issue tokens to pass upstream", p.name, p.protocol)
		}
		t.refresh[p.name] = r.Refresh
		p.keepTokens()
	}
	if h.PassAccessToken != "" {
		t.access = http.CanonicalHeaderKey(h.PassAccessToken)
		h.plan.strip.add(t.access)
	}
	if h.PassIDToken != "" {
		t.id = http.CanonicalHeaderKey(h.PassIDToken)
		h.plan.strip.add(t.id)
	}
	if t.bearer {
		// The route's Authorization is the gateway's: whatever the
		// client sent is replaced, and no Connection token or trailer
		// can take it away or add another (guardHopByHop).
		h.plan.strip.add("Authorization")
	}
	h.tokens = t
	if names := t.logged(); names != "" && h.logger.Core().Enabled(zapcore.DebugLevel) {
		h.logger.Warn("DEBUG logging is on: tokens passed upstream in "+names+" appear in reverse_proxy's DEBUG log lines (\"upstream roundtrip\"), which redact Authorization alone; filter those headers out of the log (docs/security.md, \"Tokens for the upstream\") or log above DEBUG",
			zap.Strings("idps", h.names))
	}
	return nil
}

// logged names the token headers Caddy's logs do not redact (all but
// Authorization), comma-separated.
func (t *routeTokens) logged() string {
	var names []string
	for _, n := range []string{t.access, t.id} {
		if n != "" {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

// passTokens sets the token headers of a route that passes tokens, for a
// session the route admits, refreshing the tokens when they are about to
// expire (session.Manager.UpstreamTokens: single-flight per session, from
// memory on every other request). It returns session.ErrNoSession when the
// route must treat the request as signed out: the IdP revoked the grant
// (the session has ended), or the session holds no valid access token
// (signed in before the route passed tokens, or expired without a refresh
// token), so that a new sign-in brings fresh tokens.
func (h *Handler) passTokens(r *http.Request, rt *running, id *session.Identity) error {
	if !h.access.permits(id) {
		return nil // refused next, with no token work
	}
	t, err := rt.sessions.UpstreamTokens(r.Context(), id, h.tokens.margin, h.tokens.refresh[id.IdP])
	switch {
	case err == nil:
	case errors.Is(err, session.ErrNoUpstreamToken):
		h.logger.Debug("no valid access token for this route: signing in again", zap.String("idp", id.IdP), zap.String("user_id", id.UserID))
		return session.ErrNoSession
	case errors.Is(err, session.ErrNoSession):
		return err
	default:
		// The access token has expired and the IdP could not renew it.
		return caddyhttp.Error(http.StatusBadGateway, err)
	}
	hd := r.Header
	if h.tokens.access != "" {
		hd[h.tokens.access] = t.Access
	}
	if h.tokens.id != "" && t.ID != nil {
		hd[h.tokens.id] = t.ID
	}
	if h.tokens.bearer {
		hd["Authorization"] = t.Bearer
	}
	return nil
}
