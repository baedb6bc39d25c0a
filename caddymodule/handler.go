package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// DefaultPathPrefix is where the sso endpoints live on a protected site.
const DefaultPathPrefix = "/.sso/"

// Session cookie names. The __Host- prefix makes browsers refuse the cookie
// unless it is Secure, host-only and for path /, so a sibling subdomain
// cannot plant one; plain-http loopback sites (demos, tests) cannot use it.
const (
	sessionCookieSecure = "__Host-sso_session"
	sessionCookiePlain  = "sso_session"
)

// Handler protects the routes after it: requests with a valid session go on
// with identity headers set, others are sent to sign in (navigations) or
// refused with 401 (everything else). It also serves the sign-in endpoints
// under PathPrefix.
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
	Allow []AccessRule `json:"allow,omitempty"`
	Deny  []AccessRule `json:"deny,omitempty"`
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

	app          *App
	idp          *identityProvider   // the one navigations sign in with
	choices      []*identityProvider // several IdPs and no default: the chooser
	names        map[string]bool     // this route's IdPs
	access       accessPolicy
	signer       *identitySigner
	plan         headerPlan
	logger       *zap.Logger
	insecureWarn sync.Once
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
	if h.PathPrefix == "" {
		h.PathPrefix = DefaultPathPrefix
	}
	appIface, err := ctx.App("sso")
	if err != nil {
		return fmt.Errorf("sso: loading the sso app: %w", err)
	}
	h.app = appIface.(*App)
	names := h.idpNames()
	if len(names) == 0 {
		name, err := h.app.defaultIdP()
		if err != nil {
			return fmt.Errorf("sso handler: %w", err)
		}
		names = []string{name}
	}
	var providers []*identityProvider
	for _, name := range names {
		p, err := h.app.provider(name)
		if err != nil {
			return fmt.Errorf("sso handler: %w", err)
		}
		providers = append(providers, p)
	}
	h.idp = providers[0]
	if h.DefaultIdP != "" {
		if h.idp, err = h.app.provider(h.DefaultIdP); err != nil {
			return fmt.Errorf("sso handler: default_idp: %w", err)
		}
	}
	h.names = make(map[string]bool, len(providers))
	for _, p := range providers {
		h.names[p.name] = true
	}
	if len(providers) > 1 && h.DefaultIdP == "" {
		h.choices = providers
	}
	if h.access, err = newAccessPolicy(h.Allow, h.Deny); err != nil {
		return fmt.Errorf("sso handler: %w", err)
	}
	if h.plan, err = newHeaderPlan(h.HeaderSet, h.Headers); err != nil {
		return fmt.Errorf("sso handler: %w", err)
	}
	if h.IdentityJWT != nil {
		h.signer = newIdentitySigner(h.IdentityJWT)
		h.plan.strip.add(h.signer.header)
	}
	return nil
}

// idpNames lists the route's IdPs in order, without repeats.
func (h *Handler) idpNames() []string {
	var names []string
	for _, n := range append([]string{h.IdP}, h.IdPs...) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// Validate checks the handler's own settings.
func (h *Handler) Validate() error {
	if h.PathPrefix != "" && (!strings.HasPrefix(h.PathPrefix, "/") || !strings.HasSuffix(h.PathPrefix, "/")) {
		return fmt.Errorf("sso handler: path_prefix %q must start and end with /", h.PathPrefix)
	}
	if _, err := newHeaderPlan(h.HeaderSet, h.Headers); err != nil {
		return err
	}
	if h.DefaultIdP != "" && !slices.Contains(h.idpNames(), h.DefaultIdP) {
		return fmt.Errorf("sso handler: default_idp %q is not one of this route's IdPs", h.DefaultIdP)
	}
	if _, err := newAccessPolicy(h.Allow, h.Deny); err != nil {
		return fmt.Errorf("sso handler: %w", err)
	}
	if j := h.IdentityJWT; j != nil && (j.TTL < 0 || j.KeyRotation < 0) {
		return errors.New("sso handler: identity_jwt durations must be positive")
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	h.plan.stripInbound(r.Header)
	rt := h.app.live.Load()
	if rt == nil {
		var err error
		if rt, err = h.app.running(r.Context()); err != nil {
			return caddyhttp.Error(http.StatusServiceUnavailable, err)
		}
	}
	o := h.origin(r)
	token := cookieValue(r.Header, o.sessionCookie())
	if strings.HasPrefix(r.URL.Path, h.PathPrefix) {
		start := time.Now()
		err := h.serveEndpoint(w, idp.WithOrigin(r, o.Origin), rt, o, token)
		h.app.metrics.endpoint(r.URL.Path[len(h.PathPrefix):], time.Since(start))
		return err
	}
	stripOwnCookies(r.Header)
	if token != "" {
		id, err := rt.sessions.Resolve(r.Context(), token)
		switch {
		case err == nil:
			if !h.access.permits(id) {
				return h.forbidden(w, r, id)
			}
			h.plan.setIdentity(r.Header, id)
			if h.signer != nil {
				tok, err := h.signer.token(r.Context(), rt.db, id, o)
				if err != nil {
					return caddyhttp.Error(http.StatusInternalServerError, err)
				}
				r.Header[h.signer.header] = tok
			}
			setPlaceholders(r, id)
			return next.ServeHTTP(w, r)
		case !errors.Is(err, session.ErrNoSession):
			return h.storeUnavailable(w, isNavigation(r), "This application cannot check your sign-in right now. Try again in a moment.", err)
		}
	}
	if isNavigation(r) {
		if h.choices != nil {
			return h.chooser(w, r.URL.RequestURI())
		}
		return h.beginLogin(w, idp.WithOrigin(r, o.Origin), o, h.idp, r.URL.RequestURI())
	}
	return h.unauthorized(w, r)
}

// forbidden refuses a signed-in user the route's access rules exclude. The
// page names no rule, group or IdP.
func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request, id *session.Identity) error {
	h.logger.Debug("access denied by the route's rules", zap.String("user_id", id.UserID), zap.String("path", r.URL.Path))
	if !isNavigation(r) {
		w.Header().Set("Cache-Control", "no-store")
		return writeJSON(w, http.StatusForbidden, map[string]string{"error": "access denied"})
	}
	return page{Status: http.StatusForbidden, Title: "Access denied",
		Message: "You are signed in, but your account may not use this page. Ask your administrator for access if you need it."}.write(w)
}

// chooser lets the person pick one of the route's IdPs.
func (h *Handler) chooser(w http.ResponseWriter, returnTo string) error {
	returnTo = url.QueryEscape(idp.LocalPath(returnTo))
	pg := page{Status: http.StatusOK, Title: "Sign in", Message: "Choose how to sign in."}
	for _, p := range h.choices {
		pg.Links = append(pg.Links, pageLink{Href: h.PathPrefix + "login?idp=" + url.QueryEscape(p.name) + "&return_to=" + returnTo, Text: p.name})
	}
	return pg.write(w)
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
	return caddy.ReplacerFunc(func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, "http.auth.user.")
		if !ok {
			return nil, false
		}
		switch name {
		case "id":
			return id.Boxed(session.FieldUserID), true
		case "email":
			return id.Boxed(session.FieldEmail), true
		case "first_name":
			return id.Boxed(session.FieldFirstName), true
		case "last_name":
			return id.Boxed(session.FieldLastName), true
		case "groups":
			return id.Boxed(session.FieldGroups), true
		case "idp":
			return id.Boxed(session.FieldIdP), true
		}
		return nil, false
	})
}

// isNavigation tells a browser loading a page (which may be redirected to
// sign in) from a script or API client (which must get a 401 it can act on:
// a redirect to an IdP is useless to it and would mint login state for
// nothing). See DESIGN.md section 3.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "text/html") || strings.Contains(accept, "*/*")
}

func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request) error {
	login := h.PathPrefix + "login?return_to=" + url.QueryEscape(idp.LocalPath(r.URL.RequestURI()))
	hd := w.Header()
	hd.Set("WWW-Authenticate", `SSO realm="`+h.idp.name+`", login="`+login+`"`)
	hd.Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "authentication required", "login": login})
}

// origin is how the browser reached this site (idp.Origin), with whether
// cookies get the Secure attribute decided once.
type origin struct {
	idp.Origin
	secure bool
}

func (o origin) sessionCookie() string {
	if o.secure {
		return sessionCookieSecure
	}
	return sessionCookiePlain
}

// origin takes the scheme from the connection, or from X-Forwarded-Proto
// only when Caddy's trusted_proxies vouch for the peer.
// It is the one place the gateway decides this: everything below reads it
// from the request context (idp.WithOrigin).
func (h *Handler) origin(r *http.Request) origin {
	o := origin{Origin: idp.Origin{Scheme: "http", Host: r.Host}}
	if r.TLS != nil {
		o.Scheme = "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			o.Scheme = p
		}
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			o.Host = fh
		}
	}
	o.secure = o.Secure()
	if o.Scheme == "http" && o.secure {
		h.insecureWarn.Do(func() {
			h.logger.Warn("site is served over plain http; session cookies keep the Secure attribute, so browsers will only send them over https (terminate TLS in front of Caddy, and list that proxy in trusted_proxies)",
				zap.String("host", o.Host))
		})
	}
	return o
}

// cookieValue finds one cookie in the Cookie header without parsing the
// others, since it runs on every request.
func cookieValue(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if len(part) > len(name) && part[len(name)] == '=' && part[:len(name)] == name {
				return strings.Trim(part[len(name)+1:], `"`)
			}
		}
	}
	return ""
}

// isOwnCookie reports whether a cookie is one of ours, never for the upstream.
func isOwnCookie(name string) bool {
	return name == sessionCookieSecure || name == sessionCookiePlain || idp.IsFlowCookie(name)
}

func stripOwnCookies(h http.Header) {
	for _, line := range h["Cookie"] {
		if strings.Contains(line, "sso") {
			stripCookies(h, isOwnCookie)
			return
		}
	}
}

func (h *Handler) setSessionCookie(w http.ResponseWriter, o origin, token string) {
	http.SetCookie(w, &http.Cookie{
		Name:     o.sessionCookie(),
		Value:    token,
		Path:     "/",
		HttpOnly: true,
		Secure:   o.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

func (h *Handler) clearSessionCookie(w http.ResponseWriter, o origin) {
	http.SetCookie(w, &http.Cookie{
		Name: o.sessionCookie(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: o.secure, SameSite: http.SameSiteLaxMode,
	})
}

// serveEndpoint serves the sign-in endpoints under PathPrefix.
func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request, rt *running, o origin, token string) error {
	rest := strings.TrimPrefix(r.URL.Path, h.PathPrefix)
	switch {
	case rest == "login":
		return h.serveLogin(w, r, o)
	case rest == "logout":
		return h.serveLogout(w, r, rt, o, token)
	case rest == "whoami":
		return h.serveWhoami(w, r, rt, token)
	case rest == "jwks.json" && h.signer != nil:
		return h.serveJWKS(w, r, rt)
	}
	// <protocol>/<idp>/<endpoint>: the IdP's callback, or one of its
	// protocol's other endpoints (SAML metadata and slo).
	protocol, tail, _ := strings.Cut(rest, "/")
	name, endpoint, _ := strings.Cut(tail, "/")
	p, err := h.app.provider(name)
	if err != nil || p.protocol != protocol || endpoint == "" {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("sso: no endpoint %q", r.URL.Path))
	}
	base := h.endpointBase(o, p)
	if callback, method := p.provider.CallbackEndpoint(); endpoint == callback {
		if r.Method != method {
			w.Header().Set("Allow", method)
			return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("sso: %s takes %s", endpoint, method))
		}
		return h.serveCallback(w, r, rt, o, p, base, token)
	}
	err = p.provider.ServeEndpoint(w, r, base, endpoint)
	var le *idp.LoginError
	switch {
	case errors.Is(err, idp.ErrNoEndpoint):
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("sso: no endpoint %q", r.URL.Path))
	case errors.As(err, &le) && le.Logout:
		h.logger.Warn("logout message refused", zap.String("idp", p.name), zap.String("reason", le.Code), zap.Error(err))
		pg := page{Status: http.StatusBadRequest, Title: "Sign-out incomplete", Code: le.Code,
			Message: "The sign-out message from the identity provider could not be accepted, so you may still be signed in to this application. Sign out here, or close the browser. If this keeps happening, give your administrator the reference below."}
		if le.SessionEnded {
			pg.Message = "You are signed out of this application. The identity provider's answer could not be verified, so you may still be signed in there: close the browser to end that session too. If this keeps happening, give your administrator the reference below."
		}
		return pg.write(w)
	}
	return err
}

// endpointBase is the absolute URL of p's endpoints on this site, which
// every idp.Provider method takes.
func (h *Handler) endpointBase(o origin, p *identityProvider) string {
	return o.URL(h.PathPrefix + p.protocol + "/" + p.name + "/")
}

// serveLogin starts a sign-in explicitly: GET /.sso/login?idp=&return_to=
func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request, o origin) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("sso: login takes GET"))
	}
	p := h.idp
	name := r.URL.Query().Get("idp")
	if name == "" && h.choices != nil {
		return h.chooser(w, r.URL.Query().Get("return_to"))
	}
	if name != "" {
		var err error
		if p, err = h.app.provider(name); err != nil || !h.names[name] {
			return page{Status: http.StatusNotFound, Title: "Unknown sign-in method",
				Message: "This site has no sign-in method by that name."}.write(w)
		}
	}
	return h.beginLogin(w, r, o, p, r.URL.Query().Get("return_to"))
}

func (h *Handler) beginLogin(w http.ResponseWriter, r *http.Request, o origin, p *identityProvider, returnTo string) error {
	returnTo = idp.LocalPath(returnTo)
	if err := p.provider.Begin(w, r, h.endpointBase(o, p), returnTo); err != nil {
		h.logger.Error("starting sign-in", zap.String("idp", p.name), zap.Error(err))
		return page{Status: http.StatusBadGateway, Title: "Sign-in is unavailable",
			Message: "The identity provider could not be reached. Try again in a moment.", Code: idp.ErrorCode(err, "idp_unavailable")}.write(w)
	}
	return nil
}

// serveCallback completes a sign-in: the provider verifies, signin maps,
// provisions and starts the session in one transaction, and this turns the
// outcome into a page or a redirect.
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request, rt *running, o origin, p *identityProvider, base, oldToken string) error {
	ctx := r.Context()
	a, returnTo, err := p.provider.Callback(w, r, base)
	if err != nil {
		var le *idp.LoginError
		if !errors.As(err, &le) {
			le = &idp.LoginError{Code: "login_failed", Err: err}
		}
		rt.refusals.Record(ctx, p.name, le, clientIP(r))
		h.app.metrics.login(p.name, p.protocol, "failed")
		return signInFailedPage(le.Code).write(w)
	}
	out, err := rt.signin.SignIn(ctx, &p.signin, a, oldToken)
	if err != nil {
		return h.storeUnavailable(w, true, "Your sign-in could not be completed: this application cannot save it right now. Try again in a moment.", err)
	}
	switch {
	case out.Replay != nil:
		return signInFailedPage(out.Replay.Code).write(w)
	case out.Denial != nil:
		return h.denialPage(w, p, a, out)
	}
	h.setSessionCookie(w, o, out.Session.Token)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, idp.LocalPath(returnTo), http.StatusSeeOther)
	return nil
}

// idpLogout is what the IdP's logout needs of a session Revoke ended (OIDC
// reads only the ID token; SAML the NameID and SessionIndex).
func idpLogout(e *session.Ended) idp.LogoutInfo {
	l := e.Session.Logout
	return idp.LogoutInfo{Subject: l.Subject, SubjectFormat: l.SubjectFormat, SessionID: l.SessionID, IDToken: e.IDToken()}
}

func signInFailedPage(code string) page {
	return page{Status: http.StatusBadRequest, Title: "Sign-in failed",
		Message: "The sign-in could not be completed. Start again from the application; if it keeps failing, give your administrator the reference below.",
		Code:    code}
}

// clientIP is the address a refusal is attributed to in the logs: Caddy's
// client IP (which honours trusted proxies) when set, else the peer.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// missingAttributesPage lists what the IdP must send and what it sent
// (names only; an attribute that arrived empty is marked so), for the IdP
// administrator. code is the denial's reason: missing_subject or
// missing_attributes.
func missingAttributesPage(p *identityProvider, a *idp.Assertion, code string, missing []string) page {
	pg := page{Status: http.StatusForbidden, Title: "Your account could not be set up",
		Message: "The identity provider did not send everything this application needs to create your account. Your administrator can fix this in the identity provider's attribute (claim) mapping.",
		Code:    code}
	for _, name := range a.AttributeNames() {
		pg.Received = append(pg.Received, pageAttribute{Name: name, Empty: a.First(name) == ""})
	}
	for _, m := range missing {
		pg.Expected = append(pg.Expected, pageExpectation{Attribute: m, Names: p.signin.Mapper.Expected(m)})
	}
	return pg
}

func (h *Handler) denialPage(w http.ResponseWriter, p *identityProvider, a *idp.Assertion, out *signin.Outcome) error {
	d := out.Denial
	switch d.Reason {
	case provision.ReasonMissingAttributes, provision.ReasonMissingSubject:
		pg := missingAttributesPage(p, a, d.Reason, d.Missing)
		if out.Unmapped != nil && out.Unmapped.NameIDFormat != "" {
			// The admin sees a NameID in their SAML tracer: say why it
			// was not used.
			pg.Message += " The SAML NameID it sent has the format " + out.Unmapped.NameIDFormat +
				", which is not persistent and so cannot identify a user: send a uniqueUserId attribute (or a persistent NameID)."
		}
		return pg.write(w)
	}
	// provision words the reason for the person signing in; the page adds
	// only a title.
	pg := page{Status: http.StatusForbidden, Title: "Access denied", Code: d.Reason, Message: d.Message()}
	if d.Reason == provision.ReasonPending {
		pg.Title = "Waiting for approval"
	}
	return pg.write(w)
}

// serveLogout: GET shows a confirmation button, POST signs out. Signing out
// by POST only, from this origin, keeps other sites from logging users out.
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request, rt *running, o origin, token string) error {
	returnTo := idp.LocalPath(r.FormValue("return_to"))
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		pg := page{Status: http.StatusOK, Title: "Sign out", Message: "Sign out of this application?",
			Action: h.PathPrefix + "logout", Button: "Sign out", ReturnTo: returnTo}
		// The POST continues at the IdP of the browser's session.
		if id, err := rt.sessions.Resolve(r.Context(), token); err == nil {
			if p, err := h.app.provider(id.IdP); err == nil {
				if o := p.provider.LogoutOrigin(r.Context()); o != "" {
					pg.FormTargets = []string{o}
				}
			}
		}
		return pg.write(w)
	case http.MethodPost:
	default:
		return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("sso: logout takes POST"))
	}
	if !sameOrigin(r, o) {
		return page{Status: http.StatusForbidden, Title: "Sign-out refused",
			Message: "The sign-out request did not come from this site.", Code: "cross_site_logout"}.write(w)
	}
	h.clearSessionCookie(w, o)
	w.Header().Set("Cache-Control", "no-store")
	if token == "" {
		return page{Status: http.StatusOK, Title: "Signed out", Message: "You are signed out."}.write(w)
	}
	ended, err := rt.sessions.Revoke(r.Context(), token, store.EventSessionLoggedOut)
	if err != nil {
		return h.storeUnavailable(w, true, "You are signed out in this browser, but the sign-out could not be recorded everywhere right now. If this is a shared computer, close the browser.", err)
	}
	if ended != nil {
		if p, err := h.app.provider(ended.Session.IdP); err == nil {
			done, err := p.provider.Logout(w, r, h.endpointBase(o, p), idpLogout(ended), returnTo)
			if err != nil {
				h.logger.Warn("identity provider logout unavailable", zap.String("idp", p.name), zap.Error(err))
			}
			if done {
				return nil
			}
		}
	}
	return page{Status: http.StatusOK, Title: "Signed out", Message: "You are signed out."}.write(w)
}

// sameOrigin refuses requests that a browser marks as coming from another
// site. Non-browser clients send neither header and are let through: CSRF
// needs a victim's browser.
func sameOrigin(r *http.Request, o origin) bool {
	if origin := r.Header.Get("Origin"); origin != "" && origin != o.String() {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// whoami is the JSON view of the signed-in user, for front-end code and for
// people checking what the gateway knows about them.
type whoami struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	FirstName string    `json:"first_name"`
	LastName  string    `json:"last_name"`
	Groups    []string  `json:"groups"`
	IdP       string    `json:"idp"`
	Source    string    `json:"source"` // jit, scim or admin: how the user came to exist
	Created   time.Time `json:"created"`
	LastLogin time.Time `json:"last_login,omitzero"`
	Expires   time.Time `json:"session_expires"`
}

func (h *Handler) serveWhoami(w http.ResponseWriter, r *http.Request, rt *running, token string) error {
	w.Header().Set("Cache-Control", "no-store")
	id, err := rt.sessions.Resolve(r.Context(), token)
	if errors.Is(err, session.ErrNoSession) {
		return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not signed in"})
	}
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	var u *store.User
	err = rt.db.View(r.Context(), func(tx store.Tx) error {
		var err error
		u, err = tx.User(id.UserID)
		return err
	})
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("sso whoami: %w", err))
	}
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	return writeJSON(w, http.StatusOK, whoami{ID: u.ID, Email: u.Email, FirstName: u.FirstName,
		LastName: u.LastName, Groups: groups, IdP: id.IdP, Source: u.Source, Created: u.Created.UTC(),
		LastLogin: u.LastLogin.UTC(), Expires: id.Expires.UTC()})
}

// serveJWKS publishes the keys that verify the identity tokens.
func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request, rt *running) error {
	keys, err := h.signer.keyring(r.Context(), rt.db)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	b, err := keys.JWKS(r.Context())
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err = w.Write(b)
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
