package routeorder

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sso/caddy-sso/internal/urlpath"
)

// Describe tells where an sso handler serves its endpoints: its path
// prefix, and by IdP name the paths of that IdP's endpoints (callback
// first), as the gateway answers them (gateway.Route.EndpointPaths); an
// empty prefix when the feeder cannot tell.
type Describe func(Handler) (prefix string, idps map[string][]string)

// Misroute is an sso handler whose endpoints of an IdP Caddy's routes send
// to another handler: an sso without that IdP, or none. None of its
// sign-ins at that IdP can complete (the callback is answered elsewhere),
// nor can the IdP's logout messages reach it, and the person sees a page
// about a reload that never happened.
type Misroute struct {
	// Server names the Caddy server; set by the caller that knows it.
	Server string
	// IdP is the IdP's name, Host the Host the requests were routed by
	// ("" when the handler's routes match any), Paths its endpoints sent
	// elsewhere, and Other the module they reach instead: "sso" for
	// another sso handler (one without the IdP), "" for none.
	IdP, Host, Prefix string
	Paths             []string
	Other             string
}

// String says what is wrong and the fix, for the check's report and the
// log at start alike.
func (m Misroute) String() string {
	var b strings.Builder
	if m.Server != "" {
		fmt.Fprintf(&b, "server %s: ", m.Server)
	}
	on := ""
	if m.Host != "" {
		on = " on " + m.Host
	}
	to := "no sso handler"
	switch m.Other {
	case SSO:
		to = "another sso handler, which does not have IdP " + m.IdP
	case "":
	default:
		to = m.Other + ", not to an sso handler"
	}
	fmt.Fprintf(&b, "the sso handler of IdP %s with path_prefix %s%s can never complete a sign-in: Caddy's routes send its endpoints %s to %s, so the IdP's answers and logout messages never reach it (the person sees a page saying the sign-in settings changed); give it a path_prefix of its own that its route receives, such as /admin/.sso/ for a route of /admin/*, and register that prefix's URLs at the IdP (docs/security.md, \"One host, several IdPs\")",
		m.IdP, m.Prefix, on, strings.Join(m.Paths, ", "), to)
	return b.String()
}

// Misrouted returns the sso handlers of routes (one server's) whose
// endpoints a request reaches another handler for, running the routes the
// way Caddy does (Reach): one Misroute per handler, IdP and Host. A
// handler in a named route, and a request whose way the rule cannot tell
// (Reach's known), are left out: only what is certain is reported.
func Misrouted(routes []Route, describe Describe) []Misroute {
	var out []Misroute
	for _, g := range Guards(routes) {
		prefix, idps := describe(g.Handler)
		if prefix == "" || g.Named != "" {
			continue
		}
		hosts := []string{""}
		if len(g.Hosts) > 0 {
			hosts = g.Hosts[len(g.Hosts)-1]
		}
		for _, name := range slices.Sorted(maps.Keys(idps)) {
			for _, host := range hosts {
				m := Misroute{IdP: name, Host: host, Prefix: prefix}
				for _, p := range idps[name] {
					covers := func(h Handler) bool {
						pre, _ := describe(h)
						_, under := urlpath.Under(p, pre)
						return pre != "" && under
					}
					h, answered, known := Reach(routes, host, p, covers)
					if !known {
						continue
					}
					if answered && h.Module == SSO && serves(describe, h, p) {
						continue // its own handler, or another that serves the same IdP there
					}
					m.Paths = append(m.Paths, p)
					if answered {
						m.Other = h.Module
					}
				}
				if len(m.Paths) > 0 {
					out = append(out, m)
				}
			}
		}
	}
	return out
}

// Reach is the handler that answers a GET of path on host in routes (one
// server's), run the way Caddy runs them: in order, the routes a request
// matches, the first of each group only, none after a terminal route's;
// subroutes and named routes in place. An sso handler covers picks
// answers it (an endpoint under its prefix), as does a handler that
// answers every request it gets (Serves, or error); another sso handler
// passes a signed-in request on. answered is false when nothing answers
// it. known is false when the rule cannot tell: a route whose matchers
// read more than path and host (Route.Match), or a rewrite on the way,
// after which Caddy matches another path.
func Reach(routes []Route, host, path string, covers func(Handler) bool) (h Handler, answered, known bool) {
	groups := map[string]bool{}
	for _, r := range routes {
		if r.Group != "" && groups[r.Group] {
			continue
		}
		ok, known := !r.Matched, true
		if r.Match != nil {
			ok, known = r.Match(host, path)
		} else if r.Matched {
			known = false
		}
		if !known {
			return Handler{}, false, false
		}
		if !ok {
			continue
		}
		if r.Group != "" {
			groups[r.Group] = true
		}
		for _, h := range r.Handlers {
			switch {
			case h.Module == SSO && covers(h), Serves(h), h.Module == "error":
				return h, true, true
			case h.Module == "rewrite":
				return Handler{}, false, false
			case h.Module == "subroute" || h.Module == "invoke":
				if in, answered, known := Reach(h.Routes, host, path, covers); answered || !known {
					return in, answered, known
				}
			}
		}
		if r.Terminal {
			return Handler{}, false, true
		}
	}
	return Handler{}, false, true
}

// pathHost is Route.Match of matcher sets: whether a GET of path on host
// matches one of them, by Caddy's own path and host matchers; known is
// false when a set holds any other matcher. nil for no sets.
func pathHost(sets caddyhttp.MatcherSets) func(host, path string) (ok, known bool) {
	if len(sets) == 0 {
		return nil
	}
	return func(host, path string) (bool, bool) {
		for _, set := range sets {
			for _, m := range set {
				switch m.(type) {
				case caddyhttp.MatchPath, *caddyhttp.MatchPath, caddyhttp.MatchHost, *caddyhttp.MatchHost:
				default:
					return false, false
				}
			}
		}
		ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer())
		r := (&http.Request{Method: http.MethodGet, Host: host, URL: &url.URL{Path: path}, Header: http.Header{}}).WithContext(ctx)
		ok, err := sets.AnyMatchWithError(r)
		return ok, err == nil
	}
}

// AdaptedMatch is Route.Match of adapted matcher sets (the JSON of a
// route's "match"), read into Caddy's path and host matchers, so that
// `caddy sso check` matches as the running Caddy does (pathHost); a set
// with another matcher, or one that does not read, is not known.
func AdaptedMatch(sets []map[string]json.RawMessage) func(host, path string) (ok, known bool) {
	if len(sets) == 0 {
		return nil
	}
	unknown := func(string, string) (bool, bool) { return false, false }
	out := make(caddyhttp.MatcherSets, len(sets))
	for i, set := range sets {
		for name, raw := range set {
			var m any
			switch name {
			case "path":
				var p caddyhttp.MatchPath
				if json.Unmarshal(raw, &p) != nil || p.Provision(caddy.Context{}) != nil {
					return unknown
				}
				m = p
			case "host":
				var h caddyhttp.MatchHost
				if json.Unmarshal(raw, &h) != nil || h.Provision(caddy.Context{}) != nil {
					return unknown
				}
				m = h
			default:
				return unknown
			}
			out[i] = append(out[i], m)
		}
	}
	return pathHost(out)
}

// serves reports whether h serves an endpoint at p: an endpoint of one of
// its IdPs (the same name and protocol, so the same path).
func serves(describe Describe, h Handler, p string) bool {
	_, idps := describe(h)
	for _, paths := range idps {
		if slices.Contains(paths, p) {
			return true
		}
	}
	return false
}
