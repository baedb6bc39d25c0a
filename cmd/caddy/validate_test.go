package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// dirState lists a directory's files with their sizes and modification
// times, to show that a command left it alone.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %s\n", path, info.Size(), info.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestValidateWhileRunning: `caddy validate` of the configuration a
// running Caddy serves succeeds at once and leaves the store directory as
// it was (the running Caddy holds the store's lock; validation must not
// need it), which is when an operator validates: just before `caddy
// reload`.
func TestValidateWhileRunning(t *testing.T) {
	bin := buildCaddy(t)
	env := caddyEnv(t)
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	port, admin := testport.For(t), testport.For(t)
	cfg := filepath.Join(dir, "Caddyfile")
	writeFile(t, cfg, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	sso {
		store bolt %s/sso.db
		idp okta oidc {
			preset okta
			issuer https://example.okta.com
			client_id abc
			jit
		}
	}
}

http://127.0.0.1:%d {
	sso
	respond "hi"
}
`, admin, storeDir, port))

	cmd := exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = env
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(storeDir, "sso.db")); err == nil {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not start:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An API request is answered (401) once the sso app has started,
	// loaded its keys and written what a first start writes.
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/api", port), nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API request before validate: %s", resp.Status)
	}
	// The first housekeeping run and session sweep write at start, in the
	// background: wait until the running Caddy leaves the store alone.
	before := dirState(t, storeDir)
	deadline = time.Now().Add(20 * time.Second)
	for stable := 0; stable < 3; {
		time.Sleep(300 * time.Millisecond)
		now := dirState(t, storeDir)
		if now == before {
			stable++
		} else {
			before, stable = now, 0
		}
		if time.Now().After(deadline) {
			t.Fatal("the running Caddy keeps writing to its store")
		}
	}

	start := time.Now()
	out, err := run(t, env, bin, "validate", "--config", cfg, "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("validate of the running configuration failed: %v\n%s", err, out)
	}
	// Waiting on the store's lock would take its whole timeout (5 s).
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("validate took %v", took)
	}
	if after := dirState(t, storeDir); after != before {
		t.Errorf("validate changed the store directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestValidateErrors: what only the running configuration can tell is
// still caught by `caddy validate`, and named: an unset environment
// variable, a bad allowed domain in a JSON config (which no Caddyfile
// parser saw), an sso directive naming an IdP that does not exist.
func TestValidateErrors(t *testing.T) {
	bin := buildCaddy(t)
	env := caddyEnv(t)
	dir := t.TempDir()
	tests := []struct {
		name, file, content string
		want                []string
	}{
		{"unset placeholder", "Caddyfile", `{
	sso {
		store bolt ` + dir + `/sso.db
		idp okta oidc {
			issuer https://example.okta.com
			client_id {env.CADDY_SSO_TEST_UNSET_CLIENT_ID}
		}
	}
}
`, []string{"sso idp okta", "client_id {env.CADDY_SSO_TEST_UNSET_CLIENT_ID} is empty", "variable"}},
		// An optional setting written with a placeholder must be set too:
		// an unset tenant_id would let every Entra tenant sign in.
		{"unset optional placeholder", "Caddyfile", `{
	sso {
		store bolt ` + dir + `/sso.db
		idp entra oidc {
			issuer https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0
			client_id abc
			tenant_id {env.CADDY_SSO_TEST_UNSET_TENANT}
		}
	}
}
`, []string{"sso idp entra", "tenant_id {env.CADDY_SSO_TEST_UNSET_TENANT} is empty", "variable"}},
		// SAML entity IDs and pages_dir too: an unset entity_id became the
		// default ID, which the IdP does not know; an unset pages_dir
		// dropped the operator's pages.
		{"unset entity_id placeholder", "Caddyfile", `{
	sso {
		store bolt ` + dir + `/sso.db
		idp corp saml {
			metadata <EntityDescriptor/>
			entity_id {env.CADDY_SSO_TEST_UNSET_SP_ID}
		}
	}
}
`, []string{"sso idp corp", "entity_id {env.CADDY_SSO_TEST_UNSET_SP_ID} is empty", "variable"}},
		{"unset pages_dir placeholder", "Caddyfile", `{
	sso {
		store bolt ` + dir + `/sso.db
		pages_dir {env.CADDY_SSO_TEST_UNSET_PAGES}
		idp okta oidc {
			issuer https://example.okta.com
			client_id abc
		}
	}
}
`, []string{"pages_dir {env.CADDY_SSO_TEST_UNSET_PAGES} is empty", "variable"}},
		{"bad allowed domain in JSON", "caddy.json", `{"apps": {"sso": {"store": {"path": "` + dir + `/sso.db"},
	"idps": [{"name": "okta", "protocol": "oidc", "allowed_domains": ["@ bad domain"],
		"oidc": {"issuer": "https://example.okta.com", "client_id": "abc"}}]}}}`,
			[]string{"sso idp okta", "allowed domain", "not a domain name"}},
		{"unknown idp", "Caddyfile", `{
	sso {
		store bolt ` + dir + `/sso.db
		idp okta oidc {
			issuer https://example.okta.com
			client_id abc
		}
	}
}

http://127.0.0.1:0 {
	sso entra
	respond "hi"
}
`, []string{"Caddyfile:12", `no identity provider named`, "entra", "defined: okta"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			writeFile(t, path, tt.content)
			args := []string{"validate", "--config", path}
			if tt.file == "Caddyfile" {
				args = append(args, "--adapter", "caddyfile")
			}
			out, err := run(t, env, bin, args...)
			if err == nil {
				t.Fatalf("validate accepted it:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("validate output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
