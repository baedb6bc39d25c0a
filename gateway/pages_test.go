package gateway_test

import (
	"errors"
	"html"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/gateway"
)

func render(t *testing.T, p *gateway.Pages, pg gateway.Page) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := p.Write(rec, pg); err != nil {
		t.Fatalf("page %s: %v", pg.Name, err)
	}
	return rec
}

// TestDefaultPages renders every page with the embedded template: its
// status, its heading, its reference code, and the headers that keep it
// from being framed, cached or loading anything foreign.
func TestDefaultPages(t *testing.T) {
	for _, name := range gateway.PageNames {
		t.Run(name, func(t *testing.T) {
			pg := gateway.SamplePage(name)
			if pg.Name != name || pg.Title == "" || pg.Message == "" || pg.Status == 0 {
				t.Fatalf("sample page %s is incomplete: %+v", name, pg)
			}
			rec := render(t, nil, pg)
			body := rec.Body.String()
			if rec.Code != pg.Status {
				t.Errorf("status %d, want %d", rec.Code, pg.Status)
			}
			if !strings.Contains(body, "<h1>"+html.EscapeString(pg.Title)+"</h1>") {
				t.Errorf("no heading %q:\n%s", pg.Title, body)
			}
			if pg.Code != "" && !strings.Contains(body, "Reference: <code>"+pg.Code+"</code>") {
				t.Errorf("no reference %q:\n%s", pg.Code, body)
			}
			csp := rec.Header().Get("Content-Security-Policy")
			frameAncestors := "frame-ancestors 'none'"
			if pg.Framed { // cross_site_frame: it answers a frame
				frameAncestors = "frame-ancestors *"
			}
			for _, want := range []string{"default-src 'none'", frameAncestors, "form-action 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %s", csp, want)
				}
			}
			if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers: %v", rec.Header())
			}
		})
	}
}

// TestSamplePagesMatchTheirStatus: each page's status is what
// docs/pages.md promises, and the error pages carry a reference code.
func TestSamplePagesMatchTheirStatus(t *testing.T) {
	want := map[string]int{
		gateway.PageSignInFailed: 400, gateway.PageDenied: 403, gateway.PageForbidden: 403,
		gateway.PageMissingAttributes: 403, gateway.PageChooser: 200, gateway.PageSignInAgain: 401, gateway.PageUnknownIdP: 404,
		gateway.PageLogout: 200, gateway.PageSignedOut: 200, gateway.PageLogoutRefused: 403,
		gateway.PageLogoutIncomplete: 400, gateway.PageUnavailable: 502, gateway.PageMisconfigured: 500,
		gateway.PageBaseURLRequired: 500, gateway.PageStoreUnavailable: 503, gateway.PageCrossSiteFrame: 401,
	}
	if len(want) != len(gateway.PageNames) {
		t.Fatalf("%d pages, the test knows %d", len(gateway.PageNames), len(want))
	}
	for _, name := range gateway.PageNames {
		pg := gateway.SamplePage(name)
		if pg.Status != want[name] {
			t.Errorf("%s: status %d, want %d", name, pg.Status, want[name])
		}
		if pg.Status >= 400 && name != gateway.PageForbidden && name != gateway.PageUnknownIdP && name != gateway.PageSignInAgain &&
			name != gateway.PageCrossSiteFrame && pg.Code == "" {
			t.Errorf("%s: an error page without a reference code", name)
		}
	}
	if m := gateway.SamplePage(gateway.PageMisconfigured); strings.Contains(m.Message, "Try again") || !strings.Contains(m.Message, "administrator") {
		t.Errorf("the misconfigured page must send the person to an administrator, not to try again: %q", m.Message)
	}
}

func writePages(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestOverriddenPages: a page with a template of its own uses it, the
// others page.html, and templates share {{define}} blocks; values are
// escaped as in the default.
func TestOverriddenPages(t *testing.T) {
	dir := writePages(t, map[string]string{
		"layout.html":        `{{define "top"}}<header>ACME</header>{{end}}`,
		"signin_failed.html": `{{template "top"}}<h1>Anmeldung fehlgeschlagen</h1><p>Referenz: {{.Code}} ({{.IdP}})</p>`,
		"page.html":          `{{template "top"}}<h1>{{.Title}}</h1><p>{{.Message}}</p><i>{{.Name}} {{.Status}}</i>{{range .Links}}<a href="{{.Href}}">{{.Text}}</a>{{end}}`,
	})
	p, err := gateway.LoadPages(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Overrides(); !slices.Equal(got, gateway.PageNames) {
		t.Errorf("overrides %v, want every page (page.html)", got)
	}
	rec := render(t, p, gateway.SamplePage(gateway.PageSignInFailed))
	if body := rec.Body.String(); rec.Code != 400 || body != `<header>ACME</header><h1>Anmeldung fehlgeschlagen</h1><p>Referenz: id_token_nonce (sample)</p>` {
		t.Errorf("signin_failed: %d %q", rec.Code, body)
	}
	for _, name := range []string{gateway.PageDenied, gateway.PageChooser, gateway.PageMisconfigured} {
		pg := gateway.SamplePage(name)
		body := render(t, p, pg).Body.String()
		if !strings.HasPrefix(body, "<header>ACME</header><h1>"+html.EscapeString(pg.Title)+"</h1>") || !strings.Contains(body, "<i>"+name+" "+strconv.Itoa(pg.Status)+"</i>") {
			t.Errorf("%s through page.html: %q", name, body)
		}
	}
	pg := gateway.SamplePage(gateway.PageDenied)
	pg.Message = `<script>alert(1)</script>`
	if body := render(t, p, pg).Body.String(); strings.Contains(body, "<script>") {
		t.Errorf("an override did not escape the message: %q", body)
	}
}

// TestOnePageOverridden: the pages without a template keep the default.
func TestOnePageOverridden(t *testing.T) {
	p, err := gateway.LoadPages(writePages(t, map[string]string{"denied.html": `<h1>Kein Zugang</h1>{{.Code}}`}), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Overrides(); !slices.Equal(got, []string{gateway.PageDenied}) {
		t.Errorf("overrides %v", got)
	}
	if body := render(t, p, gateway.SamplePage(gateway.PageDenied)).Body.String(); body != "<h1>Kein Zugang</h1>jit_disabled" {
		t.Errorf("denied: %q", body)
	}
	if body := render(t, p, gateway.SamplePage(gateway.PageSignedOut)).Body.String(); !strings.Contains(body, "<h1>Signed out</h1>") || !strings.Contains(body, "<style>") {
		t.Errorf("signed_out should be the default: %q", body)
	}
}

// TestBadPageTemplates fail the configuration, naming the problem.
func TestBadPageTemplates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"syntax", map[string]string{"denied.html": `{{if}}`}, "denied.html"},
		{"unknown field", map[string]string{"chooser.html": `{{.Colour}}`}, "page chooser"},
		{"no templates", map[string]string{"logo.svg": `<svg/>`}, "no .html templates"},
		// Branches only some forms of a page take: tried at load too.
		{"unknown field when signed out", map[string]string{"logout_incomplete.html": `{{if .SignedOut}}{{.SigndOut}}{{end}}`}, "page logout_incomplete"},
		{"unknown field when framed", map[string]string{"sign_in_again.html": `{{if .Framed}}{{.Framd}}{{end}}`}, "page sign_in_again"},
		{"unknown field of a sign-out not saved", map[string]string{"store_unavailable.html": `{{if .SignedOut}}{{.SigndOut}}{{end}}`}, "page store_unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gateway.LoadPages(writePages(t, tc.files), zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadPages = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if _, err := gateway.LoadPages(filepath.Join(t.TempDir(), "missing"), zap.NewNop()); err == nil {
		t.Error("a missing directory was accepted")
	}
}

// TestFailingOverrideFallsBack: a template that fails on some data (here,
// a chooser without links) is logged and the default page sent, so a
// person always gets a page.
func TestFailingOverrideFallsBack(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	p, err := gateway.LoadPages(writePages(t, map[string]string{"chooser.html": `<h1>{{(index .Links 0).Text}}</h1>`}), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	pg := gateway.SamplePage(gateway.PageChooser)
	pg.Links = nil
	rec := render(t, p, pg)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<h1>Sign in</h1>") {
		t.Errorf("fallback: %d %q", rec.Code, rec.Body.String())
	}
	if logs.FilterMessageSnippet("operator's page template failed").Len() != 1 {
		t.Errorf("the failure was not logged: %v", logs.All())
	}
}

// TestFailingOverrideSendsOnlyTheDefault: when an operator's template
// fails halfway, the person gets the default page alone, not what the
// template wrote before it failed followed by the default page.
func TestFailingOverrideSendsOnlyTheDefault(t *testing.T) {
	p, err := gateway.LoadPages(writePages(t, map[string]string{
		"chooser.html": `<h1>Anmelden</h1><p>Wählen Sie {{(index .Links 0).Text}}</p>`,
	}), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	pg := gateway.SamplePage(gateway.PageChooser)
	pg.Links = nil
	rec := render(t, p, pg)
	body := rec.Body.String()
	if !strings.HasPrefix(body, "<!doctype html>") || strings.Contains(body, "Anmelden") || strings.Count(body, "<h1>") != 1 {
		t.Errorf("fallback body is not the default page alone:\n%s", body)
	}
}

// TestMissingPagesDir: a pages_dir that does not exist is reported as
// missing (the operator's typo in the path), not as a directory without
// templates.
func TestMissingPagesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgaes")
	_, err := gateway.LoadPages(dir, zap.NewNop())
	if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "no .html templates") || !strings.Contains(err.Error(), "pages_dir") {
		t.Errorf("LoadPages(missing) = %v, want pages_dir: ... does not exist", err)
	}
}

// TestPageContentSecurityPolicy: every page's CSP is the whole policy,
// directive by directive: nothing runs, only same-origin images (and data:
// ones), styles and fonts load, no <base> may move the page's links, and
// the form may post only to this site and the origins of FormTargets,
// lowercased; targets that are not http(s) URLs, or whose host would break
// out of the directive, add nothing.
func TestPageContentSecurityPolicy(t *testing.T) {
	base := map[string]string{
		"default-src":     "'none'",
		"img-src":         "'self' data:",
		"style-src":       "'self' 'unsafe-inline'",
		"font-src":        "'self'",
		"base-uri":        "'none'",
		"frame-ancestors": "'none'",
		"form-action":     "'self'",
	}
	for _, tt := range []struct {
		name    string
		targets []string
		form    string
	}{
		{"no targets", nil, "'self'"},
		{"an IdP", []string{"https://IdP.Example.COM:8443/oidc/logout?x=1"}, "'self' https://idp.example.com:8443"},
		{"two", []string{"https://a.example/x", "http://[::1]:9000/y"}, "'self' https://a.example http://[::1]:9000"},
		{"not http", []string{"javascript:alert(1)", "ftp://files.example/", "/relative"}, "'self'"},
		{"host breaking out", []string{"https://a.example;script-src/", "https://a.example,b/", "https://'unsafe-inline'/"}, "'self'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pg := gateway.SamplePage(gateway.PageLogout)
			pg.FormTargets = tt.targets
			csp := render(t, nil, pg).Header().Get("Content-Security-Policy")
			got := map[string]string{}
			for _, d := range strings.Split(csp, ";") {
				name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
				if _, dup := got[name]; dup {
					t.Errorf("CSP %q repeats %s", csp, name)
				}
				got[name] = value
			}
			want := maps.Clone(base)
			want["form-action"] = tt.form
			if !maps.Equal(got, want) {
				t.Errorf("CSP %q, want %v", csp, want)
			}
		})
	}
}

// TestDefaultLogoutForm: the default sign-out page posts to its action
// with the return_to it was given, so that signing out lands where the
// person asked; and a nil Pages (the defaults only) overrides nothing.
func TestDefaultLogoutForm(t *testing.T) {
	pg := gateway.SamplePage(gateway.PageLogout)
	pg.ReturnTo = "/reports?q=1"
	body := render(t, nil, pg).Body.String()
	for _, want := range []string{`<form method="post" action="` + html.EscapeString(pg.Action) + `">`, `name="return_to" value="/reports?q=1"`, `>` + pg.Button + `</button>`} {
		if !strings.Contains(body, want) {
			t.Errorf("sign-out page lacks %s:\n%s", want, body)
		}
	}
	if got := (*gateway.Pages)(nil).Overrides(); got != nil {
		t.Errorf("nil Pages overrides %v", got)
	}
}
