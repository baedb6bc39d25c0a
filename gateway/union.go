package gateway

import (
	"errors"
	"maps"
	"sync"
	"sync/atomic"
)

// HeaderUnion is the header names the sso routes of one config protect,
// together: every route strips them all from inbound requests (and from
// Connection tokens and trailers), not only its own. A name one route owns
// (header user X-App-User, a pass_access_token or identity_jwt header
// name) is one its app trusts, and a sibling route to the same app, with
// the default headers, would otherwise hand on a client's copy of it.
// docs/security.md tells operators to rename a field "so that the gateway
// owns it".
//
// Authorization is the one name left to its route: set_authorization_header
// makes it the gateway's there, but on other routes it is the client's own
// (Basic credentials, an API token), which the app needs.
//
// Each route's plan is added at provision (Add). The first request on any
// of them freezes the union: each added plan's set becomes its own names
// and the union's, built once, so that a request still pays one look-up
// per header and allocates nothing. Freezing at the first request rather
// than at the sso app's Start keeps it right whatever order Caddy starts
// its apps in (the http app may serve before the sso app starts) and needs
// no lock on the request path: an atomic load once frozen. A reload
// provisions a new config with a new union.
//
// The zero value is ready to use.
type HeaderUnion struct {
	frozen atomic.Bool
	mu     sync.Mutex
	names  protectedNames // every added plan's names but Authorization
	plans  []*HeaderPlan  // added, until frozen
}

// foldedBearer is Authorization folded: a route's only when it sets it.
var foldedBearer = foldHeaderName(bearerHeader)

// errLateRoute is Add's error once the union is frozen.
var errLateRoute = errors.New("sso handler: provisioned after its config began serving requests, so the other sso routes would not strip its header names")

// Add makes plan strip the names of every route added to u, and the others
// strip plan's own, from the first request on. Call it once the route's
// plan is complete (after SignIdentity and PassTokens, which protect
// their headers), before the config serves: a route added after a request
// was served is refused.
func (u *HeaderUnion) Add(plan *HeaderPlan) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.frozen.Load() {
		return errLateRoute
	}
	if u.names.folded == nil {
		u.names.folded = make(map[string]bool)
	}
	for f := range plan.strip.folded {
		if f != foldedBearer {
			u.names.add(f)
		}
	}
	u.plans = append(u.plans, plan)
	plan.union = u
	return nil
}

// freeze gives every added plan the union's names, once. It is on the
// path of every request, so it inlines to one atomic load once done.
func (u *HeaderUnion) freeze() {
	if !u.frozen.Load() {
		u.freezeSlow()
	}
}

func (u *HeaderUnion) freezeSlow() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.frozen.Load() {
		return
	}
	for _, p := range u.plans {
		p.strip = p.strip.with(&u.names)
	}
	u.plans = nil
	u.frozen.Store(true) // after the plans' sets: a request that sees it sees them
}

// with returns a new set of n's names and o's; n is left as it is.
func (n *protectedNames) with(o *protectedNames) *protectedNames {
	m := &protectedNames{folded: maps.Clone(n.folded), first: n.first, maxLen: n.maxLen}
	for f := range o.folded {
		m.add(f)
	}
	return m
}
