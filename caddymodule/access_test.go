package caddymodule_test

import (
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestAccessRules: an allowed group passes, another group gets a plain 403,
// deny wins over allow, and a reload with other rules flips the result for
// the sessions already signed in.
func TestAccessRules(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.idp.AddUser("bob", "bob-pw", map[string]any{
		"sub": "sub-bob", "given_name": "Bob", "family_name": "Builder",
		"email": "bob@sales.example.org", "email_verified": true, "groups": []string{"sales"},
	})
	site := func(rules string) string {
		return fmt.Sprintf("%s {\n\tsso test {\n%s\t}\n\treverse_proxy %s\n}\n", w.gw.base, rules, w.upstream.hostPort())
	}
	w.sites = site("\t\tallow group eng\n")
	w.start()

	ada, bob := newBrowser(t), newBrowser(t)
	// The reload closes idle connections; start afresh rather than race it.
	reload := func() {
		w.gw.reload(w.caddyfile())
		ada.client.CloseIdleConnections()
		bob.client.CloseIdleConnections()
	}
	if e := upstreamSaw(t, ada.signIn(w.gw.base+"/app", "ada", "ada-pw")); e.header("X-Forwarded-Email") != "ada@example.com" {
		t.Fatalf("ada: upstream saw %v", e.Headers)
	}
	if resp := bob.signIn(w.gw.base+"/app", "bob", "bob-pw"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob: sign-in ended with %s", resp.Status)
	}
	resp := bob.get(w.gw.base + "/app")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Access denied") {
		t.Fatalf("bob: want the 403 page, got %s: %s", resp.Status, body)
	}
	for _, internal := range []string{"eng", "sales", "group", "test", "sub-bob"} {
		if strings.Contains(strings.ToLower(body), internal) {
			t.Errorf("the 403 page names %q:\n%s", internal, body)
		}
	}
	// An API client gets JSON, not the page.
	req, _ := http.NewRequest(http.MethodGet, w.gw.base+"/api", nil)
	req.Header.Set("Accept", "application/json")
	if resp, err := bob.client.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob's API call: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Change the rules and reload: the same sessions now get the opposite answer.
	w.sites = site("\t\tallow group sales\n")
	reload()
	if resp := ada.get(w.gw.base + "/app"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("ada after reload: %s", resp.Status)
	}
	if e := upstreamSaw(t, bob.get(w.gw.base+"/app")); e.header("X-Forwarded-Email") != "bob@sales.example.org" {
		t.Fatalf("bob after reload: upstream saw %v", e.Headers)
	}

	// Domain and user rules; deny wins over allow.
	w.sites = site("\t\tallow domain EXAMPLE.com\n\t\tdeny user BOB@sales.example.org\n")
	reload()
	upstreamSaw(t, ada.get(w.gw.base+"/app"))
	if resp := bob.get(w.gw.base + "/app"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob with domain rule: %s", resp.Status)
	}
	w.sites = site("\t\tallow group eng sales\n\t\tdeny domain sales.example.org\n")
	reload()
	upstreamSaw(t, ada.get(w.gw.base+"/app"))
	if resp := bob.get(w.gw.base + "/app"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob denied by domain: %s", resp.Status)
	}
}

var chooserLink = regexp.MustCompile(`<a href="([^"]+)">([^<]+)</a>`)

// TestIdPChooser: a route with two IdPs shows a chooser on navigation,
// /.sso/login?idp= picks one, and default_idp sends navigations straight
// to that one.
func TestIdPChooser(t *testing.T) {
	w := newTwoIdPWorld(t)
	caddyfile := w.twoIdPCaddyfile
	w.gw.start(caddyfile("sso test other"))

	b := newBrowser(t)
	page := b.get(w.gw.base + "/app/page?x=1")
	body := readBody(t, page)
	links := chooserLink.FindAllStringSubmatch(body, -1)
	if page.StatusCode != http.StatusOK || len(links) != 2 || links[0][2] != "test" || links[1][2] != "other" {
		t.Fatalf("want a chooser listing test and other, got %s: %s", page.Status, body)
	}
	wantHref := "/.sso/login?idp=other&return_to=%2Fapp%2Fpage%3Fx%3D1"
	if got := html.UnescapeString(links[1][1]); got != wantHref {
		t.Fatalf("chooser link = %q, want %q", got, wantHref)
	}
	e := upstreamSaw(t, b.signIn(w.gw.base+html.UnescapeString(links[1][1]), "ada", "ada-pw"))
	if e.header("X-Forwarded-Idp") != "other" || e.Path != "/app/page?x=1" {
		t.Fatalf("signed in via %q at %q", e.header("X-Forwarded-Idp"), e.Path)
	}
	// The 401's login link, without an IdP, shows the chooser too.
	if body := readBody(t, newBrowser(t).get(w.gw.base+"/.sso/login?return_to=/x")); len(chooserLink.FindAllString(body, -1)) != 2 {
		t.Fatalf("/.sso/login without idp: %s", body)
	}
	if r := newBrowser(t).get(w.gw.base + "/.sso/login?idp=nope"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown idp: %s", r.Status)
	}

	// default_idp: navigations go straight to that IdP; the single-IdP
	// behaviour (a redirect) is unchanged.
	w.gw.reload(caddyfile("sso test other {\n\t\tdefault_idp other\n\t}"))
	req, _ := http.NewRequest(http.MethodGet, w.gw.base+"/app", nil)
	req.Header.Set("Accept", "text/html")
	r, err := newBrowser(t).noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if loc := r.Header.Get("Location"); r.StatusCode/100 != 3 || !strings.HasPrefix(loc, w.idp.Issuer) || !strings.Contains(loc, "other%2Fcallback") {
		t.Fatalf("default_idp: %s to %q", r.Status, loc)
	}
}
