package routeorder

import (
	"slices"
	"testing"
)

func h(module string, routes ...Route) Handler { return Handler{Module: module, Routes: routes} }

func r(handlers ...Handler) Route { return Route{Handlers: handlers} }

func matched(handlers ...Handler) Route { return Route{Matched: true, Handlers: handlers} }

func sub(routes ...Route) Handler { return h("subroute", routes...) }

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
