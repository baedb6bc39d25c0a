// Package gateway is what the sso handler does with a request, without
// Caddy: the identity headers a protected route hands the upstream (and
// the ones no client may send), its access rules and signed identity, and
// the sign-in endpoints under its path prefix (login, the IdPs' callbacks
// and other endpoints, logout, whoami, the JWKS) with the pages a person
// sees. The Caddy handler (caddymodule) decides a request's origin, finds
// its session cookies and calls in here (docs/architecture.md, "A
// request's path").
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/internal/earlydata"
	"github.com/caddy-sso/caddy-sso/internal/logbudget"
	"github.com/caddy-sso/caddy-sso/internal/urlpath"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/upstreamjwt"
)

// IdP is one identity provider a route signs users in with.
type IdP struct {
	Name     string
	Protocol string
	Provider idp.Provider
	SignIn   signin.IdP
	// OfflineAccess: the IdP is asked for refresh tokens, which a route
	// passing its tokens upstream keeps (Route.PassTokens).
	OfflineAccess bool
}

// Runtime is what the running sso app gives its routes: it exists from
// the app's Start.
type Runtime struct {
	Store    store.Store
	Sessions *session.Manager
	SignIn   *signin.Service
	Refusals *signin.Refusals
	// Flows carries, to a callback the IdP's site POSTs (the SAML ACS),
	// the session the browser began the sign-in with (previousSessionFlow).
	Flows *idp.FlowCookies
	// Streams ends the streams of sessions that end; nil leaves them be.
	Streams *Streams
}

// Metrics is told the outcome of every callback, and of every sign-in
// that could not start, for the login counter: reason is the reference
// code the person was shown.
type Metrics interface {
	Login(idp, protocol, result, reason string)
}

// LoginNotSaved is the login counter's result for a sign-in the IdP
// vouched for that the store could not save (a full disk, a database
// away): the person saw "Sign-in is unavailable".
const LoginNotSaved = "not_saved"

// Route is one protected route: the sso directive made ready.
type Route struct {
	// PathPrefix is where the endpoints live ("/.sso/").
	PathPrefix string
	// IdPs are the route's identity providers: the only ones it admits.
	// Default is the one navigations sign in with; with Chooser, a
	// navigation gets a page to choose one of IdPs instead.
	IdPs    []*IdP
	Default *IdP
	Chooser bool
	// Mode is ModeProtect (the zero value), or a verify mode: the route
	// then answers forward-auth subrequests (Verify) instead of
	// protecting a handler.
	Mode    string
	Access  AccessPolicy
	Headers HeaderPlan
	Signer  *IdentitySigner // nil: no identity token
	// Configured is every IdP of the config, by name: a callback of one
	// the route does not have is then misrouted, not a sign-in begun
	// before a reload (configChanged). nil: none known.
	Configured map[string]*IdP
	// Keys is the identity token signers of every route of the config,
	// whose keys the route's jwks.json publishes, with a Signer of its own
	// or without (IdentityKeys); nil: the route's own Signer's only.
	Keys *IdentityKeys
	// Pages renders the pages a person sees; nil: the defaults.
	Pages   *Pages
	Logger  *zap.Logger
	Metrics Metrics // nil: none
	// ClientIP names the client a refused callback is attributed to in
	// the logs; nil means the connection's peer.
	ClientIP func(*http.Request) string
	// logoutRefusals keeps refused logout messages (front-channel, SAML
	// SLO), which anyone can send, to one WARN line per IdP and reason a
	// minute.
	logoutRefusals logbudget.Budget
	// startFailures keeps a sign-in that cannot start (an IdP away or
	// misconfigured), which every anonymous navigation repeats, to one
	// ERROR line per IdP and reason a minute; storeFailures likewise the
	// 503s of a store that is away, one per minute, and the sign-ins it
	// could not save, one per IdP a minute.
	startFailures, storeFailures logbudget.Budget
	// refreshFailures keeps the 502s of access tokens the IdP could not
	// renew, which every request of their sessions repeats for a while,
	// to one ERROR line per IdP a minute.
	refreshFailures logbudget.Budget
	// denials keeps the 403s of the access rules, which a signed-in user
	// (or a script with their cookie) may repeat at will, to one INFO line
	// per user and IdP a minute; crossSiteLogouts the sign-outs another
	// site's page posts, which anyone's page can, and those with a body
	// over the cap, to one WARN line a minute each.
	denials, crossSiteLogouts logbudget.Budget
	// shortReturns keeps the sign-ins that come back to a shorter page
	// than the one asked for (beginLogin), which anyone can start, to one
	// INFO line per IdP a minute.
	shortReturns logbudget.Budget

	tokens                                   *upstreamTokens // nil unless the route passes tokens (PassTokens)
	unvouchedLog, untrustedLog, misroutedLog sync.Once
}

// Error is an HTTP error the caller answers in its own way (Caddy's error
// handling): Status, and Err for the log.
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %v", e.Status, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

func httpError(status int, err error) error { return &Error{Status: status, Err: err} }

// provider returns the route's IdP of that name, or nil.
func (rt *Route) provider(name string) *IdP {
	for _, p := range rt.IdPs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Admits reports whether the route accepts sessions from the named IdP.
// A route admits only the IdPs it names: a session made through another
// is no session here (docs/security.md, "One host, several IdPs").
func (rt *Route) Admits(idpName string) bool { return rt.provider(idpName) != nil }

// Session returns the identity and token of the first of tokens that
// names a valid session, or session.ErrNoSession. With admitted, only
// sessions of the route's IdPs count.
func (rt *Route) Session(ctx context.Context, run *Runtime, tokens []string, admitted bool) (*session.Identity, string, error) {
	for _, t := range tokens {
		id, err := run.Sessions.Resolve(ctx, t)
		switch {
		case err == nil:
			if !admitted || rt.Admits(id.IdP) {
				return id, t, nil
			}
		case !errors.Is(err, session.ErrNoSession):
			return nil, "", err
		}
	}
	return nil, "", session.ErrNoSession
}

// ownSession is outer, nil when the request carries session cookies. The
// session a request comes with, as the endpoints and the sign-in read it,
// is its session cookies (tokens), or, when an sso before this route's
// admitted the request and took them (a stricter sso inside a protected
// site), outer, the session that sso admitted. They travel as two
// parameters, not one struct: the caller's tokens live in a buffer on its
// stack, which a struct that also carries outer to a result (current)
// would move to the heap, on every request.
func ownSession(tokens []string, outer *session.Identity) *session.Identity {
	if len(tokens) > 0 {
		return nil
	}
	return outer
}

// current returns the request's session (with admitted, only one of the
// route's IdPs), or session.ErrNoSession: outer as it was admitted on this
// request, or the first valid session of the tokens (Session).
func (rt *Route) current(ctx context.Context, run *Runtime, tokens []string, outer *session.Identity, admitted bool) (*session.Identity, error) {
	switch {
	case outer == nil:
		id, _, err := rt.Session(ctx, run, tokens, admitted)
		return id, err
	case admitted && !rt.Admits(outer.IdP):
		return nil, session.ErrNoSession
	}
	return outer, nil
}

// StartSignIn answers a navigation without a session of this route: the
// route's chooser page, or a sign-in at its IdP that comes back to the
// page asked for. tokens are the browser's session cookies, whose session
// (another route's, or expired) the sign-in will end; outer, when an sso
// before this one admitted the request and took those cookies, is that
// session, which the sign-in ends instead.
func (rt *Route) StartSignIn(w http.ResponseWriter, r *http.Request, run *Runtime, o Origin, tokens []string, outer *session.Identity) error {
	if rt.Chooser {
		return rt.chooser(w, r.URL.RequestURI())
	}
	return rt.beginLogin(w, r, run, o, rt.Default, idp.SignInRequest{ReturnTo: r.URL.RequestURI()}, tokens, ownSession(tokens, outer))
}

// Identify sets on h what the upstream learns of the session id: the
// identity headers and the signed identity token. It is the one place
// that decides this for the sso handler (h is the request's header) and
// for the verify endpoint (h is its answer's, for the proxy to copy), so
// that both hand on the same. The upstream tokens of a route that passes
// them are set before it, by Authorize, once the access rules allow.
func (rt *Route) Identify(ctx context.Context, run *Runtime, id *session.Identity, o Origin, w http.ResponseWriter, r *http.Request, h http.Header) error {
	return rt.identify(ctx, run, id, o, w, r, h, r.URL.Path)
}

// identify is Identify for the page at path, which a refusal's log line
// names: the verify endpoint's is the original request's, not its own
// (/verify, the same for every question).
func (rt *Route) identify(ctx context.Context, run *Runtime, id *session.Identity, o Origin, w http.ResponseWriter, r *http.Request, h http.Header, path string) error {
	rt.Headers.SetIdentity(h, id)
	if rt.Signer == nil {
		return nil
	}
	err := rt.signIdentity(ctx, run, id, o, w, r, h, path)
	if err != nil {
		// The error's answer (a proxy hands a verify answer to the
		// browser, headers and all) and the site's error routes carry
		// none of the tokens and identity headers Authorize and
		// SetIdentity put in h: the names the plan protects.
		rt.Headers.StripInbound(h)
	}
	return err
}

// signIdentity sets the route's signed identity token on h, on an origin
// something vouches for. Without a signing key in memory and with the
// store away, the request is answered as any other the store fails (503).
func (rt *Route) signIdentity(ctx context.Context, run *Runtime, id *session.Identity, o Origin, w http.ResponseWriter, r *http.Request, h http.Header, path string) error {
	if !o.Vouched {
		return rt.unvouched(path, o)
	}
	tok, err := rt.Signer.Token(ctx, run.Store, id, o)
	if errors.Is(err, upstreamjwt.ErrUnavailable) {
		return rt.SessionUnavailable(w, r, err)
	}
	if err != nil {
		return httpError(http.StatusInternalServerError, err)
	}
	h[rt.Signer.Header()] = tok
	return nil
}

// Unvouched refuses what would build a URL on a host nothing vouches for:
// no host matcher guards the route (the site has none, or the handler is
// in a named route) and it has no base_url. The log says
// what to configure, once at ERROR.
func (rt *Route) Unvouched(r *http.Request, o Origin) error { return rt.unvouched(r.URL.Path, o) }

// unvouched is Unvouched for the page at path (identify).
func (rt *Route) unvouched(path string, o Origin) error {
	msg := "refusing to build sign-in URLs or identity tokens on the request's Host header: the site has no host matcher and the sso directive no base_url; give the site its host name (app.example.com { … }) or set base_url"
	fields := []zap.Field{zap.String("host", o.Site.Host), zap.String("path", path)}
	switch {
	case o.Named != "":
		// The invoking site may well have a host matcher, and the
		// usual advice (give the site its host name) would not help.
		msg = "refusing to build sign-in URLs or identity tokens on the request's Host header: " + NamedRouteAdvice
		fields = append(fields, zap.String("named_route", o.Named))
	case o.Forwarded != "":
		// The site may well have a host matcher: the proxy's value did
		// not pass it, or is not one host[:port] (a list of several).
		msg = "refusing to build sign-in URLs or identity tokens on a trusted proxy's X-Forwarded-Host: it is not one host[:port] that the site's host matcher accepts; have the proxy forward the host name browsers use, or set base_url"
		fields = append(fields, zap.String("x_forwarded_host", shortened(o.Forwarded, 200)))
	}
	logged := false
	rt.unvouchedLog.Do(func() {
		rt.Logger.Error(msg, fields...)
		logged = true
	})
	if !logged {
		rt.Logger.Debug(msg, fields...)
	}
	return rt.fail(baseURLRequiredPage())
}

// Forbidden refuses a signed-in user the route's access rules exclude:
// a page for a navigation, JSON for anything else.
func (rt *Route) Forbidden(w http.ResponseWriter, r *http.Request, id *session.Identity) error {
	return rt.forbidden(w, r.URL.Path, id, IsNavigation(r))
}

// forbidden is Forbidden for the page at path (the verify endpoint's is
// the original request's), which the log line names.
func (rt *Route) forbidden(w http.ResponseWriter, path string, id *session.Identity, navigation bool) error {
	// INFO, not DEBUG: an operator asked why someone gets "Access denied"
	// searches the log for "denied" (docs/troubleshooting.md).
	rt.denials.Info(rt.Logger, id.IdP+"/"+id.UserID, time.Now(), "access denied by the route's rules",
		zap.String("idp", id.IdP), zap.String("user_id", id.UserID), zap.String("path", path))
	if !navigation {
		w.Header().Set("Cache-Control", "no-store")
		return writeJSON(w, http.StatusForbidden, map[string]string{"error": "access denied"})
	}
	return rt.fail(forbiddenPage(rt.PathPrefix))
}

// Unauthorized answers a request without a session that is not a
// navigation: 401 with the login URL, never a redirect (a script cannot
// follow one to an IdP, nor a frame, which IdPs refuse to be framed in)
// and never new login state; its login comes back to the page the
// request was sent from (signInFrom). A form a person submitted after their
// session ended gets that 401 as a page saying so, with a link that signs
// in and comes back to the form's page (the Referer on this site, else the
// URL posted to): what was submitted cannot be carried through a sign-in.
// A frame gets it as a page too, whose link signs in in the whole window
// and comes back to the page the frame is in (frameReturn); a frame in
// another site's page gets one that opens the frame's page in a window of
// its own (frameAnswer).
func (rt *Route) Unauthorized(w http.ResponseWriter, r *http.Request, o Origin) error {
	login, returnTo, as := rt.signInFrom(r.Method, r.URL.RequestURI(), r.Header, o)
	return rt.answerUnauthorized(w, login, returnTo, as)
}

// unauthorizedAs is what a 401 is shown as (answerUnauthorized).
type unauthorizedAs int

const (
	asJSON           unauthorizedAs = iota // a script's request, an API client's
	asForm                                 // a form a person submitted: the sign_in_again page
	asFrame                                // a frame: the sign_in_again page, its link for the whole window
	asCrossSiteFrame                       // a frame in another site's page: the cross_site_frame page
)

// frameAnswer is what a frame's 401 is shown as. A frame in another
// site's page (Sec-Fetch-Site cross-site) never gets the SameSite=Lax
// session cookie, signed in or not, so a sign-in cannot make it show: it
// gets the page that opens it in a window of its own. A frame of this
// site's pages, or of a page of the same site, gets the cookie once
// signed in: the sign_in_again page.
func frameAnswer(h http.Header) unauthorizedAs {
	if h.Get("Sec-Fetch-Site") == "cross-site" {
		return asCrossSiteFrame
	}
	return asFrame
}

// signInFrom decides where a request without a session signs in and comes
// back to, and what its 401 is shown as, for the sso directive
// (Unauthorized) and the verify endpoint alike (which passes the original
// request a proxy describes): the login URL returning to uri for a
// navigation or, for any other request (a form a person submitted, a
// script's fetch), to the page it was sent from when the Referer is on
// this site (o): a sign-in cannot carry what was submitted, and a GET of
// a form's action or an API's URL would be a 405, JSON or another page.
// Without such a Referer (an API client, curl) it returns to uri. A
// frame's returns to the page the frame is in (frameReturn), one in
// another site's page to its own (frameAnswer). returnTo is login's
// return path.
func (rt *Route) signInFrom(method, uri string, h http.Header, o Origin) (login, returnTo string, as unauthorizedAs) {
	switch {
	case inFrame(h):
		if as = frameAnswer(h); as == asFrame {
			uri = rt.frameReturn(h, o)
		}
	case !isNavigation(method, h):
		if submittedForm(method, h) {
			as = asForm
		}
		if ref, ok := sameOriginReferer(h, o); ok {
			uri = ref
		}
	}
	returnTo = rt.returnPath(uri)
	return rt.PathPrefix + "login?return_to=" + url.QueryEscape(returnTo), returnTo, as
}

// sameOriginReferer is the path and query of the request's Referer when
// it is a page of this site (o).
func sameOriginReferer(h http.Header, o Origin) (string, bool) {
	ref, err := url.Parse(h.Get("Referer"))
	if err != nil || ref.Scheme+"://"+idp.CanonicalHost(ref.Scheme, ref.Host) != o.Site.String() {
		return "", false
	}
	return ref.RequestURI(), true
}

// frameReturn is where a sign-in begun from a frame comes back to: the
// sign-in takes the whole window, so the page the frame is in, which a
// frame's Referer is when that page is on this site, else the route's
// home (the frame's own URL would show the frame alone, as a page).
func (rt *Route) frameReturn(h http.Header, o Origin) string {
	if ref, ok := sameOriginReferer(h, o); ok {
		return ref
	}
	return rt.home()
}

// answerUnauthorized answers 401 with login, as signInFrom decided: the
// sign_in_again page for a form a person submitted or a frame, the
// cross_site_frame page, whose link opens returnTo (a path of this site,
// or its URL), for a frame in another site's page, JSON for anything else.
func (rt *Route) answerUnauthorized(w http.ResponseWriter, login, returnTo string, as unauthorizedAs) error {
	switch as {
	case asForm:
		rt.setUnauthorized(w.Header(), login)
		return rt.fail(signInAgainPage(login))
	case asFrame:
		rt.setUnauthorized(w.Header(), login)
		return rt.fail(frameSignInPage(login))
	case asCrossSiteFrame:
		rt.setUnauthorized(w.Header(), login)
		return rt.fail(crossSiteFramePage(returnTo))
	}
	return rt.unauthorized(w, login)
}

// submittedForm tells a form a person submitted (a top-level navigation
// by another method than GET, asking for HTML) from a script's request.
func submittedForm(method string, h http.Header) bool {
	return method != http.MethodGet && method != http.MethodHead &&
		strings.Contains(h.Get("Accept"), "text/html") && isNavigation(http.MethodGet, h)
}

func (rt *Route) setUnauthorized(hd http.Header, login string) {
	hd.Set("WWW-Authenticate", `SSO realm="`+rt.Default.Name+`", login="`+login+`"`)
	hd.Set("Cache-Control", "no-store")
}

func (rt *Route) unauthorized(w http.ResponseWriter, login string) error {
	rt.setUnauthorized(w.Header(), login)
	return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "authentication required", "login": login})
}

// IsNavigation tells a browser loading a page (which may be redirected to
// sign in) from a script or API client (which must get a 401 it can act on:
// a redirect to an IdP is useless to it and would mint login state for
// nothing), as docs/architecture.md's request path says.
func IsNavigation(r *http.Request) bool { return isNavigation(r.Method, r.Header) }

// isNavigation judges a request of that method and headers (the verify
// endpoint judges the original request, whose method the proxy reports).
func isNavigation(method string, h http.Header) bool {
	// An upgrade (a WebSocket) is a script's, also from a client that
	// sends no fetch metadata (browsers over plain http, curl).
	if method != http.MethodGet && method != http.MethodHead || h.Get("Upgrade") != "" {
		return false
	}
	if !topLevel(h) {
		return false
	}
	if h.Get("X-Requested-With") != "" {
		return false
	}
	accept := h.Get("Accept")
	return strings.Contains(accept, "text/html") || strings.Contains(accept, "*/*")
}

// topLevel reports whether a browser's fetch metadata (absent from other
// clients) allows a sign-in to start from the request: a navigation, and
// not of a frame (inFrame), of this site's pages or another's. A sign-in
// can finish in neither (IdPs refuse to be framed, and a frame in another
// site's page would not get the session cookie back), and each start
// leaves a flow cookie: an image or a frame a page repeats by the dozen
// could fill the browser's cookie header for this site until every
// request to it is refused. Any other destination of a navigation is the
// window's: "document", or "empty" when a service worker sends the
// navigation on (a pass-through worker's fetch(e.request), for a link
// from another site too), whose redirect the browser then follows.
func topLevel(h http.Header) bool {
	if m := h.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	return !inFrame(h)
}

// inFrame reports whether the browser's fetch metadata says the request
// loads a frame of a page (an iframe, an embedded object).
func inFrame(h http.Header) bool { return frameDest(h.Get("Sec-Fetch-Dest")) }

// frameDest reports the Sec-Fetch-Dest values of a frame of a page.
func frameDest(dest string) bool {
	switch dest {
	case "iframe", "frame", "embed", "object", "fencedframe":
		return true
	}
	return false
}

// chooser lets the person pick one of the route's IdPs.
func (rt *Route) chooser(w http.ResponseWriter, returnTo string) error {
	names := make([]string, len(rt.IdPs))
	for i, p := range rt.IdPs {
		names[i] = p.Name
	}
	return rt.Pages.Write(w, chooserPage(rt.PathPrefix, names, rt.returnPath(returnTo)))
}

// ServeEndpoint serves the endpoints under PathPrefix. r must carry o's
// site (idp.WithOrigin), for the flow cookies. tokens are the browser's
// session cookies; outer, when an sso before this one admitted the
// request and took them, is the session it admitted, which the endpoints
// that act on the browser's session (login, the callbacks, logout,
// whoami) act on instead, as Authorize does. Errors the caller answers are *Error. When it fails,
// r's header has lost the gateway's cookies (StripOwnCookies): the caller
// hands the error to the server's error routes with r, where a
// reverse_proxy would otherwise pass the session token on
// (docs/security.md: the gateway's cookies never reach an upstream).
func (rt *Route) ServeEndpoint(w http.ResponseWriter, r *http.Request, run *Runtime, o Origin, tokens []string, outer *session.Identity) error {
	err := rt.serveEndpoint(w, r, run, o, tokens, ownSession(tokens, outer))
	if err != nil {
		StripOwnCookies(r.Header)
	}
	return err
}

func (rt *Route) serveEndpoint(w http.ResponseWriter, r *http.Request, run *Runtime, o Origin, tokens []string, outer *session.Identity) error {
	rest := strings.TrimPrefix(r.URL.Path, rt.PathPrefix)
	if earlydata.Refuse(r) {
		// Whoever is on the path can replay early data on a connection of
		// their own; a POST here signs in, signs out or ends sessions. 425
		// has the browser send it again once the handshake is complete
		// (RFC 8470 5.2), which costs it a round trip.
		return httpError(http.StatusTooEarly, fmt.Errorf("sso: %s %q in TLS early data", r.Method, rest))
	}
	if allow := rt.ownEndpointMethods(rest); allow != "" && !slices.Contains(strings.Split(allow, ", "), r.Method) {
		w.Header().Set("Allow", allow)
		return httpError(http.StatusMethodNotAllowed, fmt.Errorf("sso: %s takes %s", rest, allow))
	}
	switch {
	case rest == loginEndpoint:
		return rt.serveLogin(w, r, run, o, tokens, outer)
	case rest == logoutEndpoint:
		return rt.serveLogout(w, r, run, o, tokens, outer)
	case rest == whoamiEndpoint:
		return rt.serveWhoami(w, r, run, tokens, outer)
	case rest == jwksEndpoint && rt.publishesKeys():
		return rt.serveJWKS(w, r, run)
	case rest == repeatedSignInEndpoint:
		return rt.serveRepeatedSignIn(w, r, run, tokens, outer)
	}
	// <protocol>/<idp>/<endpoint>: the IdP's callback, or one of its
	// protocol's other endpoints (SAML metadata and slo). Only the route's
	// own IdPs have endpoints here.
	protocol, tail, _ := strings.Cut(rest, "/")
	name, endpoint, _ := strings.Cut(tail, "/")
	p := rt.provider(name)
	if p == nil || p.Protocol != protocol || endpoint == "" {
		// A person's navigation, or the IdP's POST, to the callback of an
		// IdP the route does not have is a sign-in begun before a reload
		// renamed or removed its IdP: a page that says so, not the
		// browser's own "page not found". A script's request stays a
		// bare 404.
		if m := callbackMethod(protocol, endpoint); name != "" && m != "" && (m == http.MethodPost && r.Method == m || IsNavigation(r)) {
			return rt.configChanged(w, r, run, protocol, name)
		}
		return httpError(http.StatusNotFound, fmt.Errorf("sso: no endpoint %q", r.URL.Path))
	}
	if !o.Vouched {
		return rt.Unvouched(r, o)
	}
	base := rt.endpointBase(o, p)
	if method := callbackMethod(p.Protocol, endpoint); method != "" {
		// A person reaches a callback the IdP POSTs (the SAML ACS) by a
		// GET too: the back button, a bookmark, a link copied from the
		// address bar. The provider refuses it with its own code, and
		// they see the sign-in-failed page with its link to sign in
		// rather than a bare 405; a script still gets the 405.
		if r.Method != method && (r.Method != http.MethodGet || !IsNavigation(r)) {
			w.Header().Set("Allow", method)
			return httpError(http.StatusMethodNotAllowed, fmt.Errorf("sso: %s takes %s", endpoint, method))
		}
		// The session the browser comes with, of whichever IdP, ends
		// with the sign-in: its cookie is about to be replaced.
		previous, err := rt.previousSession(r.Context(), run, tokens, outer)
		if err != nil {
			return rt.signInNotSaved(w, p, err)
		}
		if r.Method == http.MethodPost {
			// The session cookie (SameSite=Lax) does not come along on
			// a POST from the IdP's site: beginLogin sent it ahead.
			var carried string
			if run.Flows.Take(w, r, previousSessionFlow, &carried) == nil && previous == "" {
				previous = carried
			}
		}
		return rt.serveCallback(w, r, run, o, p, base, previous, tokens, outer)
	}
	err := p.Provider.ServeEndpoint(w, r, base, endpoint)
	var le *idp.LoginError
	switch {
	case errors.Is(err, idp.ErrNoEndpoint):
		return httpError(http.StatusNotFound, fmt.Errorf("sso: no endpoint %q", r.URL.Path))
	case errors.As(err, &le) && le.Logout:
		rt.logoutRefusals.Warn(rt.Logger, p.Name+"/"+le.Code, time.Now(), "logout message refused",
			zap.String("idp", p.Name), zap.String("reason", le.Code), zap.Error(err))
		return rt.fail(logoutIncompletePage(p.Name, le.Code, le.SessionEnded))
	}
	return err
}

// CodeSignInConfigChanged is the reference of a callback of an IdP the
// route does not have by that name and protocol: a sign-in begun before a
// reload renamed or removed its IdP (or changed its protocol).
const CodeSignInConfigChanged = "signin_config_changed"

// staleACSBody bounds what configChanged reads of a POST for its
// RelayState (idp.ReadForm): the SAML ACS's default max_response_size.
const staleACSBody = 256 << 10

// configChanged answers a person at the callback of an IdP the route does
// not have (serveEndpoint) with the sign-in-failed page, whose sign-in at
// the route's IdP comes back to the page the flow cookie names (else to
// the route's home), and clears that cookie (idp.SignInFlowID,
// idp.FlowReturn: what the providers write). Nothing of the URL is shown:
// a link cannot put words on the page.
func (rt *Route) configChanged(w http.ResponseWriter, r *http.Request, run *Runtime, protocol, name string) error {
	if p := rt.Configured[name]; p != nil && p.Protocol == protocol {
		// The config has that IdP, on another route: no reload, but
		// Caddy's routes send that route's endpoints here (start and
		// `caddy sso check` say which, routeorder.Misrouted). Once: it
		// is the config's, whoever's browser brings it.
		rt.misroutedLog.Do(func() {
			rt.Logger.Warn("a callback of an IdP this sso route does not have reached it: Caddy's routes send another sso route's endpoints here, so its sign-ins cannot complete; give that route a path_prefix of its own that its route receives",
				zap.String("idp", name), zap.String("path", r.URL.Path))
		})
	}
	var key string
	switch protocol {
	case idp.ProtocolOIDC:
		key = r.URL.Query().Get("state")
	case idp.ProtocolSAML:
		if r.Method == http.MethodPost && idp.ReadForm(w, r, staleACSBody) == nil {
			key = r.PostForm.Get("RelayState")
		}
	}
	var fl idp.FlowReturn
	if key == "" || run.Flows.Take(w, r, idp.SignInFlowID(protocol, name, key), &fl) != nil || fl.ReturnTo == "" {
		fl.ReturnTo = rt.home()
	}
	pg := signInFailedPage(rt.PathPrefix, "", CodeSignInConfigChanged)
	pg.Status = http.StatusNotFound
	pg.Message = "This sign-in began before the site's sign-in settings changed, so it cannot be completed. Sign in again; if it keeps failing, give your administrator the reference below."
	pg.Links[0].Href = rt.PathPrefix + "login?return_to=" + url.QueryEscape(rt.returnPath(fl.ReturnTo))
	return rt.fail(pg)
}

// returnPath is where a sign-in started from uri comes back to: uri as a
// local path (idp.LocalPath), or the route's home when uri is a gateway
// callback with an IdP's answer (carriesIdPAnswer). A sign-in begun before
// path_prefix changed comes back to its old callback, a page of the site
// since: returning there would hand the app the authorization code in its
// URL (and its logs), and lose the page asked for all the same. That page
// is in the old sign-in's flow cookie, which the handler strips from a
// protected page's request before a sign-in can start, so home it is.
func (rt *Route) returnPath(uri string) string {
	for len(uri) > idp.MaxLocalPath && uri != "" {
		uri = rt.shorterReturn(uri)
	}
	uri = idp.LocalPath(uri)
	if carriesIdPAnswer(uri) {
		return rt.home()
	}
	return uri
}

// untilItFits runs save, which writes a flow cookie carrying returnTo,
// and while the cookie has no room for it (idp.ErrFlowTooLarge) runs it
// again with ever shorter return paths (shorterReturn). It returns the
// return path of the last run, whether that is a shorter one, and the last
// run's error.
func (rt *Route) untilItFits(returnTo string, save func(returnTo string) error) (string, bool, error) {
	err, cut := save(returnTo), false
	for errors.Is(err, idp.ErrFlowTooLarge) {
		shorter := rt.shorterReturn(returnTo)
		if shorter == "" {
			break
		}
		returnTo, cut = rt.returnPath(shorter), true
		err = save(returnTo)
	}
	return returnTo, cut, err
}

// shorterReturn is the next place a sign-in begun from uri can come back
// to when uri is too long to carry (idp.MaxLocalPath, the flow cookie):
// uri without its query, so the person still lands on the page, then the
// route's home, so they stay on the route; "" after the home.
func (rt *Route) shorterReturn(uri string) string {
	if i := strings.IndexAny(uri, "?#"); i > 0 {
		return uri[:i]
	}
	if home := rt.home(); uri != home {
		return home
	}
	return ""
}

// carriesIdPAnswer reports whether the local path uri is a gateway
// callback, under any path prefix, with the IdP's answer: an OIDC
// …/oidc/<name>/callback whose query has state and code or error, or a SAML
// …/saml/<name>/acs, whose answer a POST carries and which no GET is a page
// of. The path's shape and the parameters together keep out an app's own
// pages with a state parameter (/stores?state=CA&code=94).
func carriesIdPAnswer(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	seg := strings.Split(u.Path, "/")
	n := len(seg)
	if n < 4 || seg[n-2] == "" {
		return false
	}
	switch callbackMethod(seg[n-3], seg[n-1]) {
	case http.MethodGet:
		q := u.Query()
		return q.Has("state") && (q.Has("code") || q.Has("error"))
	case http.MethodPost:
		return true
	}
	return false
}

// callbackMethod is the method of a protocol's callback endpoint
// (idp.CallbackEndpoint), and "" for any other endpoint. It depends on the
// protocol alone, so it also answers for a callback whose IdP is not the
// route's (any more) (docs/architecture.md, "Endpoints").
func callbackMethod(protocol, endpoint string) string {
	if e, method := idp.CallbackEndpoint(protocol); e != "" && e == endpoint {
		return method
	}
	return ""
}

// home is the folder the route's endpoints live in: "/" for the default
// /.sso/, "/app/" for a route under /app/* with path_prefix /app/.sso/
// (which such a route needs), so a browser sent there stays on the route.
func (rt *Route) home() string {
	dir := path.Dir(strings.TrimSuffix(rt.PathPrefix, "/"))
	if !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	return dir
}

// endpointBase is the absolute URL of p's endpoints on this site, which
// every idp.Provider method takes (docs/architecture.md, "Endpoints").
func (rt *Route) endpointBase(o Origin, p *IdP) string {
	return EndpointBase(o.Site, rt.PathPrefix, p.Protocol, p.Name)
}

// EndpointBase is the absolute URL under which a route with pathPrefix on
// site serves the endpoints of the IdP name (of protocol): its callback,
// ACS, logout and metadata URLs are built on it. `caddy sso check` prints
// the URLs an IdP administrator registers by it, so they are the ones the
// gateway answers at.
func EndpointBase(site idp.Origin, pathPrefix, protocol, name string) string {
	return site.URL(endpointDir(pathPrefix, protocol, name))
}

// endpointDir is the path under which the IdP name (of protocol) has its
// endpoints: the path of EndpointBase, and of IdPEndpointPaths' paths.
func endpointDir(pathPrefix, protocol, name string) string {
	return pathPrefix + protocol + "/" + name + "/"
}

// ownEndpointMethods is the Allow of the gateway's own endpoint rest, ""
// for any other path (an IdP's endpoints check their methods themselves):
// a request by another method gets 405 with it (RFC 9110 15.5.6).
func (rt *Route) ownEndpointMethods(rest string) string {
	if rest == jwksEndpoint && !rt.publishesKeys() {
		return "" // served only where a route of the config signs an identity token
	}
	return ownEndpointAllow(rest)
}

// serveLogin starts a sign-in explicitly: GET
// /.sso/login?idp=&return_to=&reauth=. reauth=1 (or true) asks the IdP to
// authenticate the person again, for an app about to do something
// sensitive (idp.SignInRequest.Reauthenticate); any other value is an
// ordinary sign-in. Either replaces the browser's session.
func (rt *Route) serveLogin(w http.ResponseWriter, r *http.Request, run *Runtime, o Origin, tokens []string, outer *session.Identity) error {
	q := r.URL.Query()
	reauth := q.Get("reauth") == "1" || q.Get("reauth") == "true"
	p := rt.Default
	name := q.Get("idp")
	if name == "" && reauth && rt.Chooser {
		// The person re-authenticates at the IdP they signed in with:
		// the chooser's links would drop reauth.
		if id, err := rt.current(r.Context(), run, tokens, outer, true); err == nil {
			name = id.IdP
		}
	}
	if name == "" && rt.Chooser {
		return rt.chooser(w, q.Get("return_to"))
	}
	if name != "" {
		if p = rt.provider(name); p == nil {
			return rt.fail(unknownIdPPage(rt.PathPrefix))
		}
	}
	return rt.beginLogin(w, r, run, o, p, idp.SignInRequest{ReturnTo: q.Get("return_to"), Reauthenticate: reauth}, tokens, outer)
}

// previousSessionFlow names the flow cookie that carries the hash of the
// browser's session to a callback the IdP's site POSTs (the SAML ACS), so
// that the sign-in ends it there as it does on a callback the browser
// reaches with its session cookie (docs/security.md, "One host, several
// IdPs"). It lives as long as a sign-in may take by default; one that
// takes longer leaves that session to its own timeouts.
const previousSessionFlow = "previous-session"

// previousSession returns the hash of the session the browser comes with:
// the outer session, or of the cookies the first valid one, else the first
// cookie's (perhaps expired, still stored); "" for none.
func (rt *Route) previousSession(ctx context.Context, run *Runtime, tokens []string, outer *session.Identity) (string, error) {
	if outer != nil {
		return outer.SessionHash, nil
	}
	_, token, err := rt.Session(ctx, run, tokens, false)
	if err != nil && !errors.Is(err, session.ErrNoSession) {
		return "", err
	}
	if token == "" && len(tokens) > 0 {
		token = tokens[0]
	}
	if token == "" {
		return "", nil
	}
	return session.Hash(token), nil
}

// beginLogin starts a sign-in at p as req asks, which will end the
// session the request comes with (previousSession).
func (rt *Route) beginLogin(w http.ResponseWriter, r *http.Request, run *Runtime, o Origin, p *IdP, req idp.SignInRequest, tokens []string, outer *session.Identity) error {
	if !o.Vouched {
		return rt.Unvouched(r, o)
	}
	asked := req.ReturnTo
	req.ReturnTo = rt.returnPath(asked)
	cut := len(asked) > idp.MaxLocalPath
	if !topLevel(r.Header) {
		as := asJSON
		if inFrame(r.Header) {
			// The login URL loaded in a frame (a proxy's redirect of
			// one): its sign-in takes the whole window, or, in another
			// site's page, the page it was for opens in one of its own.
			if as = frameAnswer(r.Header); as == asFrame {
				req.ReturnTo = rt.returnPath(rt.frameReturn(r.Header, o))
			}
		}
		login := rt.PathPrefix + "login?idp=" + url.QueryEscape(p.Name) + "&return_to=" + url.QueryEscape(req.ReturnTo)
		if req.Reauthenticate {
			login += "&reauth=1"
		}
		return rt.answerUnauthorized(w, login, req.ReturnTo, as)
	}
	if _, method := idp.CallbackEndpoint(p.Protocol); method == http.MethodPost && (len(tokens) > 0 || outer != nil) {
		// Before Begin, which writes the redirect. If finding the
		// session fails, the sign-in only leaves it to its timeouts.
		if previous, err := rt.previousSession(r.Context(), run, tokens, outer); err == nil && previous != "" {
			if err := run.Flows.Save(w, r, previousSessionFlow, previous, idp.DefaultLoginTimeout, http.SameSiteNoneMode); err != nil {
				rt.Logger.Warn("starting sign-in: the current session cannot be carried to the callback, so the sign-in will not end it",
					zap.String("idp", p.Name), zap.Error(err))
			}
		}
	}
	// A return path too long for the flow cookie (a long query: a saved
	// search, a dashboard's filters) is not worth a failed sign-in, nor
	// an ERROR line per request: the sign-in comes back to the page
	// without its query, else to the route's home. No store write keeps
	// the whole link: nothing is written before a sign-in.
	_, shorter, err := rt.untilItFits(req.ReturnTo, func(returnTo string) error {
		req.ReturnTo = returnTo // the last run's stays, for the log below
		return p.Provider.Begin(w, r, rt.endpointBase(o, p), req)
	})
	if cut = cut || shorter; cut && err == nil {
		rt.shortReturns.Info(rt.Logger, p.Name, time.Now(), "the page asked for is too long to come back to after sign-in; coming back to a shorter one",
			zap.String("idp", p.Name), zap.Int("asked_length", len(asked)), zap.String("asked", shortened(asked, 200)),
			zap.String("return_to", req.ReturnTo))
	}
	if err != nil {
		code := idp.ErrorCode(err, oidc.CodeIdPUnavailable)
		// Counted: while the IdP is away, or contradicts the
		// configuration, no sign-in reaches a callback, and an alert on
		// failed sign-ins must fire all the same.
		if rt.Metrics != nil {
			rt.Metrics.Login(p.Name, p.Protocol, "failed", code)
		}
		// Every navigation of an anonymous visitor gets here while the
		// IdP is away: one ERROR line per IdP and reason a minute.
		key := p.Name + "/" + code
		if code == idp.CodeMisconfigured {
			rt.startFailures.Error(rt.Logger, key, time.Now(), "starting sign-in: the identity provider's settings contradict the configuration; an administrator must correct them (the warning logged at start says how)",
				zap.String("idp", p.Name), zap.String("reason", code), zap.Error(err))
			return rt.fail(misconfiguredPage(p.Name))
		}
		rt.startFailures.Error(rt.Logger, key, time.Now(), "starting sign-in", zap.String("idp", p.Name), zap.String("reason", code), zap.Error(err))
		return rt.fail(unavailablePage(p.Name, code))
	}
	return nil
}

// reauthUser is the user whose re-authentication le refused: the session
// the browser is signed in with, which stays. Any other refusal names
// none: the person is not known, and a session cookie sent along with a
// made-up callback says nothing about who sent it (a reauth_not_fresh
// refusal comes only after the IdP's answer checked out).
func (rt *Route) reauthUser(ctx context.Context, run *Runtime, le *idp.LoginError, tokens []string, outer *session.Identity) string {
	if le.Code != idp.CodeReauthNotFresh {
		return ""
	}
	if id, err := rt.current(ctx, run, tokens, outer, false); err == nil && id != nil {
		return id.UserID
	}
	return ""
}

// serveCallback completes a sign-in: the provider verifies, signin maps,
// provisions and starts the session in one transaction, and this turns the
// outcome into a page or a redirect.
func (rt *Route) serveCallback(w http.ResponseWriter, r *http.Request, run *Runtime, o Origin, p *IdP, base, previous string, tokens []string, outer *session.Identity) error {
	ctx := r.Context()
	a, returnTo, err := p.Provider.Callback(w, r, base)
	if err != nil {
		var le *idp.LoginError
		if !errors.As(err, &le) {
			le = &idp.LoginError{Code: "login_failed", Err: err}
		}
		run.Refusals.Record(ctx, p.Name, le, rt.clientIP(r), rt.reauthUser(ctx, run, le, tokens, outer))
		if rt.Metrics != nil {
			rt.Metrics.Login(p.Name, p.Protocol, "failed", le.Code)
		}
		if le.Code == idp.CodeMisconfigured {
			return rt.fail(misconfiguredPage(p.Name))
		}
		if signin.IdPUnreachable(le.Code) {
			// The answer may be good: the IdP's keys or metadata could
			// not be fetched to check it. The page says trying again
			// may help, with the status (502) an operator's
			// handle_errors for an IdP that is away takes, as at the
			// start of a sign-in.
			return rt.fail(unavailablePage(p.Name, le.Code))
		}
		if errors.Is(err, idp.ErrFlowMissing) || errors.Is(err, idp.ErrFlowExpired) {
			return rt.repeatedSignIn(w, r, run, p, le.Code, tokens, outer)
		}
		return rt.fail(signInFailedPage(rt.PathPrefix, p.Name, le.Code))
	}
	out, err := run.SignIn.SignIn(ctx, &p.SignIn, a, previous)
	if err != nil {
		// Counted, so that an alert on failed sign-ins fires during a
		// store outage too, with the reference of the page shown.
		err = rt.signInNotSaved(w, p, err)
		if pe, ok := AsPageError(err); ok && rt.Metrics != nil {
			rt.Metrics.Login(p.Name, p.Protocol, LoginNotSaved, pe.Code)
		}
		return err
	}
	switch {
	case out.Replay != nil:
		run.Refusals.Record(ctx, p.Name, out.Replay, rt.clientIP(r), "")
		return rt.repeatedSignIn(w, r, run, p, out.Replay.Code, tokens, outer)
	case out.Denial != nil:
		return rt.fail(denialPage(p, a, out))
	}
	setSessionCookie(w, o, out.Session.Token)
	w.Header().Set("Cache-Control", "no-store")
	// returnPath, not LocalPath alone: an IdP-initiated SAML sign-in's
	// return path is the IdP's RelayState, which no sign-in begun here
	// filtered, and a gateway callback there would be a failure page.
	http.Redirect(w, r, rt.returnPath(returnTo), http.StatusSeeOther) //nolint:gosec // G710: returnPath keeps only a path on this site
	return nil
}

// A callback whose login is gone (the first callback cleared its flow
// cookie, or consumed its state or assertion ID) is what the back button
// brings after a sign-in: the IdP's page comes back from the history and,
// the IdP's session still alive, sends the browser on to the callback
// again. So do a reload and a bookmark of the IdP's page. A browser already
// signed in with that IdP is sent on to the route's home rather than shown
// a failure: the sign-in it repeats has happened (mod_auth_openidc does
// the same).
//
// A callback the IdP's site POSTs (the SAML ACS) comes without the
// SameSite=Lax session cookie, so that answer waits for the GET it is
// redirected to, repeatedSignInEndpoint, which a top-level navigation
// reaches with the cookie. The reason travels in a flow cookie, not the
// URL, so a link cannot make that page show text of its choosing.
const repeatedSignInFlow = "signin-failed"

type repeatedSignInReason struct{ IdP, Code string }

func (rt *Route) repeatedSignIn(w http.ResponseWriter, r *http.Request, run *Runtime, p *IdP, code string, tokens []string, outer *session.Identity) error {
	if len(tokens) == 0 && outer == nil && r.Method == http.MethodPost &&
		run.Flows.Save(w, r, repeatedSignInFlow, repeatedSignInReason{p.Name, code}, time.Minute, http.SameSiteLaxMode) == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, rt.PathPrefix+repeatedSignInEndpoint, http.StatusSeeOther)
		return nil
	}
	return rt.signedInAlready(w, r, run, p, code, tokens, outer)
}

// CodeSignInFailedReloaded is the reference of the sign-in-failed page
// shown again without its reason: the page reloaded, or reached by the
// back or forward button, after its first view took the flow cookie that
// carried the reason (serveRepeatedSignIn).
const CodeSignInFailedReloaded = "signin_failed_reloaded"

// serveRepeatedSignIn is repeatedSignIn after the redirect, with the
// browser's session cookie. A reload of its page finds the flow cookie
// taken by the first view: it shows the same page, with a fixed reference
// (the first view's is in the log and the audit trail) and a sign-in at
// the route's IdP, which the reason no longer names. Nothing of the URL is
// shown, so a link cannot put words on the page.
func (rt *Route) serveRepeatedSignIn(w http.ResponseWriter, r *http.Request, run *Runtime, tokens []string, outer *session.Identity) error {
	var reason repeatedSignInReason
	var p *IdP
	if run.Flows.Take(w, r, repeatedSignInFlow, &reason) == nil {
		p = rt.provider(reason.IdP)
	}
	if p == nil {
		pg := signInFailedPage(rt.PathPrefix, "", CodeSignInFailedReloaded)
		pg.Links[0].Href = rt.PathPrefix + "login?return_to=" + url.QueryEscape(rt.home())
		return rt.fail(pg)
	}
	return rt.signedInAlready(w, r, run, p, reason.Code, tokens, outer)
}

// signedInAlready sends a browser with a valid session of p on to the
// route's home, and shows any other the sign-in-failed page with code.
func (rt *Route) signedInAlready(w http.ResponseWriter, r *http.Request, run *Runtime, p *IdP, code string, tokens []string, outer *session.Identity) error {
	if id, err := rt.current(r.Context(), run, tokens, outer, false); err == nil && id.IdP == p.Name {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, rt.home(), http.StatusSeeOther)
		return nil
	}
	return rt.fail(signInFailedPage(rt.PathPrefix, p.Name, code))
}

func (rt *Route) clientIP(r *http.Request) string {
	if rt.ClientIP != nil {
		if ip := rt.ClientIP(r); ip != "" {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// signInNotSaved answers a sign-in the IdP vouched for but the store could
// not record (a full disk, a read-only or failing file system, a database
// that is away): nothing of it was kept, so the person may simply try
// again later. When the store sent the commit but could not confirm it
// (store.ErrOutcomeUnknown: a connection lost during COMMIT, a failed
// sync) it may have been kept, and the page and log say so. The log line
// carries the store's error, which names the store and the cause.
func (rt *Route) signInNotSaved(w http.ResponseWriter, p *IdP, err error) error {
	w.Header().Set("Retry-After", StoreRetryAfter)
	// Logged within the store failures' budget: every sign-in of an
	// outage gets here.
	if errors.Is(err, store.ErrOutcomeUnknown) {
		rt.storeFailures.Error(rt.Logger, "signin-unconfirmed/"+p.Name, time.Now(), "sign-in may or may not have been saved: the store did not confirm it; the browser got no session",
			zap.String("idp", p.Name), zap.Error(err))
		return rt.fail(signInUnconfirmedPage(p.Name))
	}
	rt.storeFailures.Error(rt.Logger, "signin/"+p.Name, time.Now(), "sign-in could not be saved; nothing of it was kept", zap.String("idp", p.Name), zap.Error(err))
	return rt.fail(signInNotSavedPage(p.Name))
}

// missingAttributesPage lists what the IdP must send and what it sent
// (names only; an attribute that arrived empty is marked so), for the IdP
// administrator. code is the denial's reason: missing_subject or
// missing_attributes.
func missingAttributesPage(p *IdP, a *idp.Assertion, code string, missing []string) Page {
	pg := missingAttributesPageOf(p.Name, code)
	for _, name := range a.AttributeNames() {
		pg.Received = append(pg.Received, PageAttribute{Name: name, Empty: a.First(name) == ""})
	}
	for _, m := range missing {
		pg.Expected = append(pg.Expected, PageExpectation{Attribute: m, Names: p.SignIn.Mapper.Expected(m)})
	}
	return pg
}

func denialPage(p *IdP, a *idp.Assertion, out *signin.Outcome) Page {
	d := out.Denial
	switch d.Reason {
	case provision.ReasonMissingAttributes, provision.ReasonMissingSubject:
		pg := missingAttributesPage(p, a, d.Reason, d.Missing)
		if out.Unmapped != nil && out.Unmapped.NameIDFormat != "" {
			// The admin sees a NameID in their SAML tracer: say why it
			// was not used.
			pg.Message += " The SAML NameID it sent has the format " + nameIDFormatShown(out.Unmapped.NameIDFormat) +
				", which is not persistent and so cannot identify a user: send a uniqueUserId attribute (or a persistent NameID)."
		}
		return pg
	}
	// provision words the reason for the person signing in; the page adds
	// only a title.
	return deniedPage(p.Name, d.Reason, d.Message(), d.Reason == provision.ReasonPending)
}

// idpLogout is what the IdP's logout needs of a session SignOut ended (OIDC
// reads only the ID token; SAML the NameID as issued and SessionIndex).
func idpLogout(e *session.Ended) idp.LogoutInfo {
	l := e.Session.Logout
	return idp.LogoutInfo{Subject: l.Subject, SubjectFormat: l.SubjectFormat, NameQualifier: l.NameQualifier,
		SPNameQualifier: l.SPNameQualifier, SessionID: l.SessionID, IDToken: e.IDToken()}
}

// maxLogoutBody bounds what a sign-out POST's body is read for
// (idp.ReadForm): the confirmation form sends return_to alone, a local path
// that a sign-in's flow cookie could not carry back beyond a few kilobytes
// anyway.
const maxLogoutBody = 8 << 10

// serveLogout: GET shows a confirmation button, POST signs out. Signing out
// by POST only, from this origin, keeps other sites from logging users out.
func (rt *Route) serveLogout(w http.ResponseWriter, r *http.Request, run *Runtime, o Origin, tokens []string, outer *session.Identity) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		pg := logoutPage(rt.PathPrefix, idp.LocalPath(r.URL.Query().Get("return_to")))
		// The POST continues at the IdP of the browser's session then,
		// which may not be the session of now: the page may have been
		// opened before signing in, in another tab. So any of the
		// route's IdPs (another IdP's session is ended here only).
		for _, p := range rt.IdPs {
			if o := p.Provider.LogoutOrigin(r.Context()); o != "" {
				pg.FormTargets = append(pg.FormTargets, o)
			}
		}
		return rt.Pages.Write(w, pg)
	}
	// Refused before its body is read: any site's page, and anyone
	// without a session, can post here, with a body of any size.
	if !sameOrigin(r, o) {
		// The page shows this reference; the log says which site. Any
		// site's page can post here, so within a budget, and the
		// Origin header's text cut short.
		rt.crossSiteLogouts.Warn(rt.Logger, "cross_site_logout", time.Now(), "sign-out refused",
			zap.String("reason", "cross_site_logout"), zap.String("origin", shortened(r.Header.Get("Origin"), 100)),
			zap.String("sec_fetch_site", shortened(r.Header.Get("Sec-Fetch-Site"), 30)))
		return rt.fail(logoutRefusedPage(rt.PathPrefix))
	}
	// The form's return_to, from a capped body (or the query). No
	// browser's form sends more, so a larger body is a script's: a plain
	// 413, logged within the same budget. A malformed body signs out all
	// the same, coming back home.
	if err := idp.ReadForm(w, r, maxLogoutBody); errors.Is(err, idp.ErrFormTooLarge) {
		rt.crossSiteLogouts.Warn(rt.Logger, "logout_too_large", time.Now(), "sign-out refused",
			zap.String("reason", "logout_too_large"), zap.Int64("limit", maxLogoutBody))
		return httpError(http.StatusRequestEntityTooLarge, fmt.Errorf("sso: sign-out: %w", err))
	}
	returnTo := idp.LocalPath(r.Form.Get("return_to"))
	clearBrowserCache(w)
	// Every stored session among the cookies ends, whatever its IdP. One that had ended already (idle, past
	// its lifetime) still leads to its IdP's logout, which is all its
	// cookie gets: the IdP's session outlives ours (docs/security.md).
	// Without cookies, the outer session ends (by its hash: an sso before
	// this one took the cookie), whatever its IdP too. A sign-out clicked
	// twice finds the session ended (SignOut keeps it stored until the
	// sweep), on this instance or another: the second answer, which the
	// browser shows, goes on to the IdP's logout too.
	var (
		ended, endedBefore           *session.Ended
		endedToken, endedBeforeToken string // their cookies, "" for the outer session's
	)
	signedOut := func(e *session.Ended, token string) {
		if e == nil {
			return
		}
		if e.Before {
			// Not audited (it had ended): no log line of a sign-out.
			if endedBefore == nil {
				endedBefore, endedBeforeToken = e, token
			}
			return
		}
		// The session.logged_out event is audited; audit events are log
		// lines too (docs/security.md). A write whose commit was learned
		// by reading it back (store.ErrOutcomeUnknown) says so.
		fields := []zap.Field{zap.String("idp", e.Session.IdP), zap.String("user_id", e.Session.UserID)}
		if e.OutcomeUnknown {
			fields = append(fields, zap.Bool("outcome_unknown", true))
		}
		rt.Logger.Info("signed out", fields...)
		if ended == nil {
			ended, endedToken = e, token
		}
	}
	for _, t := range tokens {
		e, err := run.Sessions.SignOut(r.Context(), t)
		if err != nil {
			return rt.signOutUnrecorded(w, o, run, tokens, err)
		}
		signedOut(e, t)
	}
	if outer != nil {
		// A store that cannot record it: SignOutHash refuses the session
		// here from now on, as SignOut does.
		e, err := run.Sessions.SignOutHash(r.Context(), outer.SessionHash)
		if err != nil {
			return rt.signOutUnrecorded(w, o, run, nil, err)
		}
		signedOut(e, "")
	}
	// A live session's IdP first, else an ended session's.
	if ended == nil {
		ended, endedToken = endedBefore, endedBeforeToken
	}
	// The IdP's own logout only for the route's IdPs, whose endpoints
	// (where the IdP sends the browser back) are served here.
	if ended != nil && o.Vouched {
		if p := rt.provider(ended.Session.IdP); p != nil {
			// The cookie, naming a session ended in the store, stays a
			// minute: a second click can come after this answer has
			// arrived, while the tab is on its way to the IdP (a slow
			// IdP page), and its POST must still name the session to go
			// on to the IdP's logout; cleared, it showed "Signed out"
			// and left the IdP's session alive. It admits nothing.
			keepSignedOutCookie(w, o, endedToken)
			// A return path too long for the logout's flow cookie
			// shortens as a sign-in's does (beginLogin): the IdP's
			// logout matters more than the page after it.
			var (
				done bool
				err  error
			)
			returnTo, _, err = rt.untilItFits(returnTo, func(returnTo string) (err error) {
				done, err = p.Provider.Logout(w, r, rt.endpointBase(o, p), idpLogout(ended), returnTo)
				return err
			})
			if err != nil {
				rt.Logger.Warn("identity provider logout unavailable", zap.String("idp", p.Name), zap.Error(err))
			}
			if done {
				return nil
			}
		}
	}
	clearSessionCookie(w, o) // after a kept one: the later Set-Cookie wins
	return rt.Pages.Write(w, signedOutPage(rt.PathPrefix, returnTo))
}

// clearBrowserCache takes the site's pages out of the caches of the
// browser that signs out. The HTTP cache and the back/forward cache keep a
// page whose app sent a Cache-Control without no-store (private.go), and
// the back button would show the signed-out person's page from there;
// emptied, it asks the gateway again, which sends it to sign in. Chromium
// may hold the answer up while it clears a large cache.
func clearBrowserCache(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Clear-Site-Data", `"cache"`)
}

// signOutUnrecorded answers a sign-out the store could not record: the
// cookie is cleared, and the sessions of tokens are refused here until the
// store records their end (session.Manager.RevokeLater), so that a copy of
// the cookie does not go on working meanwhile.
func (rt *Route) signOutUnrecorded(w http.ResponseWriter, o Origin, run *Runtime, tokens []string, err error) error {
	clearSessionCookie(w, o)
	for _, t := range tokens {
		run.Sessions.RevokeLater(t, store.EventSessionLoggedOut)
	}
	return rt.StoreUnavailable(w, true, msgSignOutUnrecorded, err)
}

// shortened is a client's header cut to n bytes for a log line: anyone
// can send one of any length.
func shortened(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// sameOrigin refuses requests that a browser marks as coming from another
// site. Non-browser clients send neither header and are let through: CSRF
// needs a victim's browser.
func sameOrigin(r *http.Request, o Origin) bool {
	if origin := r.Header.Get("Origin"); origin != "" && origin != o.Site.String() {
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
	// AuthTime is when the person last authenticated at the IdP, as the
	// identity JWT's auth_time says; absent when the IdP did not say.
	AuthTime time.Time `json:"auth_time,omitzero"`
}

func (rt *Route) serveWhoami(w http.ResponseWriter, r *http.Request, run *Runtime, tokens []string, outer *session.Identity) error {
	w.Header().Set("Cache-Control", "no-store")
	id, err := rt.current(r.Context(), run, tokens, outer, true)
	if errors.Is(err, session.ErrNoSession) {
		return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not signed in"})
	}
	// Anyone may ask with any cookie value while the store is away: the
	// answer is the protected paths' (503 store_unavailable JSON with
	// Retry-After, the error logged within the store-failure budget), not
	// a 500 carrying the store's error for the server to log at ERROR
	// each time and for handle_errors to show as {err.message}.
	if err != nil {
		return rt.StoreUnavailable(w, false, msgSessionUnavailable, err)
	}
	// A person the route's rules refuse gets what every other path of the
	// route answers: an app asking "who is signed in" before it shows
	// itself would otherwise show itself and then fail every call.
	if !rt.Access.Permits(id) {
		return rt.forbidden(w, r.URL.Path, id, IsNavigation(r))
	}
	var u *store.User
	err = run.Store.View(r.Context(), func(tx store.Tx) error {
		var err error
		u, err = tx.User(id.UserID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		// Deleted since the session was read: its sessions are ending.
		return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not signed in"})
	}
	if err != nil {
		return rt.StoreUnavailable(w, false, msgSessionUnavailable, fmt.Errorf("sso whoami: %w", err))
	}
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	return writeJSON(w, http.StatusOK, whoami{ID: u.ID, Email: u.Email, FirstName: u.FirstName,
		LastName: u.LastName, Groups: groups, IdP: id.IdP, Source: u.Source, Created: u.Created.UTC(),
		LastLogin: u.LastLogin.UTC(), Expires: id.Expires.UTC(), AuthTime: id.AuthTime.UTC()})
}

// publishesKeys reports whether the route serves jwks.json: a route of
// its config, this one or another, signs identity tokens (Keys; a route
// that signs is among them, SignIdentity).
func (rt *Route) publishesKeys() bool { return rt.Keys.publishes() }

// serveJWKS publishes the keys that verify the identity tokens of every
// route of the config (Keys).
func (rt *Route) serveJWKS(w http.ResponseWriter, r *http.Request, run *Runtime) error {
	keys := rt.Keys
	// The keys come from the store. Anyone may ask for them, so a store
	// that is away gets the 503 of every other read, budgeted in the log,
	// not a 500 whose error Caddy logs per request.
	b, maxAge, err := keys.JWKS(r.Context(), run.Store)
	if err != nil {
		return rt.StoreUnavailable(w, false, "", err)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", maxAge))
	_, err = w.Write(b)
	return err
}

// jwksMaxAge is how long, in seconds, a verifier may cache the key set of
// a signer whose keys rotate every rotation: five minutes, or half a
// rotation when rotations are shorter. The set holds the previous, current
// and next keys, so a copy verifies every token signed within one rotation
// after it was fetched.
func jwksMaxAge(rotation time.Duration) int {
	return int(max(min(5*time.Minute, rotation/2), time.Second) / time.Second)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// CheckPathPrefix is the rule for path_prefix: a path of its own under
// the site, which the sso endpoints take over, starting and ending with
// /, not / alone (every request of the site would go to the endpoints, a
// 404 for all but them), made of path characters, without empty, . or ..
// segments (browsers resolve those away, so no request would match).
func CheckPathPrefix(p string) error {
	// The segment rule is urlpath's, shared with sso_scim's base_path.
	if len(p) < 3 || p[0] != '/' || p[len(p)-1] != '/' || !urlpath.Segments(p[1:len(p)-1]) {
		return fmt.Errorf("path_prefix %q must start and end with / and be a path of its own, such as /.sso/ or /auth/sso/: not / alone (the whole site would answer with the sso endpoints), its segments non-empty, not . or .., and made of letters, digits and -._~!$&'()*+,;=:@ only (no ?, #, %%, spaces or control characters)", p)
	}
	return nil
}

// nameIDFormatShown is a NameID Format as a page may say it. The value
// comes from the IdP's assertion and reaches {http.auth.sso.message},
// which an operator's error page may render with Caddy's templates
// (text/template, unescaped): anything but a plain URI is not repeated.
func nameIDFormatShown(f string) string {
	if len(f) == 0 || len(f) > 200 || strings.Trim(f, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-/#") != "" {
		return "(not a plain URI, so not repeated here)"
	}
	return f
}
