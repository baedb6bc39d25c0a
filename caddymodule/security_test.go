package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/store"
)

// runningApp is the sso app Caddy is running now.
func runningApp(t *testing.T) *caddymodule.App {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("sso")
	if err != nil {
		t.Fatal(err)
	}
	return app.(*caddymodule.App)
}

// TestGroupsHeaderUnambiguous: a group whose name holds a comma cannot
// make its members look like members of another group to an app that
// splits X-Forwarded-Groups on commas; decoding each element gives the
// exact names, the {http.auth.user.groups} placeholder is the same value,
// and the identity token keeps the exact list.
func TestGroupsHeaderUnambiguous(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.idp.AddUser("mallory", "mallory-pw", map[string]any{
		"sub": "sub-mallory", "given_name": "Mallory", "family_name": "M", "email": "mallory@example.com",
		"email_verified": true, "groups": []string{"guests,admins", "100%", "ops"},
	})
	w.sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tidentity_jwt\n\t}\n\treverse_proxy %s {\n\t\theader_up X-Placeholder-Groups {http.auth.user.groups}\n\t}\n}\n",
		w.gw.base, w.upstream.hostPort())
	w.start()
	saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "mallory", "mallory-pw"))
	want := []string{"guests,admins", "100%", "ops"}

	got := saw.header("X-Forwarded-Groups")
	for _, el := range strings.Split(got, ",") {
		if strings.TrimSpace(el) == "admins" {
			t.Errorf("X-Forwarded-Groups %q reads as a member of admins", got)
		}
	}
	if decoded := decodeGroups(t, got); !sameSet(decoded, want) {
		t.Errorf("X-Forwarded-Groups %q decodes to %q, want %q", got, decoded, want)
	}
	if p := saw.header("X-Placeholder-Groups"); p != got {
		t.Errorf("{http.auth.user.groups} = %q, header %q", p, got)
	}
	_, claims, err := verifyWithJWKS(t, w.gw.base+"/.sso/jwks.json", saw.header("X-Forwarded-Identity-Jwt"), w.gw.base, w.gw.base)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(claims.Groups, want) {
		t.Errorf("identity token groups %q, want %q", claims.Groups, want)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestSessionCookiesTriedInTurn: a bogus cookie of the gateway's name
// sent before the real one (planted by a sibling site on plain http)
// does not lock the person out; the number tried is bounded.
func TestSessionCookiesTriedInTurn(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	token := b.cookieValue(w.gw.base, "sso_session")
	id := userBySubject(t, "sub-ada").ID
	send := func(cookies string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, w.gw.base+"/page", nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Cookie", cookies)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	saw := upstreamSaw(t, send("sso_session=planted-by-a-sibling; theme=dark; sso_session="+token))
	if saw.header("X-Forwarded-User") != id {
		t.Errorf("signed in as %q, want %q", saw.header("X-Forwarded-User"), id)
	}
	if c := saw.header("Cookie"); c != "theme=dark" {
		t.Errorf("the upstream got cookies %q", c)
	}
	// Past the bound, the real cookie is not reached.
	resp := send(strings.Repeat("sso_session=bogus; ", 4) + "sso_session=" + token)
	readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("five session cookies: %s, want 401", resp.Status)
	}
}

// TestMaxSessionsPerUser: with max_sessions_per_user 2, a third sign-in
// ends the oldest session.
func TestMaxSessionsPerUser(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.gw.start(strings.Replace(w.caddyfile(), "\tsso {\n", "\tsso {\n\t\tsession {\n\t\t\tmax_sessions_per_user 2\n\t\t}\n", 1))
	var browsers []*browser
	for range 3 {
		b := newBrowser(t)
		upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
		browsers = append(browsers, b)
	}
	for i, want := range []int{http.StatusUnauthorized, http.StatusOK, http.StatusOK} {
		resp, body := browsers[i].noFollow(w.gw.base+"/.sso/whoami", true)
		if resp.StatusCode != want {
			t.Errorf("session %d: whoami %s, want %d: %s", i+1, resp.Status, want, body)
		}
	}
	if got := auditReasons(t, "session.revoked"); !slices.Contains(got, "session_limit") {
		t.Errorf("the ended session is not audited: %v", got)
	}
}

// TestHostDerivedURLs: the redirect URI, the SAML endpoints and the
// identity token's iss and aud come from a host Caddy matched or from
// base_url, never from a Host header nothing checked.
func TestHostDerivedURLs(t *testing.T) {
	nav := func(t *testing.T, target, host string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Accept", "text/html")
		if host != "" {
			req.Host = host
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := newBrowser(t).noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, readBody(t, resp)
	}
	refused := func(t *testing.T, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "base_url_required") ||
			resp.Header.Get("Location") != "" || len(resp.Cookies()) > 0 {
			t.Errorf("want the base_url_required page, got %s Location %q cookies %v: %s",
				resp.Status, resp.Header.Get("Location"), resp.Cookies(), body)
		}
	}
	redirectURI := func(t *testing.T, resp *http.Response) string {
		t.Helper()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("want a redirect to the IdP, got %s to %q", resp.Status, resp.Header.Get("Location"))
		}
		return loc.Query().Get("redirect_uri")
	}

	t.Run("no host matcher, no base_url", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n")
		w.sites = fmt.Sprintf(":%d {\n\tsso test {\n\t\tidentity_jwt\n\t}\n\treverse_proxy %s\n}\n", w.gw.port, w.upstream.hostPort())
		w.start()
		for _, host := range []string{"evil.example", ""} {
			resp, body := nav(t, w.gw.base+"/page", host)
			refused(t, resp, body)
		}
		resp, body := nav(t, w.gw.base+"/.sso/oidc/test/callback?code=x&state=y", "evil.example")
		refused(t, resp, body)
		if n := w.idp.Requests(oidctest.PathToken); n != 0 {
			t.Errorf("the IdP's token endpoint got %d requests", n)
		}
		if logs := w.gw.logs(); !strings.Contains(logs, "set base_url") {
			t.Errorf("the log does not say what to configure:\n%s", logs)
		}
		// A session made elsewhere gets no identity token signed for the
		// Host it sends here.
		u := &store.User{Email: "ada@example.com", Active: true, Source: store.SourceAdmin}
		if err := runningStore(t).Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
			t.Fatal(err)
		}
		sessions := runningApp(t).Sessions()
		token, _, err := sessions.Create(context.Background(), u, "test", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		// An API call: without the session it would get 401, not this page.
		resp, body = nav(t, w.gw.base+"/page", "", "Cookie", "sso_session="+token, "Accept", "application/json")
		refused(t, resp, body)
	})

	t.Run("SAML, no host matcher, no base_url", func(t *testing.T) {
		w := newSAMLWorld(t, "\t\t\tjit\n")
		w.sites = fmt.Sprintf(":%d {\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.port, w.upstream.hostPort())
		w.gw.start(w.caddyfile())
		for _, path := range []string{"/.sso/saml/test/metadata", "/page"} {
			resp, body := nav(t, w.gw.base+path, "evil.example")
			refused(t, resp, body)
		}
	})

	t.Run("base_url", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n")
		w.sites = fmt.Sprintf(":%d {\n\tsso test {\n\t\tbase_url %s\n\t\tidentity_jwt\n\t}\n\treverse_proxy %s\n}\n", w.gw.port, w.gw.base, w.upstream.hostPort())
		w.start()
		resp, _ := nav(t, w.gw.base+"/page", "evil.example:8443")
		if got := redirectURI(t, resp); got != w.gw.base+"/.sso/oidc/test/callback" {
			t.Errorf("redirect_uri %q with Host evil.example", got)
		}
		b := newBrowser(t)
		upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
		req, _ := http.NewRequest(http.MethodGet, w.gw.base+"/page", nil)
		req.Host = "evil.example"
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Cookie", "sso_session="+b.cookieValue(w.gw.base, "sso_session"))
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		saw := upstreamSaw(t, r)
		if _, _, err := verifyWithJWKS(t, w.gw.base+"/.sso/jwks.json", saw.header("X-Forwarded-Identity-Jwt"), w.gw.base, w.gw.base); err != nil {
			t.Errorf("identity token requested with Host evil.example: %v", err)
		}
	})

	t.Run("trusted proxy's X-Forwarded-Host must pass the host matcher", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n")
		w.gw.start(strings.Replace(w.caddyfile(), "\tsso {\n", "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n\tsso {\n", 1))
		resp, body := nav(t, w.gw.base+"/page", "", "X-Forwarded-Host", "evil.example")
		refused(t, resp, body)
		resp, _ = nav(t, w.gw.base+"/page", "", "X-Forwarded-Host", "127.0.0.1", "X-Forwarded-Proto", "https")
		if got := redirectURI(t, resp); got != "https://127.0.0.1/.sso/oidc/test/callback" {
			t.Errorf("redirect_uri %q behind the trusted proxy", got)
		}
		// A proxy that forwards the default port ($host:$server_port in
		// nginx): the URLs are the ones browsers write, without it.
		resp, _ = nav(t, w.gw.base+"/page", "", "X-Forwarded-Host", "127.0.0.1:443", "X-Forwarded-Proto", "https")
		if got := redirectURI(t, resp); got != "https://127.0.0.1/.sso/oidc/test/callback" {
			t.Errorf("redirect_uri %q behind a proxy forwarding :443", got)
		}
		// and the site's own sign-out form (Origin: https://127.0.0.1) is
		// not refused as cross-site.
		req, _ := http.NewRequest(http.MethodPost, w.gw.base+"/.sso/logout", strings.NewReader("return_to=%2F"))
		for k, v := range map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://127.0.0.1",
			"Sec-Fetch-Site": "same-origin", "X-Forwarded-Host": "127.0.0.1:443", "X-Forwarded-Proto": "https"} {
			req.Header.Set(k, v)
		}
		resp, err := newBrowser(t).noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := readBody(t, resp); strings.Contains(body, "cross_site_logout") {
			t.Errorf("the site's own sign-out refused behind a proxy forwarding :443: %s %.200s", resp.Status, body)
		}
	})
}

// TestTemplatesDoNotRunRequestText: a site whose templates run over the
// gateway's pages (templates before handle, in Caddy's order, or in one
// route) cannot be made to execute template actions an anonymous request
// put into a return URL the sign-out page repeats.
func TestTemplatesDoNotRunRequestText(t *testing.T) {
	t.Setenv("CADDY_SSO_TEST_TEMPLATE_SECRET", "s3cr3t-from-env")
	for name, site := range map[string]string{
		"site":  "\ttemplates\n\thandle {\n\t\tsso test\n\t\treverse_proxy %s\n\t}\n",
		"route": "\troute {\n\t\ttemplates\n\t\tsso test\n\t\treverse_proxy %s\n\t}\n",
	} {
		t.Run(name, func(t *testing.T) {
			w := newOIDCWorld(t, "\t\t\tjit\n")
			w.sites = fmt.Sprintf("%s {\n"+site+"}\n", w.gw.base, w.upstream.hostPort())
			w.start()
			resp := newBrowser(t).get(w.gw.base + "/.sso/logout?return_to=" + url.QueryEscape("/x{{env `CADDY_SSO_TEST_TEMPLATE_SECRET`}}y"))
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="return_to" value="/x%7B%7Benv`) {
				t.Fatalf("sign-out page %s:\n%s", resp.Status, body)
			}
			if strings.Contains(body, "s3cr3t-from-env") {
				t.Errorf("the page ran the request's template action: %s", body)
			}
		})
	}
}

// decodeGroups splits a groups header and percent-decodes each element,
// as docs/security.md ("Groups") tells apps to.
func decodeGroups(t *testing.T, header string) []string {
	t.Helper()
	var decoded []string
	for _, el := range strings.Split(header, ",") {
		v, err := url.PathUnescape(el)
		if err != nil {
			t.Fatalf("element %q of %q: %v", el, header, err)
		}
		decoded = append(decoded, v)
	}
	return decoded
}
