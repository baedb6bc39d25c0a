package routeorder

import (
	"reflect"
	"testing"
)

// on is a route whose matcher sets have these host matchers (nil: a set
// without one, a path matcher alone).
func onHosts(hosts [][]string, handlers ...Handler) Route {
	return Route{Matched: true, Hosts: hosts, Handlers: handlers}
}

// TestGuards: a route guards the Host only when every one of its matcher
// sets has a host matcher (a set without one lets any Host in), and then
// with the hosts of all its sets; guards nest through subroutes and their
// error routes. An sso handler in a named route counts as unguarded
// whatever the routes that invoke it match, and says which named route it
// is in: its site needs base_url (docs/security.md, "Host-derived URLs").
func TestGuards(t *testing.T) {
	app, b := []string{"app.example.com"}, []string{"b.example.com"}
	tests := []struct {
		name   string
		routes []Route
		want   []Guard // Handler left out
	}{
		{"no matcher", []Route{r(h(SSO))}, []Guard{{}}},
		{"path only", []Route{onHosts([][]string{nil}, h(SSO))}, []Guard{{}}},
		{"host", []Route{onHosts([][]string{app}, h(SSO))}, []Guard{{Hosts: [][]string{app}}}},
		{"one set without host", []Route{onHosts([][]string{app, nil}, h(SSO))}, []Guard{{}}},
		{"an empty host matcher", []Route{onHosts([][]string{{}}, h(SSO))}, []Guard{{}}},
		{"two sets with hosts", []Route{onHosts([][]string{app, b}, h(SSO))},
			[]Guard{{Hosts: [][]string{{"app.example.com", "b.example.com"}}}}},
		{"a site's subroute, then a host route inside",
			[]Route{onHosts([][]string{app}, sub(onHosts([][]string{b}, h(SSO))))}, []Guard{{Hosts: [][]string{app, b}}}},
		{"a route without host inside a site keeps the site's",
			[]Route{onHosts([][]string{app}, sub(onHosts([][]string{app, nil}, h(SSO)), r(h(SSO))))},
			[]Guard{{Hosts: [][]string{app}}, {Hosts: [][]string{app}}}},
		{"a subroute's error routes", []Route{onHosts([][]string{app}, Handler{Module: "subroute", Errors: []Route{r(h(SSO))}})},
			[]Guard{{Hosts: [][]string{app}}}},
		{"a named route invoked by a site", []Route{onHosts([][]string{app}, invoke("app", r(h(SSO))))}, []Guard{{Named: "app"}}},
		{"host routes inside a named route", []Route{onHosts([][]string{app}, invoke("app", onHosts([][]string{b}, sub(r(h(SSO))))))},
			[]Guard{{Named: "app"}}},
		{"a named route invoked by another", []Route{onHosts([][]string{app}, invoke("outer", r(invoke("inner", r(h(SSO))))))},
			[]Guard{{Named: "inner"}}},
		{"handlers other than sso", []Route{onHosts([][]string{app}, h("reverse_proxy"), sub(r(h("headers"))))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Guards(tt.routes)
			for i := range got {
				got[i].Handler = Handler{}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Guards = %+v, want %+v", got, tt.want)
			}
		})
	}
}
