package caddymodule

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/routeorder"
	"github.com/caddy-sso/caddy-sso/internal/urlpath"
	"github.com/caddy-sso/caddy-sso/session"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// DefaultPathPrefix is where the sso endpoints live on a protected site.
const DefaultPathPrefix = gateway.DefaultPathPrefix

// Handler protects the routes after it: requests with a valid session go on
// with identity headers set, others are sent to sign in (navigations) or
// refused with 401 (everything else). It also serves the sign-in endpoints
// under PathPrefix. In a verify mode it protects nothing itself: it answers
// the forward-auth subrequests of a proxy in front of the app
// (docs/forward-auth.md).
type Handler struct {
	// IdP names the identity provider users sign in with. Optional when
	// exactly one is configured.
	IdP string `json:"idp,omitempty"`
	// IdPs names several identity providers users may choose from (IdP,
	// if also set, is listed first). Navigations without a session get a
	// chooser page, unless DefaultIdP is set.
	IdPs []string `json:"idps,omitempty"`
	// DefaultIdP, with several IdPs, is the one navigations are sent to
	// directly; the others stay reachable at <path_prefix>login?idp=.
	DefaultIdP string `json:"default_idp,omitempty"`
	// Allow and Deny restrict the route to some users: deny wins, and
	// with any allow rule only users it matches pass.
	Allow []gateway.AccessRule `json:"allow,omitempty"`
	Deny  []gateway.AccessRule `json:"deny,omitempty"`
	// IdentityJWT, when set, adds a signed identity token for the upstream.
	IdentityJWT *IdentityJWT `json:"identity_jwt,omitempty"`
	// PathPrefix is where the sso endpoints live. Default: /.sso/
	PathPrefix string `json:"path_prefix,omitempty"`
	// HeaderSet is the base set of identity headers: "default",
	// "oauth2_proxy" or "none".
	HeaderSet string `json:"header_set,omitempty"`
	// Headers overrides header names per identity field (user, email,
	// preferred_username, groups, first_name, last_name, idp); "-" drops one.
	Headers map[string]string `json:"headers,omitempty"`
	// BaseURL is the origin browsers reach this route by
	// (https://app.example.com). Sign-in URLs and the identity token's
	// issuer are built on it. Without it they are built on the request's
	// host only when Caddy matched the route on that host; on a site
	// without a host matcher the handler then refuses to start a sign-in
	// (docs/security.md, "Host-derived URLs").
	BaseURL string `json:"base_url,omitempty"`
	// PassAccessToken names the header that carries the session's OIDC
	// access token to the upstream (the Caddyfile's default:
	// X-Forwarded-Access-Token); PassIDToken likewise for the ID token;
	// SetAuthorizationHeader replaces the Authorization header with
	// "Bearer <access token>". The tokens are refreshed when the access
	// token expires within TokenRefreshMargin (default 1m). See
	// gateway/tokens.go and the README, "Tokens for the upstream".
	PassAccessToken        string         `json:"pass_access_token,omitempty"`
	PassIDToken            string         `json:"pass_id_token,omitempty"`
	SetAuthorizationHeader bool           `json:"set_authorization_header,omitempty"`
	TokenRefreshMargin     caddy.Duration `json:"token_refresh_margin,omitempty"`
	// Mode is "protect" (default), "auth_request" (nginx) or
	// "forward_auth" (Traefik, Caddy's forward_auth): gateway.Mode*.
	Mode string `json:"mode,omitempty"`

	app          *App
	route        *gateway.Route
	base         *gateway.Origin // from BaseURL
	hosts        routeHosts
	logger       *zap.Logger
	insecureWarn sync.Once
	errorRoutes  routeorder.ErrorRoutes // the servers' handle_errors, for caddyError
}

// IdentityJWT asks the handler to send the upstream a short-lived ES256
// JWT of the identity, verifiable with the keys at <path_prefix>jwks.json.
type IdentityJWT struct {
	// Header carries the token. Default: X-Forwarded-Identity-Jwt.
	Header string `json:"header,omitempty"`
	// TTL is the token lifetime. Default: 5m.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// Audience is the aud claim. Default: the site origin
	// (scheme://host), which is also the iss claim.
	Audience string `json:"audience,omitempty"`
	// KeyRotation is how long one signing key signs. Default: 7 days;
	// the previous and next keys are published alongside.
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sso",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision binds the handler to the sso app and its identity provider.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.PathPrefix, _ = h.Endpoints(nil) // its default, for ServeHTTP
	appIface, err := ctx.App("sso")
	if err != nil {
		return fmt.Errorf("sso: loading the sso app: %w", err)
	}
	h.app = appIface.(*App)
	names, err := h.app.routeIdPs(h)
	if err != nil {
		return fmt.Errorf("sso handler: %w", err)
	}
	rt := &gateway.Route{PathPrefix: h.PathPrefix, Pages: h.app.pages, Logger: h.logger, Metrics: h.app.metrics, ClientIP: clientIP, Keys: &h.app.jwks, Configured: h.app.idps}
	for _, name := range names {
		rt.IdPs = append(rt.IdPs, h.app.idps[name])
	}
	rt.Default = rt.IdPs[0]
	if h.DefaultIdP != "" {
		rt.Default = h.app.idps[h.DefaultIdP]
	}
	rt.Chooser = len(rt.IdPs) > 1 && h.DefaultIdP == ""
	rt.Mode, _ = gateway.ParseMode(h.Mode)                  // checked by Validate
	rt.Access, _ = gateway.NewAccessPolicy(h.Allow, h.Deny) // checked by routeIdPs
	if h.BaseURL != "" {
		base, err := gateway.BaseOrigin(h.BaseURL)
		if err != nil {
			return fmt.Errorf("sso handler: base_url: %w", err)
		}
		h.base = &base
	}
	if rt.Headers, err = gateway.NewHeaderPlan(h.HeaderSet, h.Headers); err != nil {
		return fmt.Errorf("sso handler: %w", err)
	}
	if sc := h.signerConfig(); sc != nil {
		rt.SignIdentity(*sc)
	}
	if err := rt.PassTokens(h.tokenConfig()); err != nil {
		return fmt.Errorf("sso handler: %w", err)
	}
	h.route = rt
	return h.app.headers.Add(&rt.Headers) // every sso route strips every route's names
}

// routeIdPs returns the names of the route's IdPs (those h names, or the
// app's only one), holding h to the app's idp blocks: every IdP it names is
// defined, its access rules name only IdPs of the route, and only OpenID
// Connect IdPs pass tokens upstream. The Caddyfile parser runs it where
// the directive's line is known, and Provision for JSON configs.
func (a *App) routeIdPs(h *Handler) ([]string, error) {
	if len(a.IdPs) == 0 {
		return nil, errors.New("no identity provider is configured: define one in the global sso option (sso { idp <name> oidc|saml { … } })")
	}
	_, names := h.Endpoints(a.IdPs)
	if len(names) == 0 { // it names none, and there are several
		_, err := a.defaultIdP()
		return nil, fmt.Errorf("%w (sso <idp>…, or idp <name>… in the block)", err)
	}
	defined := a.idpsByName()
	for _, name := range append(names, h.DefaultIdP) {
		if name != "" && defined[name] == nil {
			return nil, fmt.Errorf("no identity provider named %q in the global sso option (defined: %s)", name, a.idpList())
		}
	}
	policy, err := gateway.NewAccessPolicy(h.Allow, h.Deny)
	if err != nil {
		return nil, err
	}
	if err := policy.CheckIdPs(names); err != nil {
		return nil, err
	}
	for _, name := range names {
		if err := h.tokenConfig().CheckIdP(name, defined[name].Protocol); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// Endpoints is where the route serves the sign-in endpoints: under prefix
// (PathPrefix or its default), for its IdPs in order without repeats
// (those h names, or else configured's only one). Provision serves them
// there and `caddy sso check` lists the URLs to register by it.
func (h *Handler) Endpoints(configured []*IdPConfig) (prefix string, idps []string) {
	for _, n := range append([]string{h.IdP}, h.IdPs...) {
		if n != "" && !slices.Contains(idps, n) {
			idps = append(idps, n)
		}
	}
	if len(idps) == 0 && len(configured) == 1 {
		idps = []string{configured[0].Name}
	}
	return cmp.Or(h.PathPrefix, DefaultPathPrefix), idps
}

// EndpointPaths is where h serves its IdPs' endpoints, for routeorder.MisroutedFromApp.
func (h *Handler) EndpointPaths() (string, map[string][]string) { return h.route.EndpointPaths() }

// Validate checks the handler's own settings, by the rules of package
// gateway.
func (h *Handler) Validate() error {
	plan, err := gateway.NewHeaderPlan(h.HeaderSet, h.Headers)
	_, accessErr := gateway.NewAccessPolicy(h.Allow, h.Deny)
	_, modeErr := gateway.ParseMode(h.Mode)
	err = cmp.Or(err, accessErr, modeErr, h.tokenConfig().Validate())
	if err == nil && h.PathPrefix != "" {
		err = gateway.CheckPathPrefix(h.PathPrefix)
	}
	if sc := h.signerConfig(); err == nil && sc != nil {
		err = sc.Validate()
	}
	if _, berr := gateway.BaseOrigin(h.BaseURL); err == nil && h.BaseURL != "" && berr != nil {
		err = fmt.Errorf("base_url: %w", berr)
	}
	if _, names := h.Endpoints(nil); err == nil && h.DefaultIdP != "" && !slices.Contains(names, h.DefaultIdP) {
		err = fmt.Errorf("default_idp %q is not one of this route's IdPs", h.DefaultIdP)
	}
	if err == nil {
		err = gateway.CheckRouteHeaders(plan, h.tokenConfig(), h.signerConfig())
	}
	if err != nil {
		return fmt.Errorf("sso handler: %w", err)
	}
	return nil
}

// signerConfig is the route's identity token settings; nil without
// identity_jwt.
func (h *Handler) signerConfig() *gateway.SignerConfig {
	j := h.IdentityJWT
	if j == nil {
		return nil
	}
	return &gateway.SignerConfig{Header: j.Header, TTL: time.Duration(j.TTL),
		Audience: j.Audience, Rotation: time.Duration(j.KeyRotation)}
}

// tokenConfig is the route's token settings.
func (h *Handler) tokenConfig() gateway.TokenConfig {
	return gateway.TokenConfig{AccessHeader: h.PassAccessToken, IDHeader: h.PassIDToken,
		Bearer: h.SetAuthorizationHeader, RefreshMargin: time.Duration(h.TokenRefreshMargin)}
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	h.route.Headers.StripInbound(r.Header)
	inflight := h.app.live.Enter() // until the upstream: the app's store outlives it (App.retire)
	defer inflight.Exit()
	run, err := h.app.live.Running(r.Context())
	if err != nil {
		err := &gateway.Error{Status: http.StatusServiceUnavailable, Err: err}
		if h.route.Mode != gateway.ModeProtect && h.endpointURL(r) == nil {
			return h.route.AnswerVerify(w, err) // the proxy's decision, not an error route's
		}
		return h.caddyError(w, r, err)
	}
	o := h.origin(r)
	var buf [gateway.MaxSessionCookies]string
	tokens := gateway.CookieValues(r.Header, o.SessionCookie(), &buf)
	var outer *session.Identity
	if len(tokens) == 0 {
		outer, _ = caddyhttp.GetVar(r.Context(), signedInVar).(*session.Identity) // an sso before this one took the cookie
	}
	if sent := h.endpointURL(r); sent != nil {
		start := time.Now()
		err := h.route.ServeEndpoint(w, answering(r, o, sent), run, o, tokens, outer)
		h.app.metrics.Endpoint(sent.Path[len(h.PathPrefix):], time.Since(start))
		return h.caddyError(w, r, err)
	}
	if h.route.Mode != gateway.ModeProtect {
		return h.route.Verify(w, r, run, o, tokens, trustedProxy(r)) // answers its errors itself
	}
	gateway.StripOwnCookies(r.Header)
	id, forbidden, err := h.route.Authorize(r.Context(), run, tokens, outer, r.Header)
	switch {
	case forbidden:
		return h.caddyError(w, r, h.route.Forbidden(w, r, id))
	case err == nil:
		if err := h.route.Identify(r.Context(), run, id, o, w, r, r.Header); err != nil {
			return h.caddyError(w, r, err) // r.Header stripped of the tokens (Identify)
		}
		h.route.Headers.GuardHopByHop(r)
		setPlaceholders(r, id)
		caddyhttp.SetVar(r.Context(), signedInVar, id)
		inflight.Exit()
		return h.route.ServeSignedIn(w, r, next, run, id)
	case !errors.Is(err, session.ErrNoSession):
		return h.caddyError(w, r, h.route.SessionUnavailable(w, r, err)) // the store's failure or the IdP's
	}
	if gateway.IsNavigation(r) {
		return h.caddyError(w, r, h.route.StartSignIn(w, answering(r, o, sentURL(r)), run, o, tokens, outer))
	}
	return h.caddyError(w, r, h.route.Unauthorized(w, answering(r, o, sentURL(r)), o))
}

// signedInVar holds the session an sso handler admitted, for a stricter
// sso handler after it on the same request, which finds the cookie gone.
const signedInVar = "sso.signed_in"

// sentURL is the URL the client sent: a rewrite Caddy runs before sso (try_files,
// uri strip_prefix, handle_path) must not hide the endpoints or the return URL.
func sentURL(r *http.Request) *url.URL {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		return orig.URL
	}
	return r.URL
}

// endpointURL is the URL (sent, or an operator's rewrite) of a request for
// an endpoint, its path as the proxy in front matched it (urlpath.Under).
func (h *Handler) endpointURL(r *http.Request) *url.URL {
	sent := sentURL(r)
	for i, u := range [...]*url.URL{sent, r.URL} {
		if i == 1 && u.Path == sent.Path {
			break // not rewritten (Caddy keeps a copy of the URL as sent)
		}
		if p, ok := urlpath.Under(u.Path, h.PathPrefix); ok && p != u.Path {
			c := *u
			c.Path, c.RawPath = p, ""
			return &c
		} else if ok {
			return u
		}
	}
	return nil
}

// answering is r, with the site's origin (idp.WithOrigin) and u as its URL,
// as the handler's own answers read it: a copy upstream requests never pay.
func answering(r *http.Request, o gateway.Origin, u *url.URL) *http.Request {
	a := idp.WithOrigin(r, o.Site)
	a.URL = u
	return a
}

// caddyError hands a gateway error to Caddy: to the server's error routes
// (handle_errors), a page with the {http.auth.sso.*} placeholders when
// they answer it and shown as it is otherwise (docs/pages.md). Error
// routes that can forward the request get no error of the gateway's: the
// app would get the request the gateway refused, so it answers the
// status itself, as Caddy does with no error routes.
func (h *Handler) caddyError(w http.ResponseWriter, r *http.Request, err error) error {
	if errors.Is(err, gateway.ErrAnswered) {
		return nil
	}
	pe, page := gateway.AsPageError(err)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok && page {
		for k, v := range pe.Placeholders() {
			repl.Set("http.auth.sso."+k, v)
		}
	}
	var ge *gateway.Error
	herr, status := err, http.StatusInternalServerError // Caddy's for an error of no status
	if page {
		herr, status = caddyhttp.Error(pe.Status, pe), pe.Status
	} else if errors.As(err, &ge) {
		herr, status = caddyhttp.Error(ge.Status, ge.Err), ge.Status
	}
	switch o := h.errorRoutes.Outcome(r, herr); {
	case page && o != routeorder.Answered:
		return pe.Write(w)
	case o == routeorder.Forwarded:
		lvl := zap.DebugLevel // logged as Caddy logs the errors it answers
		if status >= 500 {
			lvl = zap.ErrorLevel
		}
		h.logger.Log(lvl, "answering the error without the server's error routes, which would forward the request", zap.Int("status", status), zap.Error(err))
		w.WriteHeader(status)
		return nil
	}
	return herr
}

// clientIP is Caddy's client IP (which honours trusted proxies), for the
// log lines of refused callbacks.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// setPlaceholders exposes the identity to the rest of the route, with the
// names Caddy's own authentication handler uses. The lookup is built once
// per session (App.Provision sets it as the session Manager's Derive), so
// a request adds one provider instead of six map writes.
func setPlaceholders(r *http.Request, id *session.Identity) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	if lookup, ok := id.Derived.(caddy.ReplacerFunc); ok {
		repl.Map(lookup)
	}
}

// placeholderLookup answers the {http.auth.user.*} placeholders of one
// identity.
func placeholderLookup(id *session.Identity) any {
	return caddy.ReplacerFunc(gateway.UserPlaceholders(id))
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
