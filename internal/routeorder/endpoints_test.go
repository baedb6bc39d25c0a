package routeorder

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"
)

// endpointSSO stands for the gateway's handler as MisroutedFromApp reads
// it: an sso handler that says where it serves its IdPs' endpoints.
type endpointSSO struct {
	ssoHandler
	prefix string
	idps   []string
}

func (*endpointSSO) CaddyModule() caddy.ModuleInfo { return caddy.ModuleInfo{ID: "http.handlers.sso"} }

func (s *endpointSSO) EndpointPaths() (string, map[string][]string) {
	out := map[string][]string{}
	for _, n := range s.idps {
		base := s.prefix + "oidc/" + n + "/"
		out[n] = []string{base + "callback", base + "backchannel-logout"}
	}
	return s.prefix, out
}

func ssoAt(prefix string, idps ...string) *endpointSSO {
	return &endpointSSO{prefix: prefix, idps: idps}
}

// grouped is r in the group of the Caddyfile's sibling handle blocks.
func grouped(r caddyhttp.Route) caddyhttp.Route {
	r.Group = "handle"
	return r
}

// terminal is r with Caddy's terminal flag: no route after it runs.
func terminal(r caddyhttp.Route) caddyhttp.Route {
	r.Terminal = true
	return r
}

// TestMisrouted: an sso handler whose IdP's endpoints (callback, logout)
// Caddy's routes send to another sso handler without that IdP, or to none,
// is reported, with the module they reach; one whose endpoints reach it,
// or another sso handler that serves the same IdP at the same path, is
// not; nor is one whose way the rule cannot tell (a matcher that reads
// more than path and host, a rewrite on the way).
func TestMisrouted(t *testing.T) {
	admin := func(prefix, idp string) caddyhttp.Route {
		return grouped(on("/admin/*", ssoAt(prefix, idp), proxy))
	}
	rest := func(hs ...caddyhttp.MiddlewareHandler) caddyhttp.Route { return grouped(route(hs...)) }
	byHeader := caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchHeader{"X-A": {"b"}}}}, Handlers: []caddyhttp.MiddlewareHandler{respond}}
	for _, tc := range []struct {
		name   string
		routes caddyhttp.RouteList
		want   []string // IdP/Other of each finding
	}{
		{"siblings, the default path_prefix", caddyhttp.RouteList{admin("/.sso/", "other"), rest(ssoAt("/.sso/", "test"), proxy)}, []string{"other/sso"}},
		{"siblings, a path_prefix of its own", caddyhttp.RouteList{admin("/admin/.sso/", "other"), rest(ssoAt("/.sso/", "test"), proxy)}, nil},
		{"siblings of the same IdP", caddyhttp.RouteList{admin("/.sso/", "test"), rest(ssoAt("/.sso/", "test"), proxy)}, nil},
		{"a stricter sso inside, the outer names its IdP", caddyhttp.RouteList{route(ssoAt("/.sso/", "test", "other")), admin("/.sso/", "other"), rest(proxy)}, nil},
		{"a stricter sso inside, the outer without its IdP", caddyhttp.RouteList{route(ssoAt("/.sso/", "test")), admin("/.sso/", "other"), rest(proxy)}, []string{"other/sso"}},
		{"no sso for the endpoints: the app answers", caddyhttp.RouteList{admin("/.sso/", "other"), rest(proxy)}, []string{"other/reverse_proxy"}},
		{"nothing answers the endpoints", caddyhttp.RouteList{admin("/.sso/", "other")}, []string{"other/"}},
		{"inside a host's site", caddyhttp.RouteList{onHost(caddyhttp.MatchHost{"app.test"}, subroute(admin("/.sso/", "other"), rest(ssoAt("/.sso/", "test"), proxy)))}, []string{"other/sso"}},
		{"another host's site is not this one's", caddyhttp.RouteList{onHost(caddyhttp.MatchHost{"app.test"}, subroute(admin("/.sso/", "other"), rest(proxy))), onHost(caddyhttp.MatchHost{"other.test"}, ssoAt("/.sso/", "other"))}, []string{"other/reverse_proxy"}},
		{"a host's site inside a site of two hosts", caddyhttp.RouteList{onHost(caddyhttp.MatchHost{"app.test", "other.test"}, subroute(onHost(caddyhttp.MatchHost{"app.test"}, subroute(admin("/.sso/", "other"), rest(ssoAt("/.sso/", "test"), proxy)))))}, []string{"other/sso"}},
		{"a sibling before it takes the endpoints and answers none", caddyhttp.RouteList{admin("/.sso/", "other"), grouped(on("/.sso/*", header)), rest(ssoAt("/.sso/", "other"), proxy)}, []string{"other/", "other/"}},
		{"a matcher of more than path and host on the way", caddyhttp.RouteList{byHeader, admin("/.sso/", "other"), rest(proxy)}, nil},
		{"a rewrite on the way", caddyhttp.RouteList{route(new(rewrite.Rewrite)), admin("/.sso/", "other"), rest(proxy)}, nil},
		{"a matcher of more than path and host inside a subroute on the way", caddyhttp.RouteList{route(subroute(byHeader)), admin("/.sso/", "other"), rest(proxy)}, nil},
		{"a terminal route before the sso that serves them answers none", caddyhttp.RouteList{admin("/.sso/", "other"), terminal(on("/.sso/*", header)), rest(ssoAt("/.sso/", "other"), proxy)}, []string{"other/", "other/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &caddyhttp.App{Servers: map[string]*caddyhttp.Server{"srv0": {Routes: tc.routes}}}
			var got []string
			for _, m := range MisroutedFromApp(app) {
				got = append(got, m.IdP+"/"+m.Other)
				if s := m.String(); !strings.Contains(s, "server srv0: ") || !strings.Contains(s, "/.sso/oidc/other/callback, /.sso/oidc/other/backchannel-logout") || !strings.Contains(s, "path_prefix of its own") {
					t.Errorf("the message does not name the server, the endpoints and the fix: %s", s)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("misrouted %v, want %v", got, tc.want)
			}
		})
	}
	if MisroutedFromApp("not the http app") != nil {
		t.Error("findings for another app")
	}
}
