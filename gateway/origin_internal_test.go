package gateway

import "testing"

func TestForwardedHost(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"app.example.com", "app.example.com"},
		{"App.Example.com:8443", "App.Example.com:8443"},
		{"internal_host.lan", "internal_host.lan"},
		{"[2001:db8::1]", "[2001:db8::1]"},
		{"[2001:db8::1]:8443", "[2001:db8::1]:8443"},
		{"app.example.com, app.example.com", "app.example.com"},
		{" app.example.com ,app.example.com", "app.example.com"},
		{"a.example.com, b.example.com", ""},
		{"[2001:db8::66]/x.example.test", ""},
		{"1572395042#.example.test", ""},
		{"[fe80::1%@evil#.example.test]", ""}, // a browser reads host "evil"
		{"[2001:db8::66%25/x.example.test]", ""},
		{"[fe80::1%eth0]", ""},
		{"a.example.test?x=.example.test", ""},
		{"user@a.example.test", ""},
		{"a.example.test:", ""},
		{"a.example.test:80a", ""},
		{"a.example.test:123456", ""},
		{"2001:db8::1", ""},
		{"[10.0.0.1]", ""},
		{"[::1", ""},
		{"", ""},
		{":8443", ""}, // a port without a host
		{",", ""},
		{"bücher.example", ""},
	} {
		if got := forwardedHost(tc.in); got != tc.want {
			t.Errorf("forwardedHost(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
