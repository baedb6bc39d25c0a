package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// logLine is one line of Caddy's JSON log.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	IdP   string `json:"idp"`
}

// waitForLog waits until Caddy has logged a line whose message contains
// snippet, and returns it.
func waitForLog(t *testing.T, g *gateway, snippet string) logLine {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, raw := range strings.Split(g.logs(), "\n") {
			var l logLine
			if json.Unmarshal([]byte(raw), &l) == nil && strings.Contains(l.Msg, snippet) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Caddy never logged %q:\n%s", snippet, g.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantMisconfiguredPage: a sign-in at base fails with the page that sends
// the person to an administrator, reference idp_misconfigured.
func wantMisconfiguredPage(t *testing.T, base string) {
	t.Helper()
	resp := newBrowser(t).get(base + "/app")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "<h1>Sign-in is not set up correctly</h1>") ||
		!strings.Contains(body, "<code>idp_misconfigured</code>") || !strings.Contains(body, "administrator") ||
		strings.Contains(body, "Try again") || strings.Contains(body, "could not be reached") {
		t.Errorf("sign-in with a misconfigured IdP: %d\n%s", resp.StatusCode, body)
	}
}

// TestMisconfiguredIdPs: an IdP whose discovery document or metadata
// contradicts the configuration is named at start, in a WARN line with
// the fix, and sign-ins fail with idp_misconfigured, not "could not be
// reached".
func TestMisconfiguredIdPs(t *testing.T) {
	t.Run("issuer with a trailing slash too many", func(t *testing.T) {
		w := newOIDCWorld(t, "")
		w.gw.start(w.gw.caddyfile(strings.Replace(caddyIdP(w), w.idp.Issuer, w.idp.Issuer+"/", 1), w.sites))
		l := waitForLog(t, w.gw, "issuer mismatch")
		if l.Level != "warn" || l.IdP != "test" || !strings.Contains(l.Msg, "set issuer "+w.idp.Issuer+" in the idp block") {
			t.Errorf("log line %+v does not say the fix", l)
		}
		wantMisconfiguredPage(t, w.gw.base)
	})
	t.Run("no PKCE S256", func(t *testing.T) {
		w := newOIDCWorld(t, "")
		w.idp.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) { d["code_challenge_methods_supported"] = []string{"plain"} }})
		w.start()
		l := waitForLog(t, w.gw, "PKCE S256 not supported")
		if l.Level != "warn" || !strings.Contains(l.Msg, "enable PKCE with S256 for this application at the IdP") {
			t.Errorf("log line %+v does not say the fix", l)
		}
		wantMisconfiguredPage(t, w.gw.base)
	})
	t.Run("expired SAML metadata", func(t *testing.T) {
		w := newSAMLWorld(t, "")
		w.idp.SetMetadataValidity(-time.Hour)
		w.gw.start(w.caddyfile())
		l := waitForLog(t, w.gw, "metadata expired at")
		if l.Level != "warn" || !strings.Contains(l.Msg, "have its administrator renew it") {
			t.Errorf("log line %+v does not say the fix", l)
		}
		wantMisconfiguredPage(t, w.gw.base)
	})
	t.Run("a sound IdP", func(t *testing.T) {
		w := newOIDCWorld(t, "").start()
		waitForLog(t, w.gw, "identity provider checked")
		for _, raw := range strings.Split(w.gw.logs(), "\n") {
			// The harness writes its client secret into the config, which
			// TestWrittenSecretWarns covers; that warning is not the IdP's.
			if strings.Contains(raw, `"level":"warn"`) && strings.Contains(raw, `"logger":"sso`) && !strings.Contains(raw, "written into the config") {
				t.Errorf("a warning about a sound IdP: %s", raw)
			}
		}
	})
}

// TestStartDoesNotWaitForIdPs: the check at start runs in the
// background. With an IdP that never answers, Caddy starts and serves,
// and stops without waiting for the IdP either.
func TestStartDoesNotWaitForIdPs(t *testing.T) {
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hanging.Close() })
	g := newGateway(t)
	started := make(chan struct{})
	go func() {
		defer close(started)
		g.start(g.caddyfile(fmt.Sprintf("\t\tidp slow oidc {\n\t\t\tissuer %s\n\t\t\tclient_id app\n\t\t}\n", hanging.URL),
			fmt.Sprintf("%s {\n\tsso slow\n\trespond app\n}\n", g.base)))
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("Caddy's start waits for the IdP")
	}
	resp, err := http.Get(g.base + "/.sso/whoami")
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("whoami while the IdP hangs: %s", resp.Status)
	}
	if strings.Contains(g.logs(), "identity provider checked") {
		t.Fatal("the check finished although the IdP never answered")
	}
	stopped := make(chan struct{})
	go func() { defer close(stopped); g.stop() }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Caddy's stop waits for the IdP check")
	}
}

// TestWrittenSecretWarns: a client secret written into the config, where
// the admin API and autosaved configs show it, is warned about, naming the
// IdP and never the secret; one written as a placeholder is not.
func TestWrittenSecretWarns(t *testing.T) {
	const warning = "the client secret is written into the config"
	w := newOIDCWorld(t, "").start()
	l := waitForLog(t, w.gw, warning)
	if l.Level != "warn" || l.IdP != "test" || !strings.Contains(l.Msg, "use a placeholder such as {env.") {
		t.Errorf("log line %+v", l)
	}
	if strings.Contains(w.gw.logs(), caddytest.ClientSecret) {
		t.Error("the log holds the client secret")
	}

	t.Setenv("CADDY_SSO_TEST_CLIENT_SECRET", caddytest.ClientSecret)
	w = newOIDCWorld(t, "\t\t\tjit\n")
	w.gw.start(strings.Replace(w.caddyfile(), "client_secret "+caddytest.ClientSecret, "client_secret {env.CADDY_SSO_TEST_CLIENT_SECRET}", 1))
	waitForLog(t, w.gw, "identity provider checked")
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw")) // the placeholder's secret signs in
	if strings.Contains(w.gw.logs(), warning) {
		t.Error("a warning about a secret given as a placeholder")
	}
}
