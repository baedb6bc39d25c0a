package routeorder

import (
	"slices"
	"strings"
	"testing"
)

func h(module string, routes ...Route) Handler { return Handler{Module: module, Routes: routes} }

func r(handlers ...Handler) Route { return Route{Handlers: handlers} }

func matched(handlers ...Handler) Route { return Route{Matched: true, Handlers: handlers} }

func sub(routes ...Route) Handler { return h("subroute", routes...) }

func invoke(name string, route ...Route) Handler {
	return Handler{Module: "invoke", Name: name, Routes: route}
}

// TestUnprotected is the rule on the shapes the Caddyfile adapts to: a
// site is a host-matched route holding a subroute; a route block is a
// subroute whose handlers are one unmatched route each.
func TestUnprotected(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		want   []Finding // Server left empty
	}{
		{"sso first", []Route{matched(sub(r(h(SSO)), r(h("reverse_proxy"))))}, nil},
		{"reverse_proxy then sso in a route block",
			[]Route{matched(sub(r(sub(r(h("reverse_proxy")), r(h(SSO))))))},
			[]Finding{{Terminal: "reverse_proxy", At: "routes[0].handle[0].routes[0].handle[0].routes[0].handle[0]", SSO: "routes[0].handle[0].routes[0].handle[0].routes[1].handle[0]"}}},
		{"terminal before sso in the same route, even a matched one",
			[]Route{matched(h("file_server"), h(SSO))},
			[]Finding{{Terminal: "file_server", At: "routes[0].handle[0]", SSO: "routes[0].handle[1]"}}},
		{"a matched public route before sso", []Route{matched(h("static_response")), r(h(SSO), h("reverse_proxy"))}, nil},
		{"an unmatched respond before sso",
			[]Route{r(h("headers"), h("static_response")), r(h(SSO))},
			[]Finding{{Terminal: "static_response", At: "routes[0].handle[1]", SSO: "routes[1].handle[0]"}}},
		{"handlers that call next before sso", []Route{r(h("headers"), h("encode"), h("vars")), r(h(SSO))}, nil},
		{"a subroute that always answers",
			[]Route{r(sub(matched(h("file_server")), r(h("sso_scim")))), r(h(SSO))},
			[]Finding{{Terminal: "sso_scim", At: "routes[0].handle[0].routes[1].handle[0]", SSO: "routes[1].handle[0]"}}},
		{"a subroute that answers only when matched", []Route{r(sub(matched(h("file_server")))), r(h(SSO))}, nil},
		{"sso nested after an unmatched terminal",
			[]Route{r(h("reverse_proxy")), matched(sub(r(h(SSO))))},
			[]Finding{{Terminal: "reverse_proxy", At: "routes[0].handle[0]", SSO: "routes[1].handle[0].routes[0].handle[0]"}}},
		{"an unknown handler counts as calling next", []Route{r(h("some_plugin")), r(h(SSO))}, nil},
		{"file_server pass_thru and forward_auth's reverse_proxy call next",
			[]Route{r(Handler{Module: "file_server", PassesOn: true}, Handler{Module: "reverse_proxy", PassesOn: true}, h(SSO))}, nil},
		{"invoke of a named route that proxies, then sso",
			[]Route{r(sub(r(invoke("app", r(h("reverse_proxy")))), r(h(SSO))))},
			[]Finding{{Terminal: "reverse_proxy", At: "named_routes.app.handle[0] (the named route app, which invoke app at routes[0].handle[0].routes[0].handle[0] runs)", SSO: "routes[0].handle[0].routes[1].handle[0]"}}},
		{"sso after a proxy in the named route",
			[]Route{r(invoke("app", r(h("reverse_proxy"), sub(r(h(SSO))))))},
			[]Finding{{Terminal: "reverse_proxy", At: "named_routes.app.handle[0] (the named route app, which invoke app at routes[0].handle[0] runs)", SSO: "named_routes.app.handle[1].routes[0].handle[0] (the named route app, which invoke app at routes[0].handle[0] runs)"}}},
		{"sso first in the named route", []Route{r(invoke("app", r(h(SSO), h("reverse_proxy"))))}, nil},
		{"a named route matched on a path", []Route{r(invoke("app", matched(h("reverse_proxy")))), r(h(SSO))}, nil},
		{"an invoke left unexpanded (a cycle) calls next", []Route{r(invoke("app")), r(h(SSO))}, nil},
		{"php_fastcgi then sso: its proxy ends the list though matched",
			[]Route{r(sub(matched(h("static_response")), matched(h("rewrite")), matched(Handler{Module: "reverse_proxy", Transport: FastCGI}))), r(h(SSO))},
			[]Finding{{Terminal: "reverse_proxy", At: "routes[0].handle[0].routes[2].handle[0]", SSO: "routes[1].handle[0]"}}},
		{"a matched reverse_proxy over http, then sso", []Route{r(sub(matched(h("reverse_proxy")))), r(h(SSO))}, nil},
		{"php_fastcgi on a path, then sso",
			[]Route{matched(sub(matched(Handler{Module: "reverse_proxy", Transport: FastCGI}))), r(h(SSO))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Unprotected(tt.routes)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestForwards: an error route that reaches a reverse_proxy, of any
// transport and through subroutes or a named route, forwards the request.
func TestForwards(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routes []Route
		want   bool
	}{
		{"respond", []Route{r(h("static_response"))}, false},
		{"file_server and templates", []Route{r(h("rewrite"), h("templates"), h("file_server"))}, false},
		{"reverse_proxy in handle_errors", []Route{matched(sub(r(sub(r(h("reverse_proxy"))))))}, true},
		{"php_fastcgi", []Route{r(sub(matched(Handler{Module: "reverse_proxy", Transport: FastCGI})))}, true},
		{"a named route that proxies", []Route{r(invoke("app", r(h("reverse_proxy"))))}, true},
	} {
		if got := Forwards(tc.routes); got != tc.want {
			t.Errorf("%s: Forwards = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAnswers: routes answer every request only when an unmatched route
// (through unmatched subroute routes and named routes) holds a handler
// that answers by itself, as the caller judges (here: respond, error, a
// reverse_proxy that does not pass on); what answers need not serve: error
// does not keep an sso after it from running as far as Unprotected is
// concerned.
func TestAnswers(t *testing.T) {
	answers := func(h Handler) bool {
		return h.Module == "static_response" || h.Module == "error" || h.Module == "reverse_proxy" && !h.PassesOn
	}
	for _, tc := range []struct {
		name   string
		routes []Route
		want   bool
	}{
		{"respond", []Route{r(sub(r(h("static_response"))))}, true},
		{"respond on one path", []Route{r(sub(matched(h("static_response"))))}, false},
		{"handle on one path", []Route{r(sub(matched(sub(r(h("static_response"))))))}, false},
		{"headers alone", []Route{r(sub(r(h("headers"))))}, false},
		{"handle on one path, then respond", []Route{r(sub(matched(sub(r(h("static_response")))), r(h("static_response"))))}, true},
		{"a matched route that answers", []Route{matched(h("reverse_proxy"))}, false},
		{"reverse_proxy", []Route{r(h("headers"), h("reverse_proxy"))}, true},
		{"forward_auth's reverse_proxy calls next", []Route{r(Handler{Module: "reverse_proxy", PassesOn: true})}, false},
		{"a handler the caller does not count", []Route{r(h("file_server"))}, false},
		{"error", []Route{r(sub(r(h("error"))))}, true},
		{"a named route that refuses", []Route{r(invoke("deny", r(h("static_response"))))}, true},
		{"an invoke left unexpanded", []Route{r(invoke("deny"))}, false},
	} {
		if got := Answers(tc.routes, answers); got != tc.want {
			t.Errorf("%s: Answers = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := Unprotected([]Route{r(h("error"), h(SSO))}); len(got) != 0 {
		t.Errorf("error, then sso: findings %v, want none", got)
	}
}

// TestAnsweringAndPreceded: Answering names the first handler that
// answers every request (an intercept the caller counts comes before the
// respond it wraps), for the caller to judge; Preceded reports only the
// sso handlers target picks, after a handler first picks.
func TestAnsweringAndPreceded(t *testing.T) {
	first := func(h Handler) bool { return h.Module == "intercept" || h.Module == "static_response" }
	for _, tc := range []struct {
		name   string
		routes []Route
		want   string // "" for none
	}{
		{"intercept, then respond", []Route{r(sub(r(h("intercept")), r(h("static_response"))))}, "intercept"},
		{"respond, then intercept", []Route{r(h("static_response"), h("intercept"))}, "static_response"},
		{"intercept on one path, then respond", []Route{matched(h("intercept")), r(h("static_response"))}, "static_response"},
		{"headers alone", []Route{r(h("headers"))}, ""},
	} {
		got, ok := Answering(tc.routes, first)
		if got.Module != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: Answering = %q, %v; want %q", tc.name, got.Module, ok, tc.want)
		}
	}
	verify := Handler{Module: SSO, Value: "verify"} // a verify-mode sso, as the caller tells
	routes := []Route{r(sub(r(h("intercept")), r(h(SSO)), r(verify)))}
	got := Preceded(routes, func(h Handler) bool { return h.Module == "intercept" }, func(h Handler) bool { return h.Value == "verify" })
	want := []Finding{{Terminal: "intercept", At: "routes[0].handle[0].routes[0].handle[0]", SSO: "routes[0].handle[0].routes[2].handle[0]"}}
	if !slices.Equal(got, want) {
		t.Errorf("Preceded = %v, want %v", got, want)
	}
}

// TestEveryPath: a path matcher of "*" or "/*" matches every request.
func TestEveryPath(t *testing.T) {
	for paths, want := range map[string]bool{"*": true, "/*": true, "/health": false, "/x/*": false, "/health /*": true, "": false} {
		if got := EveryPath(strings.Fields(paths)); got != want {
			t.Errorf("EveryPath(%q) = %v, want %v", paths, got, want)
		}
	}
}
