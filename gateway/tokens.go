package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
)

// Default names of the token headers (pass_access_token, pass_id_token
// without a name). Every route strips them from inbound requests, whether
// it passes tokens or not (alwaysStripped).
const (
	DefaultAccessTokenHeader = "X-Forwarded-Access-Token"
	DefaultIDTokenHeader     = "X-Forwarded-Id-Token"
)

// DefaultTokenRefreshMargin is how long before its expiry an access token
// is refreshed, unless the route says (token_refresh_margin): enough for
// an upstream to use it in a slow request.
const DefaultTokenRefreshMargin = time.Minute

// TokenConfig says which of the session's OIDC tokens a route hands its
// upstream: the access token in AccessHeader, the ID token in IDHeader
// ("" for neither), and with Bearer the access token as Authorization.
type TokenConfig struct {
	AccessHeader, IDHeader string
	Bearer                 bool
	// RefreshMargin: refresh an access token that expires within it;
	// 0 means DefaultTokenRefreshMargin.
	RefreshMargin time.Duration
}

// Passes reports whether the route hands any token upstream.
func (c TokenConfig) Passes() bool { return c.AccessHeader != "" || c.IDHeader != "" || c.Bearer }

// Headers lists the headers the route sets for its upstream's tokens,
// each with the setting that names it (CheckUpstreamHeaders).
func (c TokenConfig) Headers() []UpstreamHeader {
	var hs []UpstreamHeader
	if c.AccessHeader != "" {
		hs = append(hs, UpstreamHeader{Setting: SettingAccessToken, Name: c.AccessHeader})
	}
	if c.IDHeader != "" {
		hs = append(hs, UpstreamHeader{Setting: SettingIDToken, Name: c.IDHeader})
	}
	if c.Bearer {
		hs = append(hs, UpstreamHeader{Setting: SettingBearer, Name: bearerHeader})
	}
	return hs
}

// Validate checks the settings on their own: the margin, and the token
// headers' names by the rule every header a route sets follows
// (CheckUpstreamHeaders; CheckRouteHeaders holds them to the route's
// other headers).
func (c TokenConfig) Validate() error {
	if err := idp.CheckDuration("token_refresh_margin", c.RefreshMargin); err != nil {
		return err
	}
	if c.RefreshMargin != 0 && !c.Passes() {
		return errors.New("token_refresh_margin needs pass_access_token, pass_id_token or set_authorization_header")
	}
	return CheckUpstreamHeaders(c.Headers()...)
}

// CheckIdP refuses the IdP name, of protocol, on a route with these
// settings that passes tokens: only OpenID Connect IdPs issue them. It is
// the one rule, for PassTokens and for caddy validate, which has the
// configured protocols but no providers.
func (c TokenConfig) CheckIdP(name, protocol string) error {
	if c.Passes() && protocol != idp.ProtocolOIDC {
		return fmt.Errorf("IdP %q is %s: only OpenID Connect IdPs issue tokens to pass upstream", name, protocol)
	}
	return nil
}

// tokenRefresher is what a route that passes tokens needs of its IdPs'
// providers: idp/oidc's Provider has it, SAML has no tokens.
type tokenRefresher interface {
	Refresh(ctx context.Context, t *idp.Tokens) (*idp.Tokens, error)
}

// upstreamTokens is a route's TokenConfig made ready. The tokens stay
// with the session on the server, sealed; they reach the upstream only on
// such a route, and never the browser.
type upstreamTokens struct {
	access, id string // canonical header keys; "" for none
	bearer     bool
	margin     time.Duration
	refresh    map[string]session.RefreshFunc // by IdP name: the route's IdPs
}

// PassTokens readies the route to pass tokens upstream: its IdPs must be
// OpenID Connect ones, which then keep the tokens with their sessions
// (the access token, and with offline_access the refresh token; tokens no
// route passes are not kept, each being a credential that would sit in
// the store for nothing), and the route protects its token headers (and,
// with Bearer, Authorization) from inbound copies. Call it after IdPs and
// Headers are set, before the app starts, so every sign-in sees it.
func (rt *Route) PassTokens(c TokenConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if !c.Passes() {
		return nil
	}
	t := &upstreamTokens{bearer: c.Bearer, margin: c.RefreshMargin,
		refresh: make(map[string]session.RefreshFunc, len(rt.IdPs))}
	if t.margin == 0 {
		t.margin = DefaultTokenRefreshMargin
	}
	for _, p := range rt.IdPs {
		if err := c.CheckIdP(p.Name, p.Protocol); err != nil {
			return err
		}
		r, ok := p.Provider.(tokenRefresher)
		if !ok { // an OpenID Connect provider that is not idp/oidc's
			return fmt.Errorf("IdP %q: its %s provider cannot refresh tokens", p.Name, p.Protocol)
		}
		t.refresh[p.Name] = r.Refresh
		p.SignIn.KeepAccessToken = true
		p.SignIn.KeepRefreshToken = p.OfflineAccess
	}
	var logged []string // headers Caddy's logs do not redact
	if c.AccessHeader != "" {
		t.access = http.CanonicalHeaderKey(c.AccessHeader)
		rt.Headers.Protect(t.access)
		logged = append(logged, t.access)
	}
	if c.IDHeader != "" {
		t.id = http.CanonicalHeaderKey(c.IDHeader)
		rt.Headers.Protect(t.id)
		logged = append(logged, t.id)
	}
	if t.bearer {
		// The route's Authorization is the gateway's: whatever the
		// client sent is replaced, and no Connection token or trailer
		// can take it away or add another (GuardHopByHop).
		rt.Headers.Protect("Authorization")
	}
	rt.tokens = t
	if len(logged) > 0 && rt.Logger.Core().Enabled(zap.DebugLevel) {
		names := make([]string, len(rt.IdPs))
		for i, p := range rt.IdPs {
			names[i] = p.Name
		}
		rt.Logger.Warn("DEBUG logging is on: tokens passed upstream in "+strings.Join(logged, ", ")+" appear in reverse_proxy's DEBUG log lines (\"upstream roundtrip\"), which redact Authorization alone; filter those headers out of the log (docs/security.md, \"Tokens for the upstream\") or log above DEBUG",
			zap.Strings("idps", names))
	}
	if len(logged) > 0 && rt.Mode != ModeProtect {
		// In a verify mode the tokens travel in the answer to the proxy,
		// and a site's access log records an answer's headers at INFO.
		rt.Logger.Warn("in " + rt.Mode + " mode the tokens (" + strings.Join(logged, ", ") + ") are headers of the answer to the proxy, which the site's access log (the log directive), if any, records in full: filter resp_headers>" + logged[0] + " and the others out of it (docs/security.md, \"Tokens for the upstream\")")
	}
	return nil
}

// Authorize resolves the session a request comes with on this route and
// readies what the upstream learns of it, in the one order both the sso
// handler and the verify endpoint need: the route's access rules first,
// then the token headers on hd, so that a session the rules refuse never
// carries a token (the proxy may copy a refusal's headers too). outer,
// when not nil, is the session an sso handler before this route's admitted
// on the same request and took the cookie of (a stricter route inside a
// protected site): it stands for tokens, held to this route's IdPs, rules
// and tokens as nested routes read. forbidden reports a session the rules
// refuse (id is then set); otherwise err is nil, session.ErrNoSession when
// the request counts as signed out, or an error of the IdP (it could not
// renew the access token) or of the store, which SessionUnavailable
// answers.
func (rt *Route) Authorize(ctx context.Context, run *Runtime, tokens []string, outer *session.Identity, hd http.Header) (id *session.Identity, forbidden bool, err error) {
	switch {
	case outer == nil:
		id, _, err = rt.Session(ctx, run, tokens, true)
	case rt.Admits(outer.IdP):
		id = outer
	default:
		err = session.ErrNoSession
	}
	switch {
	case err != nil:
		return nil, false, err
	case !rt.Access.Permits(id):
		return id, true, nil
	}
	if err := rt.setTokens(ctx, hd, run, id); err != nil {
		return nil, false, err
	}
	return id, false, nil
}

// setTokens sets the token headers of a route that passes tokens, for a
// session the route admits, refreshing the tokens when they are about to
// expire (session.Manager.UpstreamTokens: single-flight per session, from
// memory on every other request). It returns session.ErrNoSession when the
// route must treat the request as signed out: the IdP revoked the grant
// (the session has ended), or the session holds no valid access token
// (signed in before the route passed tokens, or expired without a refresh
// token), so that a new sign-in brings fresh tokens; a *refreshFailed
// when the IdP could not renew an expired token (SessionUnavailable
// answers it); and the store's error as it is. A route that passes no
// tokens sets nothing.
func (rt *Route) setTokens(ctx context.Context, hd http.Header, run *Runtime, id *session.Identity) error {
	t := rt.tokens
	if t == nil {
		return nil
	}
	tok, err := run.Sessions.UpstreamTokens(ctx, id, t.margin, t.refresh[id.IdP])
	switch {
	case err == nil:
	case errors.Is(err, session.ErrNoUpstreamToken):
		rt.Logger.Debug("no valid access token for this route: signing in again", zap.String("idp", id.IdP), zap.String("user_id", id.UserID))
		return session.ErrNoSession
	case errors.Is(err, session.ErrRefreshFailed):
		// The access token has expired and the IdP could not renew it.
		return &refreshFailed{idp: id.IdP, err: err, ended: ctx.Err() != nil}
	default:
		// The store failed reading the tokens: the caller answers 503, as
		// for any session it cannot read, not the IdP's 502.
		return err
	}
	if t.access != "" {
		hd[t.access] = tok.Access
	}
	if t.id != "" && tok.ID != nil {
		hd[t.id] = tok.ID
	}
	if t.bearer {
		hd["Authorization"] = tok.Bearer
	}
	return nil
}
