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
// does. Idleness is judged as load judges it (idleFrom): by the stored
// last-seen time, plus the most it may lag the last use where the store
// may miss uses, or by a later use this instance remembers: a session in
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

// pastEnd reports whether s is past its stored end by this Manager's
// clock and lifetime (lifetimeEnd): signed out, found expired, or over its
// lifetime. Idleness is Ends's and load's to judge.
func (m *Manager) pastEnd(s *store.Session) bool {
	return !m.now().Before(m.lifetimeEnd(s))
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
// time and a later use this Manager remembers (0 if none), in unix nanos.
// The store may not have every use yet; how late it can be depends on who
// else writes to it:
//   - Over a store shared by instances (a store.Broadcaster), each writes
//     its uses in batches, so the last use anywhere may be later than the
//     stored time by as much as it lags (Config.lastSeenLag), and a
//     remembered use does not take that allowance away (another
//     instance's may be later still).
//   - Over a store no other instance shares (bbolt, one process), every
//     use since this Manager started is its own, remembered until its
//     flush writes it exactly. Only a stored time written before that may
//     miss uses: of a process that crashed before its final flush, or of
//     the previous config's Manager until its Run's final flush (a
//     reload). Those get the allowance; the rest are exact, so that an
//     idle timeout holds to the second.
//
// load (where lookup sends what its cache cannot decide) and Ends apply
// this one rule; the sweep's cutoff (Config.sweepIdle) allows the same lag.
func (m *Manager) idleFrom(stored, remembered int64) int64 {
	if m.bc == nil && stored >= m.started {
		return max(remembered, stored)
	}
	return max(remembered, stored+int64(m.cfg.lastSeenLag()))
}
