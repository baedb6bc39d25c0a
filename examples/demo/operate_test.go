package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildCaddy builds this repository's Caddy (cmd/caddy) once for the test,
// as an operator's `go run ./cmd/caddy` would.
func buildCaddy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caddy")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/caddy").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin
}

// cli runs the built Caddy's command line with a home of its own, so that
// it never reads the user's real Caddy directories.
type cli struct {
	t   *testing.T
	bin string
	env []string
}

func newCLI(t *testing.T) *cli {
	home := t.TempDir()
	return &cli{t: t, bin: buildCaddy(t), env: append(os.Environ(), "HOME="+home,
		"XDG_CONFIG_HOME="+home+"/config", "XDG_DATA_HOME="+home+"/data")}
}

func (c *cli) command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	return cmd
}

// run runs a command that must succeed and returns its standard output.
func (c *cli) run(args ...string) string {
	c.t.Helper()
	cmd := c.command(args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("caddy %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, body)
	}
	return string(body)
}

// TestDemoOperate tries the README's "Operate" section against the running
// demo, as its banner tells a newcomer to: the caddy sso CLI over the
// admin endpoint (found from the Caddyfile the demo wrote, or given with
// --address), audit --follow, the admin API, /metrics, and caddy sso check.
func TestDemoOperate(t *testing.T) {
	c := newCLI(t)
	d := startDemo(t)
	// "curl localhost:2019/…", on the demo's admin port.
	admin := "http://" + strings.Replace(d.cfg.admin, "127.0.0.1", "localhost", 1)

	if _, page := signIn(t, client(), d.appURL, "alice"); !strings.Contains(page, "Hello") {
		t.Fatalf("alice did not get in:\n%s", page)
	}
	if _, page := signIn(t, client(), d.samlAppURL, "bob"); !strings.Contains(page, "Hello") {
		t.Fatalf("bob did not get in:\n%s", page)
	}

	t.Run("users list", func(t *testing.T) {
		out := c.run("sso", "users", "list", "--config", d.caddyfilePath)
		for _, want := range []string{"alice@example.com", "bob@example.com", "jit", "2 user(s)"} {
			if !strings.Contains(out, want) {
				t.Errorf("users list lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("audit", func(t *testing.T) {
		out := c.run("sso", "audit", "--address", d.cfg.admin)
		for _, want := range []string{"user.created", "login.succeeded", "demo-saml"} {
			if !strings.Contains(out, want) {
				t.Errorf("audit lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("audit --follow", func(t *testing.T) {
		cmd := c.command("sso", "audit", "--follow", "--address", d.cfg.admin)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// What happened before --follow started is printed first; then
		// carol's refused sign-in must appear as it happens.
		time.Sleep(1500 * time.Millisecond)
		signIn(t, client(), d.appURL, "carol")
		timeout := time.After(15 * time.Second)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("audit --follow ended")
				}
				if strings.Contains(line, "login.denied") && strings.Contains(line, "missing_attributes") {
					return
				}
			case <-timeout:
				t.Fatal("audit --follow did not print carol's denied sign-in within 15s")
			}
		}
	})

	t.Run("admin API /sso/users", func(t *testing.T) {
		var list struct {
			Users []struct{ Email, Source string }
		}
		if err := json.Unmarshal([]byte(httpGet(t, admin+"/sso/users")), &list); err != nil {
			t.Fatal(err)
		}
		var emails []string
		for _, u := range list.Users {
			emails = append(emails, u.Email)
		}
		if got := strings.Join(emails, " "); !strings.Contains(got, "alice@example.com") || !strings.Contains(got, "bob@example.com") {
			t.Errorf("GET /sso/users lists %q", got)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		body := httpGet(t, admin+"/metrics")
		for _, want := range []string{
			`caddy_sso_logins_total{idp="demo",protocol="oidc",reason="",result="success"} 1`,
			`caddy_sso_logins_total{idp="demo-saml",protocol="saml",reason="",result="success"} 1`,
			`caddy_sso_jit_total{`,
			`caddy_sso_active_sessions`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("check", func(t *testing.T) {
		out := c.run("sso", "check", "--config", d.caddyfilePath)
		for _, want := range []string{"IdP demo (oidc", "IdP demo-saml (saml", d.appURL + "/.sso/oidc/demo/callback",
			d.samlAppURL + "/.sso/saml/demo-saml/acs", "0 error(s), 0 warning(s)"} {
			if !strings.Contains(out, want) {
				t.Errorf("check lacks %q:\n%s", want, out)
			}
		}
	})
}
