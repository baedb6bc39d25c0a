package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/session"
)

// Modes of a route: what it does with a request outside its endpoints.
const (
	// ModeProtect (the default, the zero value; "protect" in a
	// configuration) protects the handlers after it: a request with a
	// session goes on with identity headers.
	ModeProtect = ""
	// ModeAuthRequest answers forward-auth subrequests for nginx's
	// auth_request: 200 and identity headers, or 401 with the login URL in
	// Location (nginx turns it into the redirect: error_page 401 =302).
	ModeAuthRequest = "auth_request"
	// ModeForwardAuth answers them for proxies that hand a refusal to the
	// browser as it is (Traefik's ForwardAuth, Caddy's forward_auth): as
	// ModeAuthRequest, except that a navigation without a session gets the
	// redirect to sign in itself (302).
	ModeForwardAuth = "forward_auth"
)

// ParseMode checks a configured mode: "protect" (or empty), or one of
// the verify modes.
func ParseMode(mode string) (string, error) {
	switch mode {
	case "", "protect":
		return ModeProtect, nil
	case ModeAuthRequest, ModeForwardAuth:
		return mode, nil
	}
	return "", fmt.Errorf("unknown mode %q (expected protect, %s or %s)", mode, ModeAuthRequest, ModeForwardAuth)
}

// forwardedHeaders are where proxies describe the original request of a
// forward-auth subrequest: Traefik's ForwardAuth and Caddy's forward_auth
// send X-Forwarded-Method and -Uri; nginx's auth_request, configured as
// its documentation shows, X-Original-URI (and Authelia's configurations
// X-Original-URL, an absolute URL, and X-Original-Method).
var forwardedHeaders = []string{"X-Forwarded-Method", "X-Forwarded-Uri", "X-Original-Method", "X-Original-Uri", "X-Original-Url"}

// forwarded is the request a forward-auth subrequest asks about.
type forwarded struct {
	method string
	uri    string // path and query: where sign-in comes back to
}

// path is the page asked about, for the log lines of a refusal: the
// subrequest's own path (/verify) is the same for every question. The
// query stays out, as it does behind the sso directive.
func (f forwarded) path() string {
	p, _, _ := strings.Cut(f.uri, "?")
	return p
}

// forwardedRequest reads the original request from the headers a trusted
// proxy sets. From anyone else they are ignored: the method is the
// subrequest's own and sign-in comes back to "/".
func forwardedRequest(r *http.Request, trusted bool) forwarded {
	f := forwarded{method: r.Method, uri: "/"}
	if !trusted {
		return f
	}
	h := r.Header
	if m := firstHeader(h, "X-Forwarded-Method", "X-Original-Method"); m != "" {
		f.method = strings.ToUpper(m)
	}
	if u := firstHeader(h, "X-Forwarded-Uri", "X-Original-Uri"); u != "" {
		f.uri = u
	} else if u, err := url.Parse(h.Get("X-Original-Url")); err == nil && u.Path != "" {
		f.uri = u.RequestURI()
	}
	return f
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// Verify answers a forward-auth subrequest (docs/forward-auth.md): the
// proxy in front of an app asks whether the browser request it describes
// may pass, passing on the browser's cookies.
//
//   - A session the route admits and its access rules permit: 200, with
//     the identity headers (Identify) for the proxy to copy onto the
//     request, and Cookie: the browser's cookies without the gateway's,
//     for the proxy to send the app instead of the browser's.
//   - A session the rules exclude: 403 (a page for a navigation).
//   - No session: 401 with the absolute login URL in Location, or, in
//     ModeForwardAuth, a redirect there for a navigation. Nothing is
//     written: the sign-in begins when the browser reaches the login URL,
//     which the proxy must route to this gateway on the app's host. The
//     401 is the sso directive's (signInFrom): for a form a person
//     submitted, the sign_in_again page, its sign-in returning to the
//     form's page, which Traefik and Caddy's forward_auth show as it is
//     and nginx, which shows no body, redirects to; for a frame, the
//     frame's pages (frameAnswer).
//
// trusted says the peer is one of Caddy's trusted proxies: only then are
// the original method and URI (X-Forwarded-Uri…) believed.
//
// Verify answers its errors itself (AnswerVerify) and returns nil.
func (rt *Route) Verify(w http.ResponseWriter, r *http.Request, run *Runtime, o Origin, tokens []string, trusted bool) error {
	return rt.AnswerVerify(w, rt.verify(w, r, run, o, tokens, trusted))
}

// AnswerVerify writes err, the failure of a forward-auth request, as the
// answer and returns nil: the answer's status is the proxy's decision,
// which the server's error routes must not get to change (a reverse_proxy
// in handle_errors answers with its upstream's status, and a respond or a
// 200 there would let a request the rules refuse through). The sso
// handler hands it the 503 of an app not running yet, too.
func (rt *Route) AnswerVerify(w http.ResponseWriter, err error) error {
	if err == nil || errors.Is(err, ErrAnswered) {
		return nil
	}
	w.Header().Set("Cache-Control", "no-store")
	if pe, ok := AsPageError(err); ok {
		return pe.Write(w)
	}
	status := http.StatusInternalServerError
	var ge *Error
	if errors.As(err, &ge) {
		status = ge.Status
	}
	rt.Logger.Error("answering a forward-auth request", zap.Int("status", status), zap.Error(err))
	w.WriteHeader(status)
	return nil
}

func (rt *Route) verify(w http.ResponseWriter, r *http.Request, run *Runtime, o Origin, tokens []string, trusted bool) error {
	if !trusted && firstHeader(r.Header, forwardedHeaders...) != "" {
		rt.untrustedLog.Do(func() {
			rt.Logger.Warn("forward-auth request describes its original request (X-Forwarded-Uri or X-Original-URI) but does not come from a trusted proxy: ignored, so sign-ins return to /; list the proxy in Caddy's trusted_proxies",
				zap.String("remote_addr", r.RemoteAddr))
		})
	}
	orig := forwardedRequest(r, trusted)
	navigation := isNavigation(orig.method, r.Header)
	hd := w.Header()
	// The values verify sets share one array: one allocation on every
	// answer where Header.Set makes one each. Each is a slice capped at
	// its length, so a handler that appends to one copies it.
	vals := &[3]string{0: "no-store", 2: "0"}
	hd["Cache-Control"] = vals[0:1:1]
	id, forbidden, err := rt.Authorize(r.Context(), run, tokens, nil, hd)
	switch {
	case forbidden:
		return rt.forbidden(w, orig.path(), id, navigation)
	case err == nil:
		if err := rt.identify(r.Context(), run, id, o, w, r, hd, orig.path()); err != nil {
			return err // with hd stripped of the tokens (Identify)
		}
		cookies := http.Header{"Cookie": r.Header["Cookie"]}
		StripOwnCookies(cookies)
		if c := cookies["Cookie"]; len(c) > 0 {
			vals[1] = strings.Join(c, "; ")
			hd["Cookie"] = vals[1:2:2]
		}
		hd["Content-Length"] = vals[2:3:3]
		w.WriteHeader(http.StatusOK)
		return nil
	case !errors.Is(err, session.ErrNoSession):
		return rt.sessionUnavailable(w, navigation, err)
	}
	login, returnTo, as := rt.signInFrom(orig.method, orig.uri, r.Header, o)
	if o.Vouched {
		login, returnTo = o.Site.URL(login), o.Site.URL(returnTo)
	}
	hd.Set("Location", login)
	if rt.Mode == ModeForwardAuth && navigation {
		w.WriteHeader(http.StatusFound)
		return nil
	}
	return rt.answerUnauthorized(w, login, returnTo, as)
}
