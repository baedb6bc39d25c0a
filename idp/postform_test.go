package idp_test

import (
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestWritePostForm: the values are escaped into the hidden inputs, and the
// script that submits the form carries the nonce the CSP allows.
func TestWritePostForm(t *testing.T) {
	rec := httptest.NewRecorder()
	idp.WritePostForm(rec, idp.PostForm("https://idp.example/logout?p=x&q=y",
		idp.FormField{Name: "id_token_hint", Value: `a"><script>alert(1)</script>`}, idp.FormField{Name: "client_id", Value: "app"}))
	body, h := rec.Body.String(), rec.Header()
	m := regexp.MustCompile(`script-src 'nonce-([^']+)'`).FindStringSubmatch(h.Get("Content-Security-Policy"))
	if m == nil || strings.Count(body, "<script") != 1 || !strings.Contains(body, `<script nonce="`+m[1]+`">`) {
		t.Errorf("the one script does not carry the CSP's nonce (%q):\n%s", h.Get("Content-Security-Policy"), body)
	}
	for _, want := range []string{
		`<form method="post" action="https://idp.example/logout?p=x&amp;q=y"`,
		`<input type="hidden" name="id_token_hint" value="a&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">`,
		`<input type="hidden" name="client_id" value="app">`,
		`type="submit"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s:\n%s", want, body)
		}
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", h)
	}
}
