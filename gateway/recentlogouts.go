package gateway

import (
	"sync"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
)

// recentLogouts remembers for a few seconds the sessions the sign-out
// button ended, by their cookie's hash. A double click on the button sends
// a second POST before the first answer (on to the IdP's logout) arrives;
// the browser drops the first answer and shows the second, which without
// the session would be "Signed out" alone, and the IdP's session would
// live on: the next visit, perhaps the next person's at a shared computer,
// signs in without a password. With it, the second answer goes on to the
// IdP's logout too. It is per instance, as a double click's two POSTs
// usually share one connection.
type recentLogouts struct {
	mu    sync.Mutex
	ended map[string]recentLogout
}

// endedSignIn is what the IdP's logout needs of an ended session, and no
// more (not its access or refresh token).
type endedSignIn struct {
	idp    string
	logout idp.LogoutInfo
}

type recentLogout struct {
	ended *endedSignIn
	at    time.Time
}

const (
	// recentLogoutWindow is longer than a double click (and a slow
	// network's round trip), short enough that a cookie copied before
	// the sign-out gains next to nothing.
	recentLogoutWindow = 10 * time.Second
	// maxRecentLogouts bounds the map: a burst of sign-outs beyond it
	// within the window is not remembered.
	maxRecentLogouts = 1024
)

// remember keeps e under hash, the session's (session.Hash of its
// cookie). It drops the entries past the window first, so that none (an ID
// token among them) is kept long after.
func (l *recentLogouts) remember(hash string, e *endedSignIn, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range l.ended {
		if now.Sub(v.at) > recentLogoutWindow {
			delete(l.ended, k)
		}
	}
	if l.ended == nil {
		l.ended = map[string]recentLogout{}
	}
	if len(l.ended) < maxRecentLogouts {
		l.ended[hash] = recentLogout{e, now}
	}
}

// recall returns the session stored under hash if a sign-out ended it
// within the window, else nil.
func (l *recentLogouts) recall(hash string, now time.Time) *endedSignIn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.ended[hash]; ok && now.Sub(r.at) <= recentLogoutWindow {
		return r.ended
	}
	return nil
}
