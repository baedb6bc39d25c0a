package session

import (
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// Ends says when a stored session ends by this Manager's config, and
// whether it has ended already: what the next request with its cookie
// would be told, for those who look at sessions without making one (the
// admin API's list of a user's sessions and its count, and the count and
// audit event of sessions an administrator ends). A session the store
// still holds may have ended: past its lifetime, idle, or signed out while
// the store was away (Revoke); the sweep deletes it later.
//
// end is the stored end, brought forward to Created + Config.Lifetime when
// the lifetime has been shortened since the sign-in (a reload), as load
// does. Idleness is judged as load judges it, by the stored last-seen time
// plus the most it may lag the last use (Config.lastSeenLag, the sweep's
// allowance too), or by a later use this instance remembers: a session in
// use on any instance is never reported ended.
func (m *Manager) Ends(s *store.Session) (end time.Time, ended bool) {
	end = m.lifetimeEnd(s)
	now := m.now()
	if !now.Before(end) {
		return end, true
	}
	var remembered int64
	if hash, ok := parseHash(s.Hash); ok {
		m.mu.RLock()
		_, signedOut := m.unrecorded[hash]
		if e := m.entries[hash]; e != nil {
			remembered = e.lastSeen.Load()
		}
		remembered = max(remembered, m.evicted[hash])
		m.mu.RUnlock()
		if signedOut {
			return end, true
		}
	}
	return end, m.idleExpired(m.idleFrom(s.LastSeen.UnixNano(), remembered), now.UnixNano())
}

// lifetimeEnd is when s ends by its stored end and the configured
// lifetime: a lifetime shortened since the sign-in (a reload) holds for
// the sessions it finds too; the stored end only ever comes earlier (an
// IdP's bound on the session). load applies the same rule.
func (m *Manager) lifetimeEnd(s *store.Session) time.Time {
	if end := s.Created.Add(m.cfg.Lifetime); end.Before(s.Expires) {
		return end
	}
	return s.Expires
}

// idleFrom is the time idleness counts from, given the stored last-seen
// time and a later use this instance remembers (0 if none), in unix nanos:
// the last use may be later than the stored time by as much as it lags
// (Config.lastSeenLag), and a remembered use does not take that allowance
// away (another instance's may be later still). load applies the same
// rule; the sweep's cutoff (Config.sweepIdle) is the same allowance.
func (m *Manager) idleFrom(stored, remembered int64) int64 {
	return max(remembered, stored+int64(m.cfg.lastSeenLag()))
}
