package freshclone

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// suites are the tests that read test data (the open-redirect payload list
// and anything else under a testdata folder, the nginx and Traefik examples'
// configuration files), as `go test` arguments. Of the Traefik example only
// the check of its files: the end-to-end test builds Traefik (minutes, from
// the module proxy, which is off here), and the suite's own run of it is
// in a clean checkout in CI.
var suites = [][]string{
	{"./internal/redirecttest", "./idp", "./idp/saml", "./examples/nginx"},
	{"-run", "^(TestOpenRedirectPayloads|TestSAMLIdPInitiated)$", "./caddymodule"},
	{"-run", "^TestTraefikExampleCoversEveryIdentityHeader$", "./examples/traefik"},
}

// TestFreshClone clones the committed HEAD of this checkout into an empty
// temporary directory, with no sibling folders, and runs there the suites
// that read test data. The module cache is used as it is and the module
// proxy is switched off, so the check needs no network. Uncommitted changes
// are not part of the clone: commit before trusting this test.
func TestFreshClone(t *testing.T) {
	if testing.Short() {
		t.Skip("fresh-clone check skipped in -short mode")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("fresh-clone check skipped: git is not installed")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("fresh-clone check skipped: go is not on PATH")
	}
	root, err := run(t, ".", git, "rev-parse", "--show-toplevel")
	if err != nil {
		t.Skip("fresh-clone check skipped: the working directory is not a git checkout")
	}
	head, err := run(t, root, git, "rev-parse", "HEAD")
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v\n%s", err, head)
	}

	dir := t.TempDir()
	clone := filepath.Join(dir, "caddy-sso")
	for _, args := range [][]string{
		{"clone", "--quiet", "--no-checkout", root, clone},
		{"-C", clone, "fetch", "--quiet", root, "HEAD"},
		{"-C", clone, "checkout", "--quiet", "--detach", "FETCH_HEAD"},
	} {
		if out, err := run(t, ".", git, args...); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if got, _ := run(t, clone, git, "rev-parse", "HEAD"); got != head {
		t.Fatalf("the clone is at %s, want %s", got, head)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("the clone's parent directory holds %d entries, want only the clone", len(entries))
	}
	t.Logf("cloned %s at %s into %s", root, head[:12], clone)

	env := append(os.Environ(), "GOPROXY=off", "GOWORK=off", "GOFLAGS="+os.Getenv("GOFLAGS")+" -mod=readonly")
	for _, args := range suites {
		args = append([]string{"test", "-count=1"}, args...)
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir, cmd.Env = clone, env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("in a fresh clone, go %s failed (%v):\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("go %s (%s):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Second), bytes.TrimSpace(out))
	}
}

// run runs a command and returns its trimmed combined output.
func run(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
