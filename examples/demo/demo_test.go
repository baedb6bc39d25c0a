package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/htmlform"
	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// testConfig is the demo's configuration on ports the test picks.
func testConfig(t *testing.T) config {
	return config{oidcPort: testport.For(t), samlPort: testport.For(t), oidcIdPPort: testport.For(t), samlIdPPort: testport.For(t),
		upstreamPort: testport.For(t), admin: fmt.Sprintf("127.0.0.1:%d", testport.For(t)), dataDir: t.TempDir()}
}

// startDemo runs the demo until the test ends. Tests that start a demo
// must not run in parallel (Caddy is one per process).
func startDemo(t *testing.T) *demo {
	t.Helper()
	d, err := start(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// form returns the absolute action and the fields of the first form in body.
func form(t *testing.T, base *url.URL, body string) (string, url.Values) {
	t.Helper()
	action, fields, ok := htmlform.First(base, body)
	if !ok {
		t.Fatalf("no form at %s:\n%s", base, body)
	}
	return action, fields
}

// client is a cookie-keeping HTTP client, like one browser.
func client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

// signIn opens appURL as a browser would, fills in the IdP's login form and
// submits the forms a browser's JavaScript would submit by itself (SAML's
// POST binding), until it lands on a page that is neither.
func signIn(t *testing.T, c *http.Client, appURL, user string) (int, string) {
	t.Helper()
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
			return resp.StatusCode, page
		}
		if login && user == "" {
			return resp.StatusCode, page
		}
		action, fields := form(t, resp.Request.URL, page)
		if login {
			fields.Set("username", user)
			fields.Set("password", user)
		}
		resp, err = c.PostForm(action, fields)
	}
	t.Fatal("too many forms")
	return 0, ""
}

// TestDemo runs the demo as a newcomer meets it, and checks that what the
// banner says each user shows is what signing in as them shows.
func TestDemo(t *testing.T) {
	d := startDemo(t)

	banner := d.banner()
	written, err := os.ReadFile(d.caddyfilePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{d.appURL, d.samlAppURL, d.caddyfilePath, d.storePath,
		"sso users list --address " + d.cfg.admin, "sso check --config " + d.caddyfilePath,
		"alice / alice", "bob / bob", "carol / carol", "email_conflict", "admin " + d.cfg.admin} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner lacks %q:\n%s", want, banner)
		}
	}
	if !strings.Contains(banner, strings.ReplaceAll(string(written), "\n", "\n    ")[:200]) {
		t.Errorf("the banner does not show the Caddyfile written to %s", d.caddyfilePath)
	}
	// The Caddyfile a newcomer copies reads its secret from a file.
	if strings.Contains(string(written), demoClientSecret) || !strings.Contains(string(written), `client_secret "{file.`+d.secretPath+`}"`) {
		t.Errorf("the Caddyfile does not read the client secret from %s:\n%s", d.secretPath, written)
	}

	// alice over OpenID Connect: created by JIT, the headers reach the app.
	alice := client()
	status, page := signIn(t, alice, d.appURL, "alice")
	if status != http.StatusOK || !strings.Contains(page, `<span id="name">Alice</span>`) {
		t.Fatalf("alice over OIDC: %d\n%s", status, page)
	}
	for _, want := range []string{"X-Forwarded-Email", "alice@example.com", "X-Forwarded-Groups", "admins,demo-users,engineering", `<code id="idp">demo</code>`} {
		if !strings.Contains(page, want) {
			t.Errorf("app page lacks %q", want)
		}
	}
	resp, err := alice.Get(d.appURL + "/.sso/whoami")
	if err != nil {
		t.Fatal(err)
	}
	var who struct{ Email, Source string }
	err = json.NewDecoder(resp.Body).Decode(&who)
	resp.Body.Close()
	if err != nil || who.Email != "alice@example.com" || who.Source != "jit" {
		t.Errorf("whoami = %+v, %v; want alice created by jit", who, err)
	}

	// The SAML site is another host: alice's OIDC session is not its
	// session, so the same browser meets the SAML IdP's login form.
	if status, page := signIn(t, alice, d.samlAppURL, ""); !strings.Contains(page, "samltest") || !strings.Contains(page, `id="username"`) {
		t.Errorf("the SAML site with alice's OIDC cookies: %d, want the SAML IdP's login form\n%s", status, page)
	}

	// carol has no email at the OpenID provider: the page explains it.
	if status, page := signIn(t, client(), d.appURL, "carol"); status != http.StatusForbidden || !strings.Contains(page, "<code>email</code>") {
		t.Errorf("carol: %d\n%s", status, page)
	}

	// bob over SAML, with the default group the SAML IdP's block adds, as
	// the OpenID one's does for alice.
	if status, page := signIn(t, client(), d.samlAppURL, "bob"); status != http.StatusOK || !strings.Contains(page, `<span id="name">Bob</span>`) ||
		!strings.Contains(page, `<code id="idp">demo-saml</code>`) || !strings.Contains(page, "<td>demo-users,sales</td>") {
		t.Errorf("bob over SAML: %d, want his name, demo-saml and the groups demo-users,sales\n%s", status, page)
	}

	// alice at the SAML IdP, after alice at the OpenID provider: refused,
	// as the banner says.
	if status, page := signIn(t, client(), d.samlAppURL, "alice"); status != http.StatusForbidden ||
		!strings.Contains(page, "already belongs to another account") || !strings.Contains(page, "email_conflict") {
		t.Errorf("alice over SAML after OIDC: %d, want the email_conflict page\n%s", status, page)
	}
}

// TestDemoPortBusy: a port in use stops the demo at once, with an error
// that names the port and the flag that changes it, and nothing started.
// A port reached by the name localhost is in use also when another server
// has it on ::1 only (a dev server bound to "localhost"): browsers try ::1
// first, and would show that server instead of the demo.
func TestDemoPortBusy(t *testing.T) {
	cfg := testConfig(t)
	for _, p := range cfg.ports() {
		loopbacks := []string{"127.0.0.1"}
		if p.host == "localhost" {
			loopbacks = append(loopbacks, "::1")
		}
		for _, ip := range loopbacks {
			t.Run(p.flag+"/"+ip, func(t *testing.T) {
				ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(p.n)))
				if err != nil && ip == "::1" {
					t.Skipf("no IPv6 loopback here: %v", err)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				portRefused(t, cfg, p)
			})
		}
	}
	// Nothing was left running: the demo starts on the same ports.
	d, err := start(cfg)
	if err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
	if err := d.close(); err != nil {
		t.Error(err)
	}
}

// portRefused checks that the demo on cfg fails at once naming p and its
// flag.
func portRefused(t *testing.T, cfg config, p port) {
	t.Helper()
	began := time.Now()
	d, err := start(cfg)
	if err == nil {
		d.close()
		t.Fatalf("the demo started with port %d (%s) in use", p.n, p.flag)
	}
	for _, want := range []string{fmt.Sprint(p.n), p.flag} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if time.Since(began) > 2*time.Second {
		t.Errorf("failing took %v", time.Since(began))
	}
}

// TestDemoStartLogHasNoWarn: the README's first command, go run
// ./examples/demo. A newcomer reading Caddy's log (the banner gives its
// path) finds no WARN: neither about the demo's own configuration (a
// client secret written into it; HTTP/2 and HTTP/3 skipped on its
// plain-HTTP sites) nor from the check of its IdPs at start, or they
// learn that WARN lines are noise.
//
// One WARN is not the demo's: the store's "a store write held the write
// lock long" (docs/operations.md), logged when a write held bbolt's lock
// 100 ms or more. At start that is the machine's disk or load (on a busy
// test host a 3-page commit's fdatasync took 107 ms), not the demo's
// configuration, and it is an operator's signal that the demo must not
// hide: its Caddyfile is the one newcomers copy. So that line is allowed
// (and logged here); any other line above INFO still fails.
func TestDemoStartLogHasNoWarn(t *testing.T) {
	d := startDemo(t)
	var warns []string
	checked := map[any]bool{}
	slow := map[string]bool{}
	defer func() {
		for line := range slow {
			t.Logf("allowed, the disk's or the load's, not the demo's: %s", line)
		}
	}()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		f, err := os.Open(d.logPath)
		if err != nil {
			t.Fatal(err)
		}
		warns = nil
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			if e["msg"] == "identity provider checked" {
				checked[e["idp"]] = true
			}
			if e["level"] != "info" && e["level"] != "debug" {
				if isSlowStoreWrite(e) {
					slow[sc.Text()] = true
					continue
				}
				warns = append(warns, sc.Text())
			}
		}
		f.Close()
		if checked["demo"] && checked["demo-saml"] {
			if len(warns) > 0 {
				t.Errorf("the demo's start log holds %d line(s) above INFO:\n%s", len(warns), strings.Join(warns, "\n"))
			}
			return
		}
	}
	t.Fatalf("the log says no \"identity provider checked\" for both IdPs within 15s (%v); lines above INFO so far: %v", checked, warns)
}

// isSlowStoreWrite reports whether the log entry e is the store's WARN
// that a write held its lock long, which TestDemoStartLogHasNoWarn
// allows; only that WARN, from the store's logger, and nothing above it.
func isSlowStoreWrite(e map[string]any) bool {
	return e["level"] == "warn" && e["logger"] == "sso.store" && e["msg"] == "a store write held the write lock long"
}

// TestDemoDataDirInUse: a second demo on other ports but the same -data
// rewrote the running demo's Caddyfile (its admin address and IdP ports
// now the second's) and added to its log, then failed 5 s later on the
// store's lock without naming -data. It now fails at once, naming -data,
// and the first demo's files are as they were; once the first stops, the
// directory is free.
func TestDemoDataDirInUse(t *testing.T) {
	first := testConfig(t)
	d, err := start(first)
	if err != nil {
		t.Fatal(err)
	}
	running := true
	defer func() {
		if running {
			_ = d.close()
		}
	}()
	written, err := os.ReadFile(d.caddyfilePath)
	if err != nil {
		t.Fatal(err)
	}

	second := testConfig(t)
	second.dataDir = first.dataDir
	began := time.Now()
	if d2, err := start(second); err == nil {
		_ = d2.close()
		t.Fatal("a second demo started with the running demo's data directory")
	} else if want := "the data directory " + first.dataDir + " is in use by another demo; choose another with -data DIR"; err.Error() != want {
		t.Errorf("the second demo failed with %q, want %q", err, want)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("failing took %v", took)
	}
	if now, err := os.ReadFile(d.caddyfilePath); err != nil || string(now) != string(written) {
		t.Errorf("the running demo's Caddyfile changed (%v):\n%s", err, now)
	}
	if logged, err := os.ReadFile(d.logPath); err != nil || strings.Contains(string(logged), second.admin) {
		t.Errorf("the running demo's log mentions the second demo's admin endpoint %s (%v)", second.admin, err)
	}

	// Stopped, the first demo leaves the directory to the next.
	running = false
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	d2, err := start(second)
	if err != nil {
		t.Fatalf("after the first demo stopped: %v", err)
	}
	if err := d2.close(); err != nil {
		t.Error(err)
	}
}

// TestDemoDataDirUnusualPath: a -data directory (or $TMPDIR) whose path
// holds a space, such as a Windows user name under %TEMP%, or a quote or a
// # starts the demo like any other: the Caddyfile's paths were unquoted,
// its tokens end at a space, and Caddy failed on its storage directive.
// The store and the client secret are where the data directory says (alice
// signs in over OpenID Connect, which needs the secret), and the banner's
// --config is one shell word.
func TestDemoDataDirUnusualPath(t *testing.T) {
	for _, name := range []string{"demo data", `demo "data" #1`, `a\"b\`, "tab\tand 'single'"} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.dataDir = filepath.Join(t.TempDir(), name)
			d, err := start(cfg)
			if err != nil {
				t.Fatalf("start with -data %q: %v", cfg.dataDir, err)
			}
			defer func() {
				if err := d.close(); err != nil {
					t.Error(err)
				}
			}()
			if status, page := signIn(t, client(), d.appURL, "alice"); status != http.StatusOK || !strings.Contains(page, `<span id="name">Alice</span>`) {
				t.Errorf("alice over OIDC: %d\n%s", status, page)
			}
			if _, err := os.Stat(filepath.Join(cfg.dataDir, "sso.db")); err != nil {
				t.Errorf("the store is not in the data directory: %v", err)
			}
			if want := "sso check --config " + shellWord(d.caddyfilePath) + "\n"; !strings.Contains(d.banner(), want) {
				t.Errorf("the banner lacks %q:\n%s", want, d.banner())
			}
		})
	}
}

// TestDemoDataDirNotOwn: the default data directory is a fixed name in the
// shared /tmp, which another local user can create first, writable to
// them, with a link at the demo's client secret pointing at a file of the
// newcomer's. The demo wrote through it; it now refuses such a directory,
// naming -data, before it writes anything.
func TestDemoDataDirNotOwn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string) // dir does not exist yet
	}{
		{"writable by others", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o777) }},
		{"writable by its group", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o770) }},
		{"a symbolic link", func(t *testing.T, dir string) {
			if err := os.Symlink(t.TempDir(), dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"another user's", func(t *testing.T, dir string) {
			if os.Getuid() != 0 {
				t.Skip("only root can give a directory to another user")
			}
			mkdirMode(t, dir, 0o755)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.dataDir = filepath.Join(t.TempDir(), "caddy-sso-demo")
			tc.prepare(t, cfg.dataDir)
			victim := filepath.Join(t.TempDir(), "victims-file")
			if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, filepath.Join(cfg.dataDir, "oidc-client-secret")); err != nil {
				t.Fatal(err)
			}
			d, err := start(cfg)
			if err == nil {
				_ = d.close()
				t.Errorf("the demo started on a data directory that is %s", tc.name)
			} else if !strings.Contains(err.Error(), "the data directory "+cfg.dataDir) || !strings.Contains(err.Error(), "-data") {
				t.Errorf("the refusal names neither the directory nor -data: %v", err)
			}
			if got, _ := os.ReadFile(victim); string(got) != "precious\n" {
				t.Errorf("the demo wrote through a planted link: the victim's file holds %q", got)
			}
		})
	}
}

// mkdirMode makes the directory dir with mode perm, whatever the umask.
func mkdirMode(t *testing.T, dir string, perm os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
}

// TestDemoWritesNoThroughLinks: in a data directory of the newcomer's own,
// a symbolic link at the name of a file the demo writes is not written
// through, whether it points at a file (which keeps its content) or at
// nothing (which is not created): the demo makes its client secret and its
// Caddyfile anew and starts; its lock file it does not follow, and so does
// not start.
func TestDemoWritesNoThroughLinks(t *testing.T) {
	for _, tc := range []struct {
		file     string
		dangling bool
	}{
		{"oidc-client-secret", false},
		{"oidc-client-secret", true},
		{"Caddyfile", false},
		{"demo.lock", true},
	} {
		t.Run(fmt.Sprintf("%s/dangling=%v", tc.file, tc.dangling), func(t *testing.T) {
			cfg := testConfig(t)
			victim := filepath.Join(t.TempDir(), "victims-file")
			if !tc.dangling {
				if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(victim, filepath.Join(cfg.dataDir, tc.file)); err != nil {
				t.Fatal(err)
			}
			d, err := start(cfg)
			if err == nil {
				defer d.close()
			}
			switch got, rerr := os.ReadFile(victim); {
			case tc.dangling && rerr == nil:
				t.Errorf("the demo created the file a dangling link at %s points at (start: %v)", tc.file, err)
			case !tc.dangling && string(got) != "precious\n":
				t.Errorf("the demo wrote through a link at %s: the victim's file holds %q (start: %v)", tc.file, got, err)
			}
			if tc.file == "demo.lock" {
				return // refused, or started on a lock file of its own
			}
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			if fi, err := os.Lstat(filepath.Join(cfg.dataDir, tc.file)); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s is not the demo's own file now: %v, %v", tc.file, fi.Mode(), err)
			}
		})
	}
}
