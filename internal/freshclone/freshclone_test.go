package freshclone

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// suites are the tests that read test data (the open-redirect payload list
// and anything else under a testdata folder, the nginx and Traefik examples'
// configuration files): packages, and the tests to run of them, if not all.
// Of the Traefik example only the check of its files: the end-to-end test
// builds Traefik (minutes, from the module proxy, which is off here), and
// the suite's own run of it is in a clean checkout in CI.
var suites = []suite{
	{pkgs: []string{"./internal/redirecttest", "./idp", "./idp/saml", "./examples/nginx"}},
	{pkgs: []string{"./caddymodule"}, tests: []string{"TestOpenRedirectPayloads", "TestSAMLIdPInitiated"}},
	{pkgs: []string{"./examples/traefik"}, tests: []string{"TestTraefikExampleCoversEveryIdentityHeader"}},
}

type suite struct {
	pkgs  []string
	tests []string // top-level test names; none: every test of pkgs
}

// args are the suite's `go test` arguments: with named tests, -v, so that
// ran can see each of them pass.
func (s suite) args() []string {
	args := []string{"test", "-count=1"}
	if len(s.tests) > 0 {
		args = append(args, "-v", "-run", "^("+strings.Join(s.tests, "|")+")$")
	}
	return append(args, s.pkgs...)
}

// ran checks the output of a passing run of the suite: go test exits 0
// when -run matches nothing, or a package has no tests, so a renamed test
// would leave the check covering less without a word. Every named test
// must have passed (not skipped), and no package may have run nothing.
func (s suite) ran(out string) error {
	for _, none := range []string{"[no tests to run]", "[no test files]"} {
		if strings.Contains(out, none) {
			return fmt.Errorf("a package ran no test (%s)", none)
		}
	}
	var missing []string
	for _, name := range s.tests {
		if !regexp.MustCompile(`(?m)^--- PASS: ` + regexp.QuoteMeta(name) + ` \(`).MatchString(out) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s did not run and pass", strings.Join(missing, ", "))
	}
	return nil
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
	for _, s := range suites {
		args := s.args()
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
		if err := s.ran(string(out)); err != nil {
			t.Errorf("in a fresh clone, go %s passed, but %v:\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("go %s (%s):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Second), summary(out))
	}
}

// summary is the lines of go test's output that say how each package did,
// without the -v lines of each test.
func summary(out []byte) []byte {
	var keep [][]byte
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if bytes.HasPrefix(line, []byte("ok ")) || bytes.HasPrefix(line, []byte("--- ")) || bytes.HasPrefix(line, []byte("?")) {
			keep = append(keep, line)
		}
	}
	return bytes.Join(keep, []byte("\n"))
}

// run runs a command and returns its trimmed combined output.
func run(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestSuiteRan: a suite's passing run counts only when every named test
// passed and every package ran a test.
func TestSuiteRan(t *testing.T) {
	named := suite{pkgs: []string{"./caddymodule"}, tests: []string{"TestA", "TestB"}}
	all := suite{pkgs: []string{"./idp", "./idp/saml"}}
	for _, tc := range []struct {
		name  string
		suite suite
		out   string
		ok    bool
	}{
		{"both passed", named, "=== RUN   TestA\n--- PASS: TestA (0.01s)\n=== RUN   TestB\n--- PASS: TestB (0.02s)\nPASS\nok  \tx/caddymodule\t0.1s\n", true},
		{"no test matched", named, "ok  \tx/caddymodule\t0.1s [no tests to run]\n", false},
		{"one renamed", named, "=== RUN   TestA\n--- PASS: TestA (0.01s)\nPASS\nok  \tx/caddymodule\t0.1s\n", false},
		{"one skipped", named, "--- PASS: TestA (0.01s)\n--- SKIP: TestB (0.00s)\nPASS\nok  \tx/caddymodule\t0.1s\n", false},
		{"only a subtest of that name", named, "--- PASS: TestA (0.01s)\n--- PASS: TestC (0.01s)\n    --- PASS: TestB (0.00s)\nok  \tx/caddymodule\t0.1s\n", false},
		{"a prefix of the name", named, "--- PASS: TestA (0.01s)\n--- PASS: TestBx (0.01s)\nok  \tx/caddymodule\t0.1s\n", false},
		{"every package ran", all, "ok  \tx/idp\t0.1s\nok  \tx/idp/saml\t0.2s\n", true},
		{"a package without tests", all, "ok  \tx/idp\t0.1s\n?   \tx/idp/saml\t[no test files]\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.suite.ran(tc.out); (err == nil) != tc.ok {
				t.Errorf("ran: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestSuitesArgs: the named tests become one anchored -run pattern, with -v
// for ran to read.
func TestSuitesArgs(t *testing.T) {
	got := strings.Join(suite{pkgs: []string{"./a", "./b"}, tests: []string{"TestX", "TestY"}}.args(), " ")
	if want := "test -count=1 -v -run ^(TestX|TestY)$ ./a ./b"; got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	if got, want := strings.Join(suite{pkgs: []string{"./a"}}.args(), " "), "test -count=1 ./a"; got != want {
		t.Errorf("args %q, want %q", got, want)
	}
}
