package provision_test

import (
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestDomainRefusalNamesTheDomain: a sign-in allowed_domains refuses says
// which domain it refused, in the denial, the log line and the audit
// event (canonical, the xn-- form for an internationalized one), never the
// address: the operator asked about it decides from that alone between
// adding the domain and telling the person no.
func TestDomainRefusalNamesTheDomain(t *testing.T) {
	for _, tc := range []struct{ email, want string }{
		{"Ada@Partner.Example.", "partner.example"},
		{"ada@bücher.example", "xn--bcher-kva.example"},
	} {
		e := newEnv(t)
		prof := full("s")
		prof.Email = tc.email
		rules := provision.Rules{JIT: true, AllowedDomains: []string{"example.com"}}
		d, ev := e.expectDenied("okta", rules, prof, true, provision.ReasonDomainNotAllowed, store.EventLoginDenied)
		if d.Domain != tc.want || ev.Detail["domain"] != tc.want {
			t.Errorf("%s: denial domain %q, audit domain %q; want %q", tc.email, d.Domain, ev.Detail["domain"], tc.want)
		}
		lines := e.logs.FilterMessage("sso login denied").FilterLevelExact(zapcore.WarnLevel).All()
		if len(lines) != 1 || lines[0].ContextMap()["domain"] != tc.want {
			t.Errorf("%s: log lines %+v; want one naming domain %q", tc.email, lines, tc.want)
		}
		for _, l := range lines {
			for k, v := range l.ContextMap() {
				if s, ok := v.(string); ok && s == tc.email {
					t.Errorf("%s: the log line carries the address in %s", tc.email, k)
				}
			}
		}
	}
}
