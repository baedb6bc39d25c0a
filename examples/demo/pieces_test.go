package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// TestCheckPortsAdminLoopback: the admin endpoint, which can rewrite the
// running config, is refused anywhere but a loopback IP, before anything
// starts; and a port given to two flags is named with both flags.
func TestCheckPortsAdminLoopback(t *testing.T) {
	for _, admin := range []string{"0.0.0.0:2019", "192.0.2.1:2019", "localhost:2019", ":2019", "127.0.0.1"} {
		err := config{admin: admin}.checkPorts()
		if err == nil || !strings.Contains(err.Error(), "-admin") || !strings.Contains(err.Error(), "must be a loopback IP address") {
			t.Errorf("-admin %s: %v, want it refused as not loopback", admin, err)
		}
	}
	p := testport.For(t)
	cfg := config{oidcPort: p, samlPort: p, admin: "127.0.0.1:0"}
	if err := cfg.checkPorts(); err == nil || err.Error() != fmt.Sprintf("port %d is given twice (-port and -saml-port)", p) {
		t.Errorf("a port given twice: %v", err)
	}
}

// TestAppPageShowsIdentityHeaders: the demo app shows the X-Forwarded-*
// headers it received, sorted, and nothing else of the request (no
// cookie, no other header), greets the person by first name and names
// the IdP; values are escaped.
func TestAppPageShowsIdentityHeaders(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Forwarded-Groups", "admins,demo-users")
	r.Header.Set("X-Forwarded-Email", "alice@example.com")
	r.Header.Set("X-Forwarded-First-Name", "<Alice>")
	r.Header.Set("X-Forwarded-Idp", "demo")
	r.Header.Set("Cookie", "caddy_sso=secret-session")
	r.Header.Set("Authorization", "Bearer secret-token")
	w := httptest.NewRecorder()
	serveApp(w, r)
	page := w.Body.String()
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{`<span id="name">&lt;Alice&gt;</span>`, `<code id="idp">demo</code>`,
		"<td><code>X-Forwarded-Email</code></td><td>alice@example.com</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	order := []string{"X-Forwarded-Email", "X-Forwarded-First-Name", "X-Forwarded-Groups", "X-Forwarded-Idp"}
	last := -1
	for _, h := range order {
		i := strings.Index(page, "<code>"+h+"</code>")
		if i < last {
			t.Errorf("headers not sorted: %s before its predecessor", h)
		}
		last = i
	}
	for _, not := range []string{"secret-session", "secret-token", "Cookie", "Authorization"} {
		if strings.Contains(page, not) {
			t.Errorf("the page shows %q, which is not an identity header", not)
		}
	}
}

// TestLoginHintAndBanner: each IdP's login page lists its users with their
// passwords (the user name), and the banner names a user once, on the
// first line of their note, its lines at most 60 bytes.
func TestLoginHintAndBanner(t *testing.T) {
	if got, want := hint(samlUsers), "Demo users (user name / password): bob / bob, alice / alice."; got != want {
		t.Errorf("hint %q, want %q", got, want)
	}
	note := samlUsers[1].note
	lines := wrap(note, 60)
	if len(lines) < 2 || strings.Join(lines, " ") != note {
		t.Fatalf("wrap(%q) = %q", note, lines)
	}
	for _, l := range lines {
		if len(l) > 60 {
			t.Errorf("line of %d bytes: %q", len(l), l)
		}
	}
	d := &demo{cfg: config{admin: "127.0.0.1:2019", dataDir: "/tmp/demo"}, caddyfile: "{\n}\n"}
	d.idp, d.samlIdP = newIdPsForBanner(t)
	banner := d.banner()
	if n := strings.Count(banner, "alice / alice"); n != 2 { // once per site
		t.Errorf("alice named %d times, want 2:\n%s", n, banner)
	}
	if strings.Contains(banner, "--address") || !strings.Contains(banner, "curl localhost:2019/sso/users") {
		t.Errorf("with the default admin address the banner's commands take no --address, and curl uses localhost:\n%s", banner)
	}
}

// newIdPsForBanner makes the two demo IdPs, not served: the banner reads
// their addresses only.
func newIdPsForBanner(t *testing.T) (*oidctest.Server, *samltest.Server) {
	t.Helper()
	op, err := oidctest.NewServer("http://127.0.0.1:9080")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := samltest.NewServer("http://localhost:9082")
	if err != nil {
		t.Fatal(err)
	}
	return op, sp
}

// TestWrap: the banner's notes are filled greedily: words go on one line
// while it stays within the width, a line breaks only where the next word
// would overflow it, and a word longer than the width gets a line of its
// own rather than being cut.
func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		text  string
		width int
		want  []string
	}{
		{"a b c", 80, []string{"a b c"}},
		{"aaa bbb ccc", 7, []string{"aaa bbb", "ccc"}},
		{"aaa bbb ccc", 6, []string{"aaa", "bbb", "ccc"}},
		{"  spaced   out  ", 80, []string{"spaced out"}},
		{"a verylongword b", 4, []string{"a", "verylongword", "b"}},
	} {
		if got := wrap(tc.text, tc.width); !slices.Equal(got, tc.want) {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.text, tc.width, got, tc.want)
		}
	}
}

// TestCaddyfileToken: each path the demo writes into its Caddyfile reads
// back, after the formatting the demo applies, as one token holding the
// path, whatever it holds; a value no quoting can carry is an error, not
// a Caddyfile that means something else.
func TestCaddyfileToken(t *testing.T) {
	for _, s := range []string{"/tmp/caddy-sso-demo", "/tmp/demo data", "a\tb", `a"b`, `a\b`, `C:\Users\John Smith\x`,
		`a\"b`, `a\`, "a`b", "#a", "{a}", "{file./a b/secret}", "", "a\nb"} {
		tok, err := caddyfileToken(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		got, err := caddyfile.Tokenize(caddyfile.Format([]byte("storage file_system "+tok+"\n")), "Caddyfile")
		if err != nil || len(got) != 3 || got[2].Text != s {
			t.Errorf("%q written as %s reads back as %v (%v)", s, tok, got, err)
		}
	}
	if tok, err := caddyfileToken("a`b\\"); err == nil {
		t.Errorf("a backquote and a final backslash: %s, want an error", tok)
	}
}

// TestShellWord: the banner's --config path is one word to a POSIX shell,
// which reads it back as the path.
func TestShellWord(t *testing.T) {
	for _, s := range []string{"/tmp/caddy-sso-demo/Caddyfile", "/tmp/demo data/Caddyfile", "it's", `a"b$HOME`, "a\\b", "*", "a\tb;c", "~x", ""} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+shellWord(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("%q written as %s reads back as %q (%v)", s, shellWord(s), out, err)
		}
	}
	if got := shellWord("/tmp/caddy-sso-demo/Caddyfile"); got != "/tmp/caddy-sso-demo/Caddyfile" {
		t.Errorf("a plain path is quoted: %s", got)
	}
}
