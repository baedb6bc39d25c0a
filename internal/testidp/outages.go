// Package testidp is what the test identity providers (idp/oidc/oidctest,
// idp/saml/samltest) share: their own HTTP server on loopback, and the
// failures of a real IdP (endpoints that answer 503, or that accept a
// request and never answer), which tests of the gateway's behaviour when
// its IdP degrades drive through the servers' SetUnavailable and Stall
// (docs/operations.md, "Limits and behaviour under failure").
package testidp

import (
	"net/http"
	"sync"
)

// Outages is embedded in a test IdP's server; its endpoints are named by
// the path below the server's base (the servers' Path* constants). The
// zero value is an IdP in good health.
type Outages struct {
	mu       sync.Mutex
	down     bool
	downAt   map[string]bool          // endpoints answering 503 (SetUnavailable with paths)
	stalls   map[string]chan struct{} // endpoint ("" for all) -> closed on release (Stall)
	requests map[string]int
}

// SetUnavailable makes every endpoint, or only the endpoints named (Path*
// constants), answer 503, as an IdP outage would. SetUnavailable(false)
// with no paths ends every outage.
func (s *Outages) SetUnavailable(down bool, paths ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(paths) == 0 {
		s.down = down
		if !down {
			s.downAt = nil
		}
		return
	}
	if s.downAt == nil {
		s.downAt = map[string]bool{}
	}
	for _, p := range paths {
		s.downAt[p] = down
	}
}

// Stall makes requests to the endpoints named (Path* constants; every
// endpoint when none is named) wait without an answer, as an overloaded
// IdP that accepts connections and never responds does, until release is
// called or the client gives up. Requests already waiting are released
// too.
func (s *Outages) Stall(paths ...string) (release func()) {
	if len(paths) == 0 {
		paths = []string{""}
	}
	ch := make(chan struct{})
	s.mu.Lock()
	if s.stalls == nil {
		s.stalls = map[string]chan struct{}{}
	}
	for _, p := range paths {
		s.stalls[p] = ch
	}
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			for _, p := range paths {
				if s.stalls[p] == ch {
					delete(s.stalls, p)
				}
			}
			s.mu.Unlock()
			close(ch)
		})
	}
}

// Requests returns how many requests reached an endpoint (a Path*
// constant), counting those answered 503 by SetUnavailable.
func (s *Outages) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// Degraded counts a request for path, then applies SetUnavailable and
// Stall to it; it reports whether the request was answered (or abandoned)
// here, so that the server must not answer it.
func (s *Outages) Degraded(w http.ResponseWriter, r *http.Request, path string) bool {
	s.mu.Lock()
	if s.requests == nil {
		s.requests = map[string]int{}
	}
	s.requests[path]++
	down := s.down || s.downAt[path]
	stall := s.stalls[path]
	if stall == nil {
		stall = s.stalls[""]
	}
	s.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-r.Context().Done():
			return true
		}
	}
	if down {
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return true
	}
	return false
}
