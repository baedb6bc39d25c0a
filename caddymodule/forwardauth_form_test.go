package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// formHeaders are what a browser sends with a form a person submits: a
// top-level navigation asking for HTML.
var formHeaders = []string{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode", "navigate",
	"Sec-Fetch-Dest", "document", "Sec-Fetch-Site", "same-origin", "Content-Type", "application/x-www-form-urlencoded"}

// postForm POSTs a form to rawURL without following redirects and
// returns the answer and its body.
func postForm(t *testing.T, b *browser, rawURL string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader("item=42&qty=3"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

// TestForwardAuthFormAfterSessionEnded: a form a person submits after
// their session ended, asked about by a proxy (docs/forward-auth.md). The
// verify endpoint answers as the sso directive does
// (TestFormSubmittedWithoutSession): through Caddy's forward_auth (the
// front the page gives, which hands a refusal to the browser as it is) the
// person sees the sign_in_again page, its sign-in returning to the form's
// page (a Referer on the app's origin, else the URL posted to), and the
// app is not reached; in mode auth_request, whose 401 nginx turns into a
// redirect to Location, Location returns to the form's page. A script's
// POST still gets the JSON 401, in both modes, its login returning to the
// page the script runs in (its Referer on the app's origin), as the sso
// directive's does.
func TestForwardAuthFormAfterSessionEnded(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	ports := otherPorts(t, 2)
	gwPort, nginxPort := ports[0], ports[1]
	front := w.gw.base
	w.gw.start(w.verifyConfig([]int{gwPort, nginxPort}, caddyFrontConfig(t, front, gwPort, newFrontUpstream(t))+fmt.Sprintf(`
http://:%d {
	bind 127.0.0.1
	sso test {
		mode forward_auth
		base_url %s
	}
}

http://:%d {
	bind 127.0.0.1
	sso test {
		mode auth_request
		base_url %s
	}
}
`, gwPort, front, nginxPort, front)))
	b := newBrowser(t)
	login := func(back string) string { return front + "/.sso/login?return_to=" + url.QueryEscape(back) }
	referers := map[string]string{
		front + "/orders/new?draft=1":    "/orders/new?draft=1",
		"https://elsewhere.example/page": "/orders",
	}

	t.Run("forward_auth", func(t *testing.T) {
		for referer, back := range referers {
			resp, body := postForm(t, b, front+"/orders", append(formHeaders, "Origin", front, "Referer", referer)...)
			href := strings.ToLower(`href="` + login(back) + `"`)
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
				!strings.Contains(body, "<h1>Sign in again</h1>") || !strings.Contains(strings.ToLower(body), href) {
				t.Errorf("form from %s: %s %q, want the sign_in_again page (401) with %s:\n%s",
					referer, resp.Status, resp.Header.Get("Content-Type"), href, body)
			}
			if strings.Contains(body, `"path"`) {
				t.Errorf("form from %s reached the app: %s", referer, body)
			}
		}
		resp, body := postForm(t, b, front+"/orders", "Accept", "*/*", "Sec-Fetch-Mode", "cors", "Referer", front+"/orders/new")
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			!strings.Contains(body, `"login":"`+login("/orders/new")+`"`) {
			t.Errorf("a script's POST: %s %q %s, want the JSON 401 returning to /orders/new", resp.Status, resp.Header.Get("Content-Type"), body)
		}
	})

	// nginx's subrequest: a GET with the browser's headers, the original
	// method and URI in X-Forwarded-*.
	t.Run("auth_request", func(t *testing.T) {
		verify := fmt.Sprintf("http://127.0.0.1:%d/verify", nginxPort)
		for referer, back := range referers {
			resp := subrequest(t, b, verify, "/orders", append(formHeaders, "X-Forwarded-Method", "POST", "Referer", referer)...)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != login(back) {
				t.Errorf("form from %s: %s, Location %q, want 401 and %q", referer, resp.Status, resp.Header.Get("Location"), login(back))
			}
		}
		resp := subrequest(t, b, verify, "/orders", "X-Forwarded-Method", "POST", "Accept", "application/json",
			"Sec-Fetch-Mode", "cors", "Referer", front+"/orders/new")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != login("/orders/new") ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("a script's POST: %s %q, Location %q, want the JSON 401 returning to /orders/new",
				resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Location"))
		}
	})
}
