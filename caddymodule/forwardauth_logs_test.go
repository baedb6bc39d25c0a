package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// logLinesWith returns the gateway's log lines that contain msg.
func logLinesWith(w *oidcWorld, msg string) []string {
	var out []string
	for _, line := range strings.Split(w.gw.logs(), "\n") {
		if strings.Contains(line, msg) {
			out = append(out, line)
		}
	}
	return out
}

// TestForwardAuthRefusalLogsNameThePage: the log lines of a verify
// endpoint's refusals name the page the proxy asked about (its
// X-Forwarded-Uri, without the query), not the subrequest's own path,
// /verify, the same for every question: "access denied by the route's
// rules", which an operator searches for when someone gets "Access
// denied" (docs/troubleshooting.md), and the unvouched-host error of a
// site that would sign identity tokens on a Host nothing vouches for.
func TestForwardAuthRefusalLogsNameThePage(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	ports := otherPorts(t, 2)
	denying, unvouched := ports[0], ports[1]
	w.gw.start(w.verifyConfig([]int{w.gw.port, denying, unvouched}, fmt.Sprintf(`http://127.0.0.1:%d {
	bind 127.0.0.1
	sso test {
		mode auth_request
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	sso test {
		mode forward_auth
		deny group admins
	}
}

# No host in the address and no base_url: nothing vouches for the Host.
http://:%d {
	bind 127.0.0.1
	sso test {
		mode auth_request
		identity_jwt
	}
}
`, w.gw.port, denying, unvouched)))
	b := newBrowser(t)
	if resp := b.signIn(w.gw.base+"/.sso/login?return_to=%2F", "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended with %s", resp.Status)
	}

	// ada is in admins.
	if resp := subrequest(t, b, fmt.Sprintf("http://127.0.0.1:%d/verify", denying), "/admin/payroll?month=5"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("denied user: %s, want 403", resp.Status)
	}
	lines := logLinesWith(w, "access denied by the route's rules")
	if len(lines) != 1 || !strings.Contains(lines[0], `"path":"/admin/payroll"`) || strings.Contains(lines[0], "month=5") {
		t.Errorf("the denial's log lines %q, want one naming the page refused, /admin/payroll, without its query", lines)
	}

	// The session cookie (host-only, for 127.0.0.1) reaches every port.
	if resp := subrequest(t, b, fmt.Sprintf("http://127.0.0.1:%d/verify", unvouched), "/reports/q3?year=2026"); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("identity_jwt on an unvouched Host: %s, want 500", resp.Status)
	}
	lines = logLinesWith(w, "refusing to build sign-in URLs or identity tokens")
	if len(lines) != 1 || !strings.Contains(lines[0], `"path":"/reports/q3"`) || strings.Contains(lines[0], "year=2026") {
		t.Errorf("the unvouched-host log lines %q, want one naming the page asked about, /reports/q3, without its query", lines)
	}
}
