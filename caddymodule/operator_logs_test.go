package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// opLine is a log line as the operator reads it.
type opLine struct {
	Level  string `json:"level"`
	Logger string `json:"logger"`
	Msg    string `json:"msg"`
	IdP    string `json:"idp"`
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
	Origin string `json:"origin"`
}

// opLines returns the lines of log whose message starts with msg.
func opLines(log, msg string) []opLine {
	var out []opLine
	for _, raw := range strings.Split(log, "\n") {
		var l opLine
		if json.Unmarshal([]byte(raw), &l) == nil && strings.HasPrefix(l.Msg, msg) {
			out = append(out, l)
		}
	}
	return out
}

// TestStartFailureLogBudget: while an IdP is misconfigured, every
// anonymous navigation gets the error page, but the log gets one ERROR
// line a minute (per IdP and reason), not one per request.
func TestStartFailureLogBudget(t *testing.T) {
	w := newOIDCWorld(t, "")
	w.gw.start(w.gw.caddyfile(strings.Replace(caddyIdP(w), w.idp.Issuer, w.idp.Issuer+"/", 1), w.sites))
	waitForLog(t, w.gw, "issuer mismatch")
	for range 50 {
		resp := newBrowser(t).get(w.gw.base + "/app")
		readBody(t, resp)
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("navigation: %s", resp.Status)
		}
	}
	n := 0
	for _, l := range opLines(w.gw.logs(), "starting sign-in") {
		if l.Level == "error" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("50 anonymous navigations wrote %d ERROR 'starting sign-in' lines, want 1", n)
	}
}

// TestAccessDenialLogged: a signed-in user the route's allow rules
// exclude gets "Access denied" (403), and the log has an INFO line with
// "denied", the user and the IdP (docs/troubleshooting.md: searching for
// `denied` finds every denial); repeats within a minute go to DEBUG.
func TestAccessDenialLogged(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tallow group sales\n\t}\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	b := newBrowser(t)
	resp := b.signIn(w.gw.base+"/app", "ada", "ada-pw")
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("ada: %s %.300s", resp.Status, body)
	}
	for range 5 {
		resp := b.get(w.gw.base + "/app")
		readBody(t, resp)
	}
	var info []opLine
	for _, l := range opLines(w.gw.logs(), "access denied") {
		if l.Level == "info" {
			info = append(info, l)
		}
	}
	if len(info) != 1 || info[0].IdP != "test" || info[0].UserID == "" {
		t.Errorf("INFO 'access denied' lines: %+v, want one with the IdP and user ID", info)
	}
}

// TestCrossSiteLogoutLogged: the "Sign-out refused" page shows reference
// cross_site_logout, and the log says so with the Origin (cut short: any
// page can send one).
func TestCrossSiteLogoutLogged(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	origin := "https://evil.example/" + strings.Repeat("a", 5000)
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, w.gw.base+"/.sso/logout", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Accept", "text/html")
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "cross_site_logout") {
			t.Fatalf("%s %.300s", resp.Status, body)
		}
	}
	lines := opLines(w.gw.logs(), "sign-out refused")
	var warn []opLine
	for _, l := range lines {
		if l.Level == "warn" {
			warn = append(warn, l)
		}
	}
	if len(warn) != 1 || warn[0].Reason != "cross_site_logout" || !strings.HasPrefix(warn[0].Origin, "https://evil.example/") || len(warn[0].Origin) > 200 {
		t.Errorf("WARN 'sign-out refused' lines: %.400v (of %d), want one with reason cross_site_logout and the Origin cut short", warn, len(lines))
	}
}

// TestSignInAndOutLogged: a sign-in (login.succeeded) and a sign-out
// (session.logged_out) are audited, and audit events are log lines too
// (docs/security.md): INFO lines with the IdP and user ID, never the email.
func TestSignInAndOutLogged(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw")) // a known user, unchanged
	req, _ := http.NewRequest(http.MethodPost, w.gw.base+"/.sso/logout", nil)
	req.Header.Set("Origin", w.gw.base)
	resp, err := b.noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	log := w.gw.logs()
	in, out := opLines(log, "signed in"), opLines(log, "signed out")
	if len(in) != 2 || len(out) != 1 {
		t.Fatalf("%d 'signed in' lines (want 2), %d 'signed out' (want 1)", len(in), len(out))
	}
	for _, l := range append(in, out...) {
		if l.Level != "info" || l.IdP != "test" || l.UserID == "" || l.UserID != in[0].UserID {
			t.Errorf("%+v: want INFO with the IdP and the user ID", l)
		}
	}
	for _, raw := range strings.Split(log, "\n") {
		if strings.Contains(raw, `"msg":"signed `) && strings.Contains(raw, "@") {
			t.Errorf("a sign-in or sign-out line holds an email: %s", raw)
		}
	}
}
