package gateway

import (
	"sync"
	"time"

	"github.com/caddy-sso/caddy-sso/session"
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

type recentLogout struct {
	ended *session.Ended
	at    time.Time
}

const (
	// recentLogoutWindow is longer than a double click (and a slow
	// network's round trip), short enough that a cookie copied before
	// the sign-out gains next to nothing.
	recentLogoutWindow = 10 * time.Second
	// maxRecentLogouts bounds the map: past it, an entry only replaces
	// expired ones, so a burst of sign-outs costs a bounded amount.
	maxRecentLogouts = 1024
)

func (l *recentLogouts) remember(token string, e *session.Ended, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended == nil {
		l.ended = map[string]recentLogout{}
	}
	if len(l.ended) >= maxRecentLogouts {
		for k, v := range l.ended {
			if now.Sub(v.at) > recentLogoutWindow {
				delete(l.ended, k)
			}
		}
		if len(l.ended) >= maxRecentLogouts {
			return
		}
	}
	l.ended[session.Hash(token)] = recentLogout{e, now}
}

// recall returns the session that token named if a sign-out ended it
// within the window, else nil.
func (l *recentLogouts) recall(token string, now time.Time) *session.Ended {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.ended[session.Hash(token)]; ok && now.Sub(r.at) <= recentLogoutWindow {
		return r.ended
	}
	return nil
}
