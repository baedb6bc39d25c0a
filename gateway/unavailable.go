package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/session"
)

// While the store cannot be used (a database that is away, see
// docs/cluster.md "Failover"; a full disk, docs/operations.md), requests
// that need it get 503 with Retry-After, which tells people, scripts and
// load balancers alike that trying again later is the right thing to do.
// Sessions an instance has cached never get here: they keep working. A
// sign-in that cannot be saved has its own page (Route.signInNotSaved).
const (
	// StoreRetryAfter is the Retry-After of those answers, in seconds:
	// about what a managed database's failover takes.
	StoreRetryAfter = "60"
	// CodeStoreUnavailable is the reference code of their pages.
	CodeStoreUnavailable = "store_unavailable"
)

// ErrAnswered is the error of a step that has written the answer itself
// (a script's JSON 503): the request ends there, as with any other error,
// and the handler returns nil to Caddy.
var ErrAnswered = errors.New("sso: answered")

// StoreUnavailable answers a request that the store failed: a session
// that could not be read, a sign-out that could not be recorded. When
// asPage (a navigation, a sign-out) it returns the page saying message, a
// *PageError the caller shows or hands to the server's error routes, as
// every other page (docs/pages.md, "handle_errors"), with Retry-After set
// on w already: the error routes answer on the same writer. Otherwise it
// writes JSON and returns ErrAnswered: never nil, so that no caller goes
// on to the upstream after it. The error is logged, never shown.
func (rt *Route) StoreUnavailable(w http.ResponseWriter, asPage bool, message string, err error) error {
	// Every request of every visitor may get here while the store is
	// away: one ERROR line a minute, the rest at DEBUG.
	rt.storeFailures.Error(rt.Logger, "store", time.Now(), "the store failed; answering 503", zap.Error(err))
	w.Header().Set("Retry-After", StoreRetryAfter)
	if !asPage {
		w.Header().Set("Cache-Control", "no-store")
		if err := writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily unavailable; try again shortly"}); err != nil {
			return err
		}
		return ErrAnswered
	}
	return rt.fail(storeUnavailablePage(message))
}

// The pages' messages.
const (
	msgSessionUnavailable = "This application cannot check your sign-in right now. Try again in a moment."
	msgSignOutUnrecorded  = "You are signed out in this browser, but the sign-out could not be recorded everywhere right now. If this is a shared computer, close the browser."
)

// SessionUnavailable answers a request whose session could not be read
// (StoreUnavailable) or, on a route that passes tokens, whose expired
// access token the IdP could not renew (Authorize): a page for a
// navigation, JSON for anything else.
func (rt *Route) SessionUnavailable(w http.ResponseWriter, r *http.Request, err error) error {
	return rt.sessionUnavailable(w, IsNavigation(r), err)
}

func (rt *Route) sessionUnavailable(w http.ResponseWriter, asPage bool, err error) error {
	if rf, ok := errors.AsType[*refreshFailed](err); ok {
		return rt.tokenRefreshFailed(w, asPage, rf)
	}
	return rt.StoreUnavailable(w, asPage, msgSessionUnavailable, err)
}

// CodeTokenRefreshFailed is the reference code of the answer to an
// access token a route passes that has expired, and that the IdP could
// not renew (it is away, or answered 5xx: session.ErrRefreshFailed): the
// IdP's status, 502, answered as the store's failures are, a page or
// JSON, Retry-After at the session's next attempt, and few log lines,
// since every request of the person repeats it until then. The person is
// still signed in; trying again is the right thing to do.
const CodeTokenRefreshFailed = "token_refresh_failed"

// refreshFailed is setTokens' error for such a token.
type refreshFailed struct {
	idp string
	err error // wraps session.ErrRefreshFailed
	// ended: the request's own context ended while it waited for the
	// refresh, which goes on (a client that went away, a deadline):
	// nothing the IdP did wrong, so nothing logged as its failure.
	ended bool
}

func (e *refreshFailed) Error() string { return e.err.Error() }
func (e *refreshFailed) Unwrap() error { return e.err }

// tokenRefreshFailed is StoreUnavailable for a refreshFailed.
// A request whose own context ended gets the same answer, which a client
// that went away never reads, and a deadline is told to try again, as the
// refresh it waited for is still under way.
func (rt *Route) tokenRefreshFailed(w http.ResponseWriter, asPage bool, e *refreshFailed) error {
	now := time.Now()
	if e.ended {
		rt.Logger.Debug("the request ended while waiting for its session's token refresh; answering 502", zap.String("idp", e.idp), zap.Error(e.err))
	} else {
		rt.refreshFailures.Error(rt.Logger, e.idp, now, "the identity provider could not renew an expired access token; answering 502",
			zap.String("idp", e.idp), zap.Error(e.err))
	}
	w.Header().Set("Retry-After", strconv.Itoa(refreshRetryAfter(e.err, now)))
	if !asPage {
		w.Header().Set("Cache-Control", "no-store")
		if err := writeJSON(w, http.StatusBadGateway, map[string]string{"error": "the identity provider could not renew the access token; try again shortly"}); err != nil {
			return err
		}
		return ErrAnswered
	}
	return rt.fail(tokenRefreshFailedPage(e.idp))
}

// refreshRetryAfter is the Retry-After, in whole seconds, of err: when the
// session asks the IdP again (session.RefreshFailedError.RetryAt, which
// with instances sharing the store may be past session.RefreshRetry),
// rounded up, since a client coming back a moment early meets the same
// failure; at least 1. Without a retry time (the request's context
// ended), session.RefreshRetry.
func refreshRetryAfter(err error, now time.Time) int {
	retry := session.RefreshRetry
	if e, ok := errors.AsType[*session.RefreshFailedError](err); ok && !e.RetryAt.IsZero() {
		retry = e.RetryAt.Sub(now)
	}
	return max(1, int((retry+time.Second-1)/time.Second))
}
