package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// caddyEnv keeps a test's Caddy binary away from the user's real Caddy
// directories.
func caddyEnv(t *testing.T) []string {
	dir := t.TempDir()
	return append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir+"/config", "XDG_DATA_HOME="+dir+"/data")
}

func run(t *testing.T, env []string, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCLI builds this Caddy and checks what an operator sees from the
// command line: the modules are listed, a good Caddyfile validates, and a
// bad one fails `caddy validate` naming the file, line and directive.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	bin := buildCaddy(t)
	env := caddyEnv(t)

	out, err := run(t, env, bin, "list-modules")
	if err != nil {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	for _, m := range []string{"sso", "http.handlers.sso"} {
		if !strings.Contains("\n"+out+"\n", "\n"+m+"\n") {
			t.Errorf("list-modules lacks %s", m)
		}
	}

	// The root package brings the command line along.
	out, err = run(t, env, bin, "sso", "audit", "--help")
	if err != nil || !strings.Contains(out, "user.deactivated") {
		t.Errorf("caddy sso audit --help: %v\n%s", err, out)
	}

	good := filepath.Join(dir, "Caddyfile")
	writeFile(t, good, `{
	sso {
		store bolt `+dir+`/sso.db
		idp okta oidc {
			preset okta
			issuer https://example.okta.com
			client_id abc
			client_secret {env.OKTA_SECRET}
			jit
		}
	}
}

http://127.0.0.1:0 {
	sso
	respond "hi"
}
`)
	// A placeholder written for a setting must be set where Caddy (and
	// caddy validate) runs, as the secret is in production.
	if out, err := run(t, append(env, "OKTA_SECRET=okta-client-secret"), bin, "validate", "--config", good, "--adapter", "caddyfile"); err != nil {
		t.Errorf("validate of a good Caddyfile failed: %v\n%s", err, out)
	}
	// Validation reads the configuration only: no store is created.
	if _, err := os.Stat(filepath.Join(dir, "sso.db")); !os.IsNotExist(err) {
		t.Errorf("validate created the store: %v", err)
	}

	bad := filepath.Join(dir, "Bad.Caddyfile")
	writeFile(t, bad, "{\n\tsso {\n\t\tidp okta oidc {\n\t\t\tpreset okta\n\t\t\tupdate sometimes\n\t\t}\n\t}\n}\n")
	out, err = run(t, env, bin, "validate", "--config", bad, "--adapter", "caddyfile")
	if err == nil {
		t.Fatalf("validate accepted a bad Caddyfile:\n%s", out)
	}
	for _, want := range []string{"Bad.Caddyfile:5", "sso idp okta", "unknown update", "sometimes", "force, import"} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
}

// TestXcaddyBuild is the proof that operators can build Caddy with this
// module the usual way: xcaddy, with the checkout as the module's source.
// It builds Caddy from scratch (minutes), so -short skips it.
func TestXcaddyBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Caddy from scratch")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "run", "github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5",
		"build", "--with", "github.com/caddy-sso/caddy-sso="+root, "--output", bin)
	cmd.Dir = dir
	proxy, _ := exec.Command("go", "env", "GOPROXY").Output()
	first, _, _ := strings.Cut(strings.TrimSpace(string(proxy)), ",")
	// The local replacement must be used, not a module proxy lookup of an
	// unpublished module; "|off" stops the fallback to direct.
	cmd.Env = append(os.Environ(), "GOPROXY="+first+"|off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xcaddy build: %v\n%s", err, out)
	}
	out, err := run(t, caddyEnv(t), bin, "list-modules")
	if err != nil {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	for _, m := range []string{"sso", "http.handlers.sso"} {
		if !strings.Contains("\n"+out+"\n", "\n"+m+"\n") {
			t.Errorf("xcaddy-built Caddy lacks module %s", m)
		}
	}
	if out, err := run(t, caddyEnv(t), bin, "sso", "users", "--help"); err != nil || !strings.Contains(out, "disable") {
		t.Errorf("xcaddy-built Caddy lacks `caddy sso`: %v\n%s", err, out)
	}
}

// buildCaddy builds this Caddy once per test binary.
func buildCaddy(t *testing.T) string {
	t.Helper()
	bin, err := builtCaddy()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var builtCaddy = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "caddy-sso-cli-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
