package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refusedCallback is a callback without this browser's flow cookie: the
// sign-in-failed page, reference flow_missing.
func refusedCallback(t *testing.T, b *browser, base string) (int, string, http.Header) {
	t.Helper()
	resp := b.get(base + "/.sso/oidc/test/callback?state=forged&code=forged")
	return resp.StatusCode, readBody(t, resp), resp.Header
}

// TestPagesThroughHandleErrors: with handle_errors on a site, the pages
// are raised as Caddy errors with the {http.auth.sso.*} placeholders, so
// the operator's error route answers; a handle_errors that does not take
// the page's status, and a site without one, keep the default page.
func TestPagesThroughHandleErrors(t *testing.T) {
	w := newOIDCWorld(t, "")
	ports := otherPorts(t, 3)
	narrow, plain, byPage := ports[0], ports[1], ports[2]
	site := func(port int, errors string) string {
		return fmt.Sprintf("http://127.0.0.1:%d {\n\tbind 127.0.0.1\n\tsso test\n\trespond app\n%s}\n", port, errors)
	}
	w.gw.start(w.gw.caddyfile(caddyIdP(w), site(w.gw.port, `	handle_errors {
		respond "page={http.auth.sso.page} reason={http.auth.sso.reason} status={http.auth.sso.status} idp={http.auth.sso.idp} err={err.status_code} msg={err.message}" {err.status_code}
	}
`)+site(narrow, "\thandle_errors 404 {\n\t\trespond \"not found\" 404\n\t}\n")+site(plain, "")+
		site(byPage, "\thandle_errors {\n\t\t@sso expression `{http.auth.sso.page} == \"signin_failed\"`\n\t\thandle @sso {\n\t\t\trespond \"ours: {http.auth.sso.reason}\" 400\n\t\t}\n\t}\n")))
	b := newBrowser(t)

	status, body, _ := refusedCallback(t, b, w.gw.base)
	want := "page=signin_failed reason=flow_missing status=400 idp=test err=400 msg=sso: Sign-in failed (reference flow_missing)"
	if status != http.StatusBadRequest || body != want {
		t.Errorf("handle_errors: %d %q, want 400 %q", status, body, want)
	}
	// An error route that matches on the page takes it.
	if status, body, _ := refusedCallback(t, b, fmt.Sprintf("http://127.0.0.1:%d", byPage)); status != 400 || body != "ours: flow_missing" {
		t.Errorf("handle_errors matching the page: %d %q", status, body)
	}
	for _, port := range []int{narrow, plain} {
		status, body, hd := refusedCallback(t, b, fmt.Sprintf("http://127.0.0.1:%d", port))
		if status != http.StatusBadRequest || !strings.Contains(body, "<h1>Sign-in failed</h1>") ||
			!strings.Contains(body, "flow_missing") || hd.Get("Content-Security-Policy") == "" {
			t.Errorf("port %d: %d %q, want the default page", port, status, body)
		}
	}
	// The pages that report nothing are not errors: the chooser, the
	// sign-out confirmation.
	resp := b.get(w.gw.base + "/.sso/logout")
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "<h1>Sign out</h1>") {
		t.Errorf("logout confirmation: %d %q", resp.StatusCode, body)
	}
}

// caddyIdP is the OIDC world's idp block, for configs the test writes.
func caddyIdP(w *oidcWorld) string {
	return fmt.Sprintf("\t\tidp test oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n%s\t\t}\n",
		w.idp.Issuer, clientID, clientSecret, w.idpBlock)
}

// TestPagesDir: the operator's templates (the global pages_dir) render
// the pages of a real Caddy; pages without a template keep the default;
// a template that does not load fails the configuration.
func TestPagesDir(t *testing.T) {
	w := newOIDCWorld(t, "")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signin_failed.html"),
		[]byte(`<!doctype html><title>ACME</title><h1>Anmeldung fehlgeschlagen</h1><p>Referenz: {{.Code}}</p>`), 0o600); err != nil {
		t.Fatal(err)
	}
	w.gw.start(w.gw.caddyfile("\t\tpages_dir "+dir+"\n"+caddyIdP(w), w.sites))
	b := newBrowser(t)
	status, body, hd := refusedCallback(t, b, w.gw.base)
	if status != http.StatusBadRequest || !strings.Contains(body, "<h1>Anmeldung fehlgeschlagen</h1><p>Referenz: flow_missing</p>") {
		t.Errorf("overridden page: %d %q", status, body)
	}
	if !strings.Contains(hd.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("an overridden page lost its CSP: %v", hd)
	}
	resp := b.get(w.gw.base + "/.sso/logout")
	if body := readBody(t, resp); !strings.Contains(body, "<h1>Sign out</h1>") {
		t.Errorf("a page without a template: %q", body)
	}

	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "denied.html"), []byte(`{{.NoSuchField}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	status, msg := w.gw.tryReload(w.gw.caddyfile("\t\tpages_dir "+broken+"\n"+caddyIdP(w), w.sites))
	if status == http.StatusOK || !strings.Contains(msg, "page denied") {
		t.Errorf("a broken template was accepted: %d %s", status, msg)
	}
}
