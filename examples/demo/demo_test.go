package main

import (
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	hidden = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	action = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
)

// signIn opens the demo app as a browser would and fills in the login form.
func signIn(t *testing.T, appURL, user string) (*http.Client, int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodGet, appURL+"/", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := action.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no login form: %s", body)
	}
	form := url.Values{"username": {user}, "password": {user}}
	for _, h := range hidden.FindAllSubmatch(body, -1) {
		form.Set(html.UnescapeString(string(h[1])), html.UnescapeString(string(h[2])))
	}
	resp, err = c.PostForm(html.UnescapeString(string(m[1])), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	return c, resp.StatusCode, string(body)
}

// TestDemo runs the demo as a newcomer would meet it: sign in as alice,
// see the headers the app received, and see that she was created by JIT.
func TestDemo(t *testing.T) {
	d, err := start(config{host: "127.0.0.1", appPort: freePort(t), idpPort: freePort(t),
		upstreamPort: freePort(t), dataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.close(); err != nil {
			t.Error(err)
		}
	})

	c, status, page := signIn(t, d.appURL, "alice")
	if status != http.StatusOK || !strings.Contains(page, `<span id="name">Alice</span>`) {
		t.Fatalf("after sign-in: %d\n%s", status, page)
	}
	for _, want := range []string{"X-Forwarded-Email", "alice@example.com", "X-Forwarded-Groups", "admins,demo-users,engineering"} {
		if !strings.Contains(page, want) {
			t.Errorf("app page lacks %q", want)
		}
	}

	resp, err := c.Get(d.appURL + "/.sso/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var who struct{ Email, Source string }
	if err := json.NewDecoder(resp.Body).Decode(&who); err != nil {
		t.Fatal(err)
	}
	if who.Email != "alice@example.com" || who.Source != "jit" {
		t.Errorf("whoami = %+v, want alice created by jit", who)
	}

	// carol has no email at the IdP: the page explains what is missing.
	_, status, page = signIn(t, d.appURL, "carol")
	if status != http.StatusForbidden || !strings.Contains(page, "<code>email</code>") {
		t.Errorf("carol: %d\n%s", status, page)
	}
}
