package gateway

import (
	"net/http"
	"strings"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
)

// Session cookie names. The __Host- prefix makes browsers refuse the cookie
// unless it is Secure, host-only and for path /, so a sibling subdomain
// cannot plant one; plain-http loopback sites (demos, tests) cannot use it.
const (
	SessionCookieSecure = "__Host-sso_session"
	SessionCookiePlain  = "sso_session"
)

// MaxSessionCookies bounds the session cookies of one request that are
// tried: a browser may hold several of the gateway's name (one planted by
// a sibling site on plain http, or with another path), and a bogus one
// first must not lock the person out; each one tried may cost a store read.
const MaxSessionCookies = 4

// CookieValues finds the values of the cookies named name in the Cookie
// header, at most len(buf) of them, without parsing the others, since it
// runs on every request. The result shares buf's storage.
func CookieValues(h http.Header, name string, buf *[MaxSessionCookies]string) []string {
	n := 0
	for _, line := range h["Cookie"] {
		for line != "" && n < len(buf) {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if len(part) > len(name) && part[len(name)] == '=' && part[:len(name)] == name {
				if v := strings.Trim(part[len(name)+1:], `"`); v != "" {
					buf[n] = v
					n++
				}
			}
		}
	}
	return buf[:n]
}

// isOwnCookie reports whether a cookie is one of ours, never for the upstream.
func isOwnCookie(name string) bool {
	return name == SessionCookieSecure || name == SessionCookiePlain || idp.IsFlowCookie(name)
}

// StripOwnCookies removes the gateway's cookies from the Cookie header
// forwarded upstream, so the upstream never sees a session token.
func StripOwnCookies(h http.Header) {
	for _, line := range h["Cookie"] {
		if strings.Contains(line, "sso") {
			stripCookies(h, isOwnCookie)
			return
		}
	}
}

// writeSessionCookie sets the session cookie, its attributes the same
// whatever it holds: maxAge 0 lasts the browser session, -1 clears it.
func writeSessionCookie(w http.ResponseWriter, o Origin, token string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: o.SessionCookie(), Value: token, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: o.Secure(), SameSite: http.SameSiteLaxMode,
	})
}

func setSessionCookie(w http.ResponseWriter, o Origin, token string) {
	writeSessionCookie(w, o, token, 0)
}

// keepSignedOutCookie sets the cookie of a session just signed out to
// expire when a second click's sign-out no longer finds that session
// (session.SignedOutFindable). Without its token (the outer session's
// sign-out, whose cookie an sso before this one took) it is cleared.
func keepSignedOutCookie(w http.ResponseWriter, o Origin, token string) {
	if token == "" {
		clearSessionCookie(w, o)
		return
	}
	writeSessionCookie(w, o, token, int(session.SignedOutFindable/time.Second))
}

func clearSessionCookie(w http.ResponseWriter, o Origin) {
	writeSessionCookie(w, o, "", -1)
}
