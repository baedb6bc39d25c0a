package caddymodule_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// trailerEcho is an upstream that reads the whole body and answers with
// the headers and the trailers it received.
type trailerEcho struct {
	Headers  map[string][]string `json:"headers"`
	Trailers map[string][]string `json:"trailers"`
	Body     string              `json:"body"`
}

func newTrailerUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(trailerEcho{Headers: r.Header, Trailers: r.Trailer, Body: string(body)})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// rawRequest writes one HTTP/1.1 request to the gateway exactly as given
// (headers, chunked body and trailers in any spelling) and reads the
// answer.
func rawRequest(t *testing.T, g *gateway, request string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, strings.ReplaceAll(request, "\n", "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func header(h map[string][]string, name string) []string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// TestIdentityHeadersSurviveHopByHop: through a real reverse_proxy, a
// client can neither remove the identity headers with Connection tokens
// nor add identity trailers (announced or not), in any spelling; other
// Connection tokens and trailers pass; the identity headers of other
// gateways never reach the upstream.
func TestIdentityHeadersSurviveHopByHop(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	up := newTrailerUpstream(t)
	w.sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tidentity_jwt\n\t}\n\treverse_proxy %s\n}\n", w.gw.base, up)
	w.start()
	b := newBrowser(t)
	if resp := b.signIn(w.gw.base+"/", "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %s", resp.Status)
	}
	id := userBySubject(t, "sub-ada").ID
	token := b.cookieValue(w.gw.base, "sso_session")
	host := strings.TrimPrefix(w.gw.base, "http://")
	identity := []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Idp", "X-Forwarded-Identity-Jwt"}

	t.Run("Connection tokens", func(t *testing.T) {
		resp, body := rawRequest(t, w.gw, "GET /page HTTP/1.1\nHost: "+host+"\nCookie: sso_session="+token+
			"\nAccept: application/json\nConnection: keep-alive, X-Forwarded-User, x_forwarded_groups\nConnection: X-FORWARDED-EMAIL,X-Forwarded-Idp , X-Forwarded-Identity-Jwt, X-Custom\nX-Custom: hop\n\n")
		var saw trailerEcho
		if err := json.Unmarshal([]byte(body), &saw); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		for _, h := range identity {
			if len(header(saw.Headers, h)) != 1 || header(saw.Headers, h)[0] == "" {
				t.Errorf("the upstream lost %s (Connection token): %v", h, saw.Headers)
			}
		}
		if got := header(saw.Headers, "X-Forwarded-User"); len(got) != 1 || got[0] != id {
			t.Errorf("X-Forwarded-User = %q, want %q", got, id)
		}
		// The other tokens still work as Connection tokens: the proxy
		// dropped X-Custom.
		if header(saw.Headers, "X-Custom") != nil {
			t.Errorf("X-Custom, named in Connection, reached the upstream")
		}
	})

	t.Run("trailers", func(t *testing.T) {
		// Content-Digest and X-Forwarded-User announced, the rest not:
		// net/http hands every trailer that arrives to the handler.
		resp, body := rawRequest(t, w.gw, "POST /upload HTTP/1.1\nHost: "+host+"\nCookie: sso_session="+token+
			"\nAccept: application/json\nContent-Type: text/plain\nTransfer-Encoding: chunked\nTrailer: Content-Digest, X-Forwarded-User\nConnection: close\n\n"+
			"5\nhello\n0\nContent-Digest: sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:\nX-Forwarded-User: evil\nRemote-User: evil\nx_forwarded_groups: admins\nX-Forwarded-Identity-Jwt: forged\nCookie: sso_session="+token+"\n\n")
		var saw trailerEcho
		if err := json.Unmarshal([]byte(body), &saw); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		if saw.Body != "hello" {
			t.Errorf("body %q", saw.Body)
		}
		if got := header(saw.Trailers, "Content-Digest"); len(got) != 1 {
			t.Errorf("a plain trailer did not reach the upstream (trailers %v): the test proves nothing", saw.Trailers)
		}
		for _, h := range []string{"X-Forwarded-User", "Remote-User", "x_forwarded_groups", "X-Forwarded-Identity-Jwt", "Cookie"} {
			if v := header(saw.Trailers, h); v != nil {
				t.Errorf("trailer %s: %q reached the upstream", h, v)
			}
		}
		if got := header(saw.Headers, "X-Forwarded-User"); len(got) != 1 || got[0] != id {
			t.Errorf("X-Forwarded-User = %q, want %q", got, id)
		}
	})

	t.Run("trailers, none announced", func(t *testing.T) {
		// Without a Trailer header net/http gives the trailers to the
		// original request only, which Caddy's handlers never see, so
		// reverse_proxy forwards none: the guard need not run.
		resp, body := rawRequest(t, w.gw, "POST /upload HTTP/1.1\nHost: "+host+"\nCookie: sso_session="+token+
			"\nAccept: application/json\nTransfer-Encoding: chunked\nConnection: close\n\n"+
			"5\nhello\n0\nX-Forwarded-User: evil\nContent-Digest: x\n\n")
		var saw trailerEcho
		if err := json.Unmarshal([]byte(body), &saw); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		if len(saw.Trailers) != 0 {
			t.Errorf("unannounced trailers reached the upstream: %v", saw.Trailers)
		}
	})

	t.Run("other gateways' identity headers", func(t *testing.T) {
		spoofed := []string{"Remote-Groups", "Remote-Email", "Remote-Name", "remote_user", "X-Forwarded-Access-Token",
			"X-Webauth-User", "X-WEBAUTH-GROUPS", "X-Authenticated-User", "X-authentik-username", "X-Authentik-Groups",
			"X-Auth-Request-User", "X-Remote-User"}
		req := "GET /page HTTP/1.1\nHost: " + host + "\nCookie: sso_session=" + token + "\nAccept: application/json\nConnection: close\n"
		for _, h := range spoofed {
			req += h + ": mallory\n"
		}
		resp, body := rawRequest(t, w.gw, req+"\n")
		var saw trailerEcho
		if err := json.Unmarshal([]byte(body), &saw); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		for k, v := range saw.Headers {
			if strings.Contains(strings.Join(v, ","), "mallory") {
				t.Errorf("spoofed %s reached the upstream", k)
			}
		}
	})
}
