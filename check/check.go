// Package check is `caddy sso check`: for each identity provider of a
// config it runs the probes of idp/oidc and idp/saml (discovery, JWKS,
// metadata, certificates: the code sign-in runs), and lists the values the
// IdP administrator must enter for every site that uses the IdP. It reads
// Caddy's adapted JSON config, so it knows Caddy; package cli registers it.
package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/idpcheck"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/internal/routeorder"
	"github.com/caddy-sso/caddy-sso/internal/termtext"
	"github.com/caddy-sso/caddy-sso/mapping"
)

// Levels of a finding.
const (
	OK    = idpcheck.OK
	Info  = idpcheck.Info
	Warn  = idpcheck.Warn
	Error = idpcheck.Error
)

// Report is the result of `caddy sso check`.
type Report struct {
	Config   string      `json:"config"`
	Problems []Finding   `json:"problems,omitempty"` // configuration-wide
	IdPs     []*IdPCheck `json:"idps"`
	Errors   int         `json:"errors"`
	Warnings int         `json:"warnings"`
	OK       bool        `json:"ok"`
}

// IdPCheck is what `caddy sso check` found about one IdP.
type IdPCheck struct {
	Name     string    `json:"name"`
	Protocol string    `json:"protocol"`
	Preset   string    `json:"preset"`
	Sites    []string  `json:"sites"`
	Checks   []Finding `json:"checks"`
	// Values are what the IdP administrator must enter.
	Values []Value `json:"values"`
	// Claims are the attribute/claim names read per attribute, in order.
	Claims []ClaimNames `json:"claims"`
}

// Finding is one finding.
type Finding = idpcheck.Finding

// Value is one value for the IdP registration.
type Value struct {
	Field string `json:"field"`
	Site  string `json:"site,omitempty"`
	Value string `json:"value"`
}

// ClaimNames lists the names an attribute is read from.
type ClaimNames struct {
	Attribute string   `json:"attribute"`
	Names     []string `json:"names"`
	// Union: every name is read and the values joined (an operator's
	// `map groups`), not the first one present.
	Union bool `json:"union,omitempty"`
}

func (c *IdPCheck) add(level, format string, args ...any) {
	c.Checks = append(c.Checks, Finding{Level: level, Message: fmt.Sprintf(format, args...)})
}

// site is one site whose routes use the sso handler.
type site struct {
	origin idp.Origin
	prefix string // the route's path prefix (caddymodule.Handler.Endpoints)
}

// adaptedConfig is the part of an adapted config the check reads.
type adaptedConfig struct {
	Apps struct {
		SSO *struct {
			IdPs []*caddymodule.IdPConfig `json:"idps"`
		} `json:"sso"`
		HTTP *struct {
			HTTPPort int                `json:"http_port"`
			Servers  map[string]*server `json:"servers"`
		} `json:"http"`
		TLS *struct {
			Automation *struct {
				Policies []struct {
					Subjects []string `json:"subjects"`
					OnDemand bool     `json:"on_demand"`
				} `json:"policies"`
			} `json:"automation"`
		} `json:"tls"`
	} `json:"apps"`
}

type server struct {
	Listen         []string          `json:"listen"`
	Routes         []route           `json:"routes"`
	NamedRoutes    map[string]*route `json:"named_routes"` // what invoke runs
	TLSPolicies    json.RawMessage   `json:"tls_connection_policies"`
	TrustedProxies json.RawMessage   `json:"trusted_proxies"`
	AutomaticHTTPS *struct {
		Disable      bool     `json:"disable"`
		DisableRedir bool     `json:"disable_redirects"`
		Skip         []string `json:"skip"`
	} `json:"automatic_https"`
	// Errors are the error routes (handle_errors), which answer the errors
	// handlers return, the error directive's among them.
	Errors *struct {
		Routes []route `json:"routes"`
	} `json:"errors"`
	StrictSNIHost *bool `json:"strict_sni_host"`
}

type route struct {
	Match    []map[string]json.RawMessage `json:"match"`
	Handle   []json.RawMessage            `json:"handle"`
	Group    string                       `json:"group"`
	Terminal bool                         `json:"terminal"`
}

// handler is what the check reads of every handler: which one it is, a
// subroute's routes, and the named route an invoke runs. An sso handler's
// settings are read into caddymodule.Handler, which says where it serves
// its endpoints.
type handler struct {
	Handler string  `json:"handler"`
	Routes  []route `json:"routes"` // subroute
	Errors  *struct {
		Routes []route `json:"routes"`
	} `json:"errors"` // subroute
	Name string `json:"name"` // invoke
	// Transport is a reverse_proxy's: fastcgi for php_fastcgi.
	Transport struct {
		Protocol string `json:"protocol"`
	} `json:"transport"`
	// PassThru (file_server) and HandleResponse (reverse_proxy, as
	// forward_auth adapts) may let a request go on to the next handler.
	PassThru       bool `json:"pass_thru"`
	HandleResponse []struct {
		Routes     []route         `json:"routes"`
		StatusCode json.RawMessage `json:"status_code"`
	} `json:"handle_response"`
}

// Run checks every IdP of the adapted config cfg.
func Run(ctx context.Context, cfg []byte, client *http.Client, now time.Time) (*Report, error) {
	var cc adaptedConfig
	if err := json.Unmarshal(cfg, &cc); err != nil {
		return nil, fmt.Errorf("reading adapted config: %w", err)
	}
	r := &Report{IdPs: []*IdPCheck{}}
	if cc.Apps.SSO == nil || len(cc.Apps.SSO.IdPs) == 0 {
		r.Problems = append(r.Problems, Finding{Level: Error, Message: "the config has no sso app with an identity provider"})
	}
	var idps []*caddymodule.IdPConfig
	if cc.Apps.SSO != nil {
		idps = cc.Apps.SSO.IdPs
	}
	sites, misrouted := collectSites(&cc, idps, r)
	repl := caddy.NewReplacer()
	for _, c := range idps {
		ic := &IdPCheck{Name: c.Name, Protocol: c.Protocol, Preset: c.Preset}
		if ic.Preset == "" {
			ic.Preset = mapping.PresetGeneric
		}
		for _, s := range sites[c.Name] {
			ic.Sites = append(ic.Sites, s.origin.String())
		}
		r.IdPs = append(r.IdPs, ic)
		if err := c.Validate(); err != nil {
			ic.add(Error, "invalid configuration: %v", err)
			continue
		}
		if len(sites[c.Name]) == 0 {
			ic.add(Warn, "no site uses this IdP (no sso directive names it): there is nothing to register at the IdP")
		}
		probe(ctx, client, c, repl, ic, now)
		for _, msg := range misrouted[c.Name] {
			ic.add(Error, "%s", msg)
		}
		values(c, repl, sites[c.Name], ic)
		if m, err := mapping.New(c.Preset, c.Protocol, c.Map); err == nil {
			for _, attr := range []string{mapping.UniqueUserID, mapping.FirstName, mapping.LastName, mapping.Email, mapping.Groups} {
				ic.Claims = append(ic.Claims, ClaimNames{Attribute: attr, Names: m.Expected(attr), Union: m.ReadsAll(attr)})
			}
		}
	}
	count := func(list []Finding) {
		for _, x := range list {
			switch x.Level {
			case Error:
				r.Errors++
			case Warn:
				r.Warnings++
			}
		}
	}
	count(r.Problems)
	for _, ic := range r.IdPs {
		count(ic.Checks)
	}
	r.OK = r.Errors == 0
	return r, nil
}

// collectSites finds the HTTP servers' sso handlers and the host matchers
// that guard them (routeorder.Guards, the rule the gateway vouches for a
// Host by) and returns, per IdP name, the sites that use it. It reports
// an sso handler that a handler before it keeps from running
// (routeorder.Unprotected), one that nothing vouches for (no host
// matcher, or in a named route, and no base_url), and a site reached over
// plain http. misrouted says, per IdP name, which sso handlers' endpoints
// of it Caddy's routes send to another handler (routeorder.Misrouted).
func collectSites(cc *adaptedConfig, idps []*caddymodule.IdPConfig, r *Report) (out map[string][]site, misrouted map[string][]string) {
	out, misrouted = map[string][]site{}, map[string][]string{}
	h := cc.Apps.HTTP
	if h == nil {
		return out, misrouted
	}
	httpPort := h.HTTPPort
	if httpPort == 0 {
		httpPort = caddyhttp.DefaultHTTPPort
	}
	known := map[string]bool{}
	for _, c := range idps {
		known[c.Name] = true
	}
	names := make([]string, 0, len(h.Servers))
	for n := range h.Servers {
		names = append(names, n)
	}
	slices.Sort(names)
	seen := map[string]bool{}
	for _, name := range names {
		srv := h.Servers[name]
		port := serverPort(srv.Listen)
		for _, f := range routeorder.Unprotected(routeTree(srv.Routes, srv.NamedRoutes, nil, nil)) {
			f.Server = name
			r.Problems = append(r.Problems, Finding{Level: Error, Message: f.String()})
		}
		rewriter := func(h routeorder.Handler) bool { return rewrites(h, srv.NamedRoutes) }
		for _, f := range routeorder.Preceded(routeTree(srv.Routes, srv.NamedRoutes, nil, nil), rewriter, verifies) {
			r.Problems = append(r.Problems, Finding{Level: Error, Message: fmt.Sprintf("server %s: the verify-mode sso handler at %s answers through the intercept at %s, whose handle_response can turn its 401 for a request without a session into a 2xx, which the proxy takes as signed in: every request gets in; put sso before intercept (outside a route block the Caddyfile's directive order does), or give that handle_response a status that is not a 2xx (file_server { status 401 })", name, f.SSO, f.At)})
		}
		for _, m := range routeorder.Misrouted(routeTree(srv.Routes, srv.NamedRoutes, nil, nil), endpointPaths(idps)) {
			m.Server = name
			misrouted[m.IdP] = append(misrouted[m.IdP], m.String())
		}
		for _, g := range routeorder.Guards(routeTree(srv.Routes, srv.NamedRoutes, nil, nil)) {
			raw, _ := g.Handler.Value.(json.RawMessage)
			var sso caddymodule.Handler
			if json.Unmarshal(raw, &sso) != nil {
				continue
			}
			// The hosts the innermost host-guarded route lets in are the
			// ones requests reach the handler on.
			var hs []string
			if len(g.Hosts) > 0 {
				hs = g.Hosts[len(g.Hosts)-1]
			}
			if verifyMode(sso.Mode) && len(hs) > 0 && !cc.otherHosts(name, httpPort) && !seen["verify/"+name] {
				seen["verify/"+name] = true
				r.Problems = append(r.Problems, Finding{Level: Error, Message: fmt.Sprintf("server %s: its mode %s endpoint answers only for %s, and Caddy answers a request for any other Host with an empty 200, which the proxy takes as signed in; give this listener a site without a host that refuses (for instance http://:9091 { respond 403 }), or leave the host out of the gateway's address (docs/forward-auth.md)", name, sso.Mode, strings.Join(hs, ", "))})
			}
			prefix, use := sso.Endpoints(idps)
			hostList := hs
			if len(hostList) == 0 || sso.BaseURL != "" {
				hostList = []string{""}
			}
			for _, n := range use {
				if !known[n] {
					r.Problems = append(r.Problems, Finding{Level: Error, Message: fmt.Sprintf("server %s: an sso handler names IdP %q, which is not configured", name, n)})
					continue
				}
				for _, host := range hostList {
					o := origin(srv, host, port, httpPort)
					if bo, err := gateway.BaseOrigin(sso.BaseURL); err == nil {
						o = bo.Site
					} else if g.Named != "" && !seen["named/"+name+"/"+g.Named] {
						seen["named/"+name+"/"+g.Named] = true
						r.Problems = append(r.Problems, Finding{Level: Error, Message: fmt.Sprintf("server %s: the sso handler in the named route %s has no base_url, so it refuses to start sign-ins (base_url_required): %s (values below show <host>)", name, g.Named, gateway.NamedRouteAdvice)})
					} else if g.Named == "" && host == "" && !seen["nohost/"+name] {
						seen["nohost/"+name] = true
						r.Problems = append(r.Problems, Finding{Level: Error, Message: fmt.Sprintf("server %s: an sso route matches no host and has no base_url, so it refuses to start sign-ins; give the site its host name or set base_url (values below show <host>)", name)})
					}
					key := n + " " + o.String() + prefix
					if seen[key] {
						continue
					}
					seen[key] = true
					out[n] = append(out[n], site{origin: o, prefix: prefix})
					if msg := plainHTTP(o, len(srv.TrustedProxies) > 0 && sso.BaseURL == "", len(hostList) > 1); msg != "" && !seen["plain "+o.String()] {
						seen["plain "+o.String()] = true
						r.Problems = append(r.Problems, Finding{Level: Warn, Message: fmt.Sprintf("server %s: %s", name, msg)})
					}
				}
			}
		}
	}
	return out, misrouted
}

// endpointPaths describes an adapted sso handler as the running one
// describes itself (gateway.Route.EndpointPaths): its path prefix and its
// IdPs' endpoint paths, of the IdPs configured (idps).
func endpointPaths(idps []*caddymodule.IdPConfig) routeorder.Describe {
	return func(h routeorder.Handler) (string, map[string][]string) {
		raw, _ := h.Value.(json.RawMessage)
		var sso caddymodule.Handler
		if json.Unmarshal(raw, &sso) != nil {
			return "", nil
		}
		prefix, names := sso.Endpoints(idps)
		out := map[string][]string{}
		for _, c := range idps {
			if slices.Contains(names, c.Name) {
				out[c.Name] = gateway.IdPEndpointPaths(prefix, c.Protocol, c.Name)
			}
		}
		return prefix, out
	}
}

// routeTree is the abstract tree of adapted routes the routeorder rules
// read, each handler's adapted JSON its Value; named are the server's
// named routes, and invoking those that routes are part of (a cycle is
// left unexpanded). keep, when not nil, leaves out the routes it refuses,
// of routes and of their subroutes: those of error routes that do not run
// for an error (errorRefusal).
func routeTree(routes []route, named map[string]*route, invoking []string, keep func(route) bool) []routeorder.Route {
	out := make([]routeorder.Route, 0, len(routes))
	for _, rt := range routes {
		if keep != nil && !keep(rt) {
			continue
		}
		r := routeorder.Route{Matched: len(rt.Match) > 0 && !slices.ContainsFunc(rt.Match, catchesAll), Hosts: make([][]string, len(rt.Match)),
			Match: routeorder.AdaptedMatch(rt.Match), Group: rt.Group, Terminal: rt.Terminal}
		for j, m := range rt.Match {
			var hosts []string
			if raw, ok := m["host"]; ok && json.Unmarshal(raw, &hosts) == nil {
				r.Hosts[j] = hosts
			}
		}
		for _, raw := range rt.Handle {
			var hd handler
			_ = json.Unmarshal(raw, &hd) // unreadable: a handler that calls next
			passesOn := hd.PassThru
			for _, hr := range hd.HandleResponse {
				passesOn = passesOn || routeorder.CallsNext(routeTree(hr.Routes, named, invoking, nil))
			}
			sub := keep
			if hd.Handler != "subroute" {
				sub = nil
			}
			h := routeorder.Handler{Module: hd.Handler, Routes: routeTree(hd.Routes, named, invoking, sub), Name: hd.Name,
				Transport: hd.Transport.Protocol, PassesOn: passesOn, Value: raw}
			if hd.Errors != nil {
				h.Errors = routeTree(hd.Errors.Routes, named, invoking, nil)
			}
			if nr, in := routeorder.Invoked(named, invoking, hd.Name); hd.Handler == "invoke" && nr != nil {
				h.Routes = routeTree([]route{*nr}, named, in, nil)
			}
			r.Handlers = append(r.Handlers, h)
		}
		out = append(out, r)
	}
	return out
}

// plainHTTP says why the values printed for a plain-http site on a host
// other than loopback are not what sign-in meets ("" when they are):
// behind a trusted proxy the gateway builds its URLs from the proxy's
// X-Forwarded-Proto and -Host, and without one browsers drop the Secure
// cookies (the rule of idp.Origin.Secure, which the gateway logs at the
// first request). One sso serving several hosts (shared) takes no base_url:
// pinned to one host's origin, the other hosts' sign-ins would go there.
func plainHTTP(o idp.Origin, proxied, shared bool) string {
	if o.Scheme != "http" || !o.Secure() || strings.HasPrefix(o.Host, "<") {
		return ""
	}
	host, _, err := net.SplitHostPort(o.Host)
	if err != nil {
		host = o.Host
	}
	if proxied {
		pin := fmt.Sprintf("set base_url https://%s in the sso directive to pin them, and register those", host)
		if shared {
			pin = "register those (no base_url: this sso serves each of the site's hosts at its own origin)"
		}
		return fmt.Sprintf("site %s is plain http behind trusted_proxies: the gateway builds its redirect, ACS and logout URLs from the proxy's X-Forwarded-Proto and X-Forwarded-Host (https://%s/… when the proxy terminates TLS), not the http:// values below; %s", o, host, pin)
	}
	fix := "set base_url https://" + host
	if shared {
		fix = "keep the site without base_url (it serves each host at its own origin)"
	}
	return fmt.Sprintf("site %s is served over plain http on a host that is not loopback: browsers drop the Secure session and sign-in cookies over plain http, so sign-ins fail (flow_missing); serve it over https, or terminate TLS in a proxy listed in trusted_proxies and %s", o, fix)
}

// verifies reports whether h is an sso handler of a verify mode, whose
// answer a forward-auth proxy reads.
func verifies(h routeorder.Handler) bool {
	raw, _ := h.Value.(json.RawMessage)
	var v struct {
		Mode string `json:"mode"`
	}
	return h.Module == routeorder.SSO && json.Unmarshal(raw, &v) == nil && verifyMode(v.Mode)
}

// verifyMode reports whether an sso handler's mode, as written, is a
// verify mode: "protect" is the default's name ("" in JSON).
func verifyMode(mode string) bool {
	m, err := gateway.ParseMode(mode)
	return err == nil && m != gateway.ModeProtect
}

// otherHosts reports whether Caddy answers every request to the server
// name whose Host its routes do not name with a refusal, not the 2xx a
// forward-auth proxy takes as signed in. Under strict_sni_host (which
// client auth turns on) a TLS listener refuses such a request with 421
// before any route runs, unless on-demand TLS completes the handshake for
// names no site has (onDemand); the error routes may answer that 421
// (errorRefusal). Else the first handler that answers every request
// (routeorder.Answering) decides (refuses): respond 403, not respond
// /health 403, handle /x { … } or header alone, nor respond "text", whose
// 200 the proxy takes as signed in. When none does, Caddy answers with
// automatic HTTPS's redirect (redirects) or, without it, an empty 200.
func (cc *adaptedConfig) otherHosts(name string, httpPort int) bool {
	srv := cc.Apps.HTTP.Servers[name]
	if strictSNI(srv) && tlsListener(srv, httpPort) && !cc.onDemand() {
		return errorRefusal(srv, http.StatusMisdirectedRequest)
	}
	answers := func(h routeorder.Handler) bool {
		return routeorder.Serves(h) || h.Module == "error" || refuses(srv, h) || rewrites(h, srv.NamedRoutes)
	}
	h, ok := routeorder.Answering(routeTree(srv.Routes, srv.NamedRoutes, nil, nil), answers)
	if !ok {
		return cc.redirects(name, httpPort)
	}
	return refuses(srv, h)
}

// refuses reports whether h, the handler that answers every request for
// another Host, answers it with what a forward-auth proxy takes as "not
// signed in", not a 2xx (refusal): respond and redir by their status (200
// when none is written; a placeholder, which check cannot know, is not
// taken for a refusal), abort, error by its status (500 when none) as
// the server's error routes answer it (errorRefusal), an sso of a verify
// mode (its own verdict, which it answers itself, not through error
// routes), and reverse_proxy, whose upstream decides. Not php_fastcgi,
// which leaves a request for a file that exists unanswered, nor
// file_server or metrics, which answer 200, nor an intercept that can
// rewrite the answer into a 2xx (rewrites).
func refuses(srv *server, h routeorder.Handler) bool {
	raw, _ := h.Value.(json.RawMessage)
	var v struct {
		StatusCode json.RawMessage `json:"status_code"`
		Abort      bool            `json:"abort"`
		Mode       string          `json:"mode"`
	}
	_ = json.Unmarshal(raw, &v) // unreadable: the zero value, no refusal
	switch h.Module {
	case "static_response":
		return v.Abort || refusal(v.StatusCode, http.StatusOK)
	case "error":
		code, ok := status(v.StatusCode, http.StatusInternalServerError)
		return ok && code >= 300 && errorRefusal(srv, code)
	case routeorder.SSO:
		return verifyMode(v.Mode)
	case "reverse_proxy":
		return h.Transport != routeorder.FastCGI && !h.PassesOn
	}
	return false
}

// errorRefusal reports whether the server's error routes (handle_errors)
// leave an error of status code a refusal: none of those that run for it
// (errorRouteFor, in subroutes too: a Caddyfile puts each site's
// handle_errors in a subroute of its own) can answer a 2xx (can2xx, a
// handler's default status there being the error's). An error route that
// forwards to an error-pages service, or writes respond "…" 200, lets the
// request in.
func errorRefusal(srv *server, code int) bool {
	if srv.Errors == nil {
		return true
	}
	runs := func(rt route) bool { return errorRouteFor(rt, code) }
	return !can2xx(routeTree(srv.Errors.Routes, srv.NamedRoutes, nil, runs), code)
}

// errorRouteFor reports whether the error route rt may run for an error
// of status code on a request for a Host no route names: not when each of
// its matcher sets has a host matcher (a site's own handle_errors), or
// lists the statuses it takes (handle_errors 403 404) without code. Other
// matchers are taken to match.
func errorRouteFor(rt route, code int) bool {
	if len(rt.Match) == 0 {
		return true
	}
	for _, set := range rt.Match {
		if _, ok := set["host"]; ok {
			continue
		}
		var expr string
		if raw, ok := set["expression"]; ok && json.Unmarshal(raw, &expr) == nil && len(set) == 1 {
			if codes, ok := strings.CutPrefix(expr, "{http.error.status_code} in ["); ok && strings.HasSuffix(codes, "]") {
				listed := strings.Split(strings.TrimSuffix(codes, "]"), ",")
				if !slices.ContainsFunc(listed, func(c string) bool { return strings.TrimSpace(c) == strconv.Itoa(code) }) {
					continue
				}
			}
		}
		return true
	}
	return false
}

// can2xx reports whether routes, error routes or an intercept's
// handle_response, may answer a 2xx: a handler in them that forwards
// (routeorder.Forwards: the upstream decides), metrics, or respond or
// file_server with a 2xx status (def when none is written: the error's
// status in error routes, 200 elsewhere) or a placeholder one.
func can2xx(routes []routeorder.Route, def int) bool {
	if routeorder.Forwards(routes) {
		return true
	}
	for _, r := range routes {
		for _, h := range r.Handlers {
			raw, _ := h.Value.(json.RawMessage)
			var v struct {
				StatusCode json.RawMessage `json:"status_code"`
				Abort      bool            `json:"abort"`
			}
			_ = json.Unmarshal(raw, &v)
			switch {
			case h.Module == "metrics",
				(h.Module == "static_response" || h.Module == "file_server") && !v.Abort && !refusal(v.StatusCode, def),
				can2xx(h.Routes, def):
				return true
			}
		}
	}
	return false
}

// rewrites reports whether h is an intercept that can turn the answer of
// the handlers after it into a 2xx: one of its handle_response replaces
// the status with a 2xx, or its routes may answer one (can2xx: there
// file_server and respond answer 200 unless given a status, as
// handle_response is no error context). Caddy's documented pattern for
// error pages, intercept { handle_response { file_server } }, does.
func rewrites(h routeorder.Handler, named map[string]*route) bool {
	raw, _ := h.Value.(json.RawMessage)
	var v handler
	if h.Module != "intercept" || json.Unmarshal(raw, &v) != nil {
		return false
	}
	for _, hr := range v.HandleResponse {
		if len(hr.StatusCode) > 0 && !refusal(hr.StatusCode, http.StatusOK) || can2xx(routeTree(hr.Routes, named, nil, nil), http.StatusOK) {
			return true
		}
	}
	return false
}

// redirects reports whether automatic HTTPS adds its catch-all HTTP->HTTPS
// redirect (a 308 for any Host) to the end of the plain-http server name,
// as caddyhttp's automaticHTTPSPhase1 does at start, after the adapted
// config check reads: some server with automatic HTTPS and its redirects
// on, listening on a port other than the HTTP port, with a host to get a
// certificate for or TLS connection policies, listens where name does
// once its port is made the HTTP port.
func (cc *adaptedConfig) redirects(name string, httpPort int) bool {
	srv := cc.Apps.HTTP.Servers[name]
	if len(srv.TLSPolicies) > 0 {
		return false // the redirect matches protocol http only
	}
	for _, other := range cc.Apps.HTTP.Servers {
		if a := other.AutomaticHTTPS; a != nil && (a.Disable || a.DisableRedir) || !slices.ContainsFunc(other.Listen, func(l string) bool { return !onPort(l, httpPort) }) {
			continue
		}
		if len(other.TLSPolicies) == 0 && !slices.ContainsFunc(other.Routes, func(rt route) bool { return namesHost(rt, other) }) {
			continue
		}
		for _, l := range other.Listen {
			to, err := caddy.ParseNetworkAddress(l)
			if err != nil {
				continue
			}
			for _, own := range srv.Listen {
				na, err := caddy.ParseNetworkAddress(own)
				// Linux binds a wildcard and a specific address on one port
				// as one, and so does Caddy's hasListenerAddress.
				if err == nil && na.Network == to.Network && (na.Host == to.Host || na.Host == "" || to.Host == "") && onPort(own, httpPort) {
					return true
				}
			}
		}
	}
	return false
}

// namesHost reports whether rt has a host matcher with a host automatic
// HTTPS does not skip.
func namesHost(rt route, srv *server) bool {
	for _, set := range rt.Match {
		var hosts []string
		if raw, ok := set["host"]; ok && json.Unmarshal(raw, &hosts) == nil {
			for _, h := range hosts {
				if srv.AutomaticHTTPS == nil || !slices.Contains(srv.AutomaticHTTPS.Skip, h) {
					return true
				}
			}
		}
	}
	return false
}

// onPort reports whether the listener address l takes port.
func onPort(l string, port int) bool {
	na, err := caddy.ParseNetworkAddress(l)
	return err == nil && uint(port) >= na.StartPort && uint(port) <= na.EndPort
}

// strictSNI reports whether Caddy refuses a TLS request whose Host is not
// its SNI (421): strict_sni_host on, or unset with a connection policy of
// client authentication, for which Caddy turns it on.
func strictSNI(srv *server) bool {
	if srv.StrictSNIHost != nil {
		return *srv.StrictSNIHost
	}
	var policies []struct {
		ClientAuth map[string]json.RawMessage `json:"client_authentication"`
	}
	_ = json.Unmarshal(srv.TLSPolicies, &policies)
	for _, p := range policies {
		if len(p.ClientAuth) > 0 {
			return true
		}
	}
	return false
}

// tlsListener reports whether srv serves TLS: it has connection policies,
// or automatic HTTPS gives it some, as it does a server off the HTTP port
// with a host to get a certificate for (namesHost; an http:// site's host
// is skipped, and such a server stays plain http).
func tlsListener(srv *server, httpPort int) bool {
	if len(srv.TLSPolicies) > 0 {
		return true
	}
	return (srv.AutomaticHTTPS == nil || !srv.AutomaticHTTPS.Disable) &&
		slices.ContainsFunc(srv.Listen, func(l string) bool { return !onPort(l, httpPort) }) &&
		slices.ContainsFunc(srv.Routes, func(rt route) bool { return namesHost(rt, srv) })
}

// onDemand reports whether a TLS automation policy gets certificates on
// demand for names no site has, completing the handshake for them: one
// without subjects, which Caddy applies to any name the others leave, or
// with a wildcard one. One for named hosts alone (tls { on_demand } in a
// site with a host) gives another name no certificate.
func (cc *adaptedConfig) onDemand() bool {
	if t := cc.Apps.TLS; t != nil && t.Automation != nil {
		for _, p := range t.Automation.Policies {
			if p.OnDemand && (len(p.Subjects) == 0 || slices.ContainsFunc(p.Subjects, func(s string) bool { return strings.Contains(s, "*") })) {
				return true
			}
		}
	}
	return false
}

// catchesAll reports whether a matcher set matches every request: it has
// no matcher but a path of routeorder.EveryPath (the site
// http://:9091/*, handle /*). Any other (a host, a narrower path as in
// http://:9091/health, a method) leaves requests to Caddy's empty 200.
func catchesAll(set map[string]json.RawMessage) bool {
	for name, raw := range set {
		var paths []string
		if name != "path" || json.Unmarshal(raw, &paths) != nil || !routeorder.EveryPath(paths) {
			return false
		}
	}
	return true
}

// refusal reports whether a handler's status_code (a number, or a string
// of one; def when none) is one a forward-auth proxy does not take as
// signed in: 3xx and up. A 1xx is no final answer: Caddy (after 103
// Early Hints) or Go's net/http follows it with a 200. A placeholder,
// which check cannot know, is no refusal.
func refusal(raw json.RawMessage, def int) bool {
	code, ok := status(raw, def)
	return ok && code >= 300
}

// status is a handler's status_code (def when none); ok is false for a
// placeholder.
func status(raw json.RawMessage, def int) (code int, ok bool) {
	if len(raw) == 0 {
		return def, true
	}
	n, err := strconv.Atoi(strings.Trim(string(raw), `"`))
	return n, err == nil
}

// serverPort is the port of a server's first listener address.
func serverPort(listen []string) int {
	for _, l := range listen {
		na, err := caddy.ParseNetworkAddress(l)
		if err == nil && !na.IsUnixNetwork() {
			return int(na.StartPort)
		}
	}
	return 0
}

// origin is the origin browsers reach host on through srv, spelt as they
// send it and the gateway builds its URLs on it (idp.CanonicalHost: an
// internationalized name as its A-label, in lower case).
func origin(srv *server, host string, port, httpPort int) idp.Origin {
	scheme := "https"
	switch {
	case host == "":
		host = "<host>"
		scheme = "http"
	case port == httpPort:
		scheme = "http"
	case srv.AutomaticHTTPS != nil && slices.Contains(srv.AutomaticHTTPS.Skip, host):
		scheme = "http"
	case srv.AutomaticHTTPS != nil && srv.AutomaticHTTPS.Disable && len(srv.TLSPolicies) == 0:
		scheme = "http"
	}
	if port != 0 && !(scheme == "https" && port == 443) && !(scheme == "http" && port == 80) {
		host = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return idp.Origin{Scheme: scheme, Host: idp.CanonicalHost(scheme, host)}
}

// values fills in what the IdP administrator must enter, per site.
func values(c *caddymodule.IdPConfig, repl *caddy.Replacer, sites []site, ic *IdPCheck) {
	for _, s := range sites {
		base := gateway.EndpointBase(s.origin, s.prefix, c.Protocol, c.Name)
		add := func(field, value string) {
			ic.Values = append(ic.Values, Value{Field: field, Site: s.origin.String(), Value: value})
		}
		switch c.Protocol {
		case idp.ProtocolOIDC:
			add("Redirect URI", base+idp.OIDCCallbackEndpoint)
			add("Post-logout redirect URI", s.origin.URL("/"))
		case idp.ProtocolSAML:
			entityID := base + saml.MetadataEndpoint
			if c.SAML.EntityID != "" {
				entityID = repl.ReplaceKnown(c.SAML.EntityID, "")
			}
			add("SP entity ID (Identifier / Audience URI)", entityID)
			add("ACS URL (Reply URL / Single sign-on URL)", base+idp.SAMLCallbackEndpoint)
		}
		// Every other endpoint the protocol serves, as its package lists
		// them. OIDC's are the logout ones, through one of which the IdP
		// ends this site's sessions when the person signs out elsewhere:
		// back-channel (Okta, PingOne) or front-channel (Entra ID);
		// docs/*-oidc.md say which.
		for _, e := range gateway.ProtocolEndpoints(c.Protocol) {
			add(e.Field, base+e.Name)
		}
	}
}

// symbols mark each line of the report by level.
var symbols = map[string]string{OK: "✓", Info: "i", Warn: "!", Error: "✗"}

// claimName renders a mapping candidate of attr for people. For SAML both
// special names mean the NameID, which only in its persistent format can
// be the user ID (mapping.NameID).
func claimName(protocol, attr, name string) string {
	switch {
	case name == mapping.Subject && protocol == idp.ProtocolOIDC:
		return "sub"
	case (name == mapping.Subject || name == mapping.NameID) && attr == mapping.UniqueUserID:
		return "NameID (persistent)"
	case name == mapping.Subject || name == mapping.NameID:
		return "NameID"
	}
	return name
}

// Print writes the report for people. Its messages quote what the IdPs'
// discovery documents and metadata hold, escaped (termtext.Line): a
// hostile or broken IdP must not steer the operator's terminal.
func (r *Report) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "caddy-sso check: %s\n", termtext.Line(r.Config))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  %s %s\n", symbols[p.Level], termtext.Line(p.Message))
	}
	for _, ic := range r.IdPs {
		fmt.Fprintf(&b, "\nIdP %s (%s, preset %s)\n", termtext.Line(ic.Name), ic.Protocol, ic.Preset)
		for _, x := range ic.Checks {
			fmt.Fprintf(&b, "  %s %s\n", symbols[x.Level], termtext.Line(x.Message))
		}
		if len(ic.Values) > 0 {
			b.WriteString("  Enter at the IdP:\n")
			tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			for _, v := range ic.Values {
				fmt.Fprintf(tw, "    %s\t%s\n", v.Field, termtext.Line(v.Value))
			}
			_ = tw.Flush()
		}
		if len(ic.Claims) > 0 {
			if ic.Protocol == idp.ProtocolSAML {
				b.WriteString("  Attributes to send (the first one present is used):\n")
			} else {
				b.WriteString("  Claims to map (the first one present is used):\n")
			}
			tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			for _, cl := range ic.Claims {
				names := make([]string, len(cl.Names))
				for i, n := range cl.Names {
					names[i] = termtext.Line(claimName(ic.Protocol, cl.Attribute, n))
				}
				list := strings.Join(names, ", ")
				if cl.Union && len(names) > 1 {
					list += " (all of them: their union)"
				}
				fmt.Fprintf(tw, "    %s\t%s\n", cl.Attribute, list)
			}
			_ = tw.Flush()
		}
	}
	fmt.Fprintf(&b, "\n%d IdP(s): %d error(s), %d warning(s)\n", len(r.IdPs), r.Errors, r.Warnings)
	_, err := io.WriteString(w, b.String())
	return err
}
