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
	formRE  = regexp.MustCompile(`(?s)<form[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>`)
	inputRE = regexp.MustCompile(`<input[^>]*>`)
	attrRE  = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// form returns the absolute action and the fields of the first form in body.
func form(t *testing.T, base *url.URL, body string) (string, url.Values) {
	t.Helper()
	m := formRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form at %s:\n%s", base, body)
	}
	action, err := base.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	fields := url.Values{}
	for _, in := range inputRE.FindAllString(m[2], -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(in, -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		if attrs["name"] != "" {
			fields.Set(attrs["name"], attrs["value"])
		}
	}
	return action.String(), fields
}

// signIn opens appURL as a browser would, fills in the IdP's login form and
// submits the forms a browser's JavaScript would submit by itself (SAML's
// POST binding), until it lands on a page that is neither.
func signIn(t *testing.T, appURL, user string) (*http.Client, int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodGet, appURL+"/", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	for range 6 {
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(body)
		login := strings.Contains(page, `id="username"`)
		if !login && !strings.Contains(page, `name="SAMLResponse"`) && !strings.Contains(page, `name="SAMLRequest"`) {
			return c, resp.StatusCode, page
		}
		action, fields := form(t, resp.Request.URL, page)
		if login {
			fields.Set("username", user)
			fields.Set("password", user)
		}
		resp, err = c.PostForm(action, fields)
	}
	t.Fatal("too many forms")
	return nil, 0, ""
}

// TestDemo runs the demo as a newcomer would meet it: sign in as alice,
// see the headers the app received, and see that she was created by JIT.
func TestDemo(t *testing.T) {
	d, err := start(config{host: "127.0.0.1", appPort: freePort(t), idpPort: freePort(t),
		samlPort: freePort(t), samlIdPPort: freePort(t), upstreamPort: freePort(t), dataDir: t.TempDir()})
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

	// The same app behind SAML: bob signs in through the local SAML IdP.
	_, status, page = signIn(t, d.samlAppURL, "bob")
	if status != http.StatusOK || !strings.Contains(page, `<span id="name">Bob</span>`) || !strings.Contains(page, "X-Forwarded-Idp") {
		t.Errorf("SAML sign-in: %d\n%s", status, page)
	}
}
