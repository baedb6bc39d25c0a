package htmlform

import (
	"net/url"
	"testing"
)

func TestFirst(t *testing.T) {
	page, _ := url.Parse("http://127.0.0.1:9000/idp/sso?x=1")
	tests := []struct {
		name, body, action string
		fields             url.Values
		ok                 bool
	}{
		{"relative action, escaped values", `<html><form method="post" action="/acs?a=1&amp;b=2">
			<input type="hidden" name="SAMLResponse" value="PHNhbWw&#43;">
			<input type="hidden" name="RelayState" value="a&amp;b"><input type="submit" value="Go"></form>`,
			"http://127.0.0.1:9000/acs?a=1&b=2", url.Values{"SAMLResponse": {"PHNhbWw+"}, "RelayState": {"a&b"}}, true},
		{"only the first form", `<form action="https://idp.example/login"><input name="user" value=""></form><form action="/other"><input name="x" value="1"></form>`,
			"https://idp.example/login", url.Values{"user": {""}}, true},
		{"no form", `<p>Signed out</p>`, "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			action, fields, ok := First(page, tt.body)
			if ok != tt.ok || action != tt.action || fields.Encode() != tt.fields.Encode() {
				t.Errorf("First = %q, %v, %v; want %q, %v, %v", action, fields, ok, tt.action, tt.fields, tt.ok)
			}
		})
	}
}

func TestAutoPosts(t *testing.T) {
	for body, want := range map[string]bool{
		`<form><input type="hidden" name="SAMLRequest" value="x"></form>`:  true,
		`<form><input type="hidden" name="SAMLResponse" value="x"></form>`: true,
		`<form id="resume" action="/sso"></form>`:                          true,
		`<form action="/login"><input name="username"></form>`:             false,
	} {
		if got := AutoPosts(body); got != want {
			t.Errorf("AutoPosts(%s) = %v", body, got)
		}
	}
}
