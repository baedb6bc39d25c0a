package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleModule is a module whose tests pass, fail (in a subtest), skip,
// panic, and fail to build, one package each, so that the report is tested
// on what `go test -json` really prints for each case.
var sampleModule = map[string]string{
	"go.mod": "module example.com/sample\n\ngo 1.26\n",
	"good/good_test.go": `package good
import "testing"
func TestOne(t *testing.T) {}
func TestTable(t *testing.T) { t.Run("a", func(t *testing.T) {}) }
func TestNeedsBrowser(t *testing.T) { t.Skip("chromium is not installed") }
`,
	"bad/bad_test.go": `package bad
import "testing"
func TestFine(t *testing.T) {}
func TestCase(t *testing.T) {
	t.Run("sub", func(t *testing.T) { t.Log("the context of the failure"); t.Error("got 1, want 2") })
}
`,
	"crash/crash_test.go": `package crash
import "testing"
func TestCrash(t *testing.T) { var m map[string]int; m["x"]++ }
`,
	"broken/broken_test.go": `package broken
import "testing"
func TestX(t *testing.T) { undefinedThing() }
`,
	"notests/notests.go": "package notests\n",
}

func runSample(t *testing.T) (string, bool) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	dir := t.TempDir()
	for name, body := range sampleModule {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goBin, "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOWORK=off", "GOFLAGS=-mod=mod")
	stream, _ := cmd.Output() // fails, as it should: two packages fail
	if len(stream) == 0 {
		t.Fatal("go test -json printed nothing")
	}
	var out bytes.Buffer
	r := newReport(&out, time.Now)
	if err := r.read(bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	failed := r.summary()
	return out.String(), failed
}

func TestReportOfRealRun(t *testing.T) {
	out, failed := runSample(t)
	if !failed {
		t.Error("a run with failures reported success")
	}
	wantLines := []string{
		"ok    example.com/sample/good",
		"3 passed, 1 skipped", // TestOne, TestTable, TestTable/a
		"FAIL  example.com/sample/bad",
		"  --- TestCase/sub failed:",
		"the context of the failure",
		"got 1, want 2",
		"FAIL  example.com/sample/crash",
		"assignment to entry in nil map",
		"FAIL  example.com/sample/broken",
		"build failed",
		"undefined: undefinedThing",
		"skip  example.com/sample/notests (no test files)",
		"Skipped:\n  example.com/sample/good TestNeedsBrowser: good_test.go:5: chromium is not installed",
		"Failed:\n",
		"  example.com/sample/bad TestCase/sub\n  example.com/sample/crash TestCrash\n",
		"FAIL: 4 passed, 3 failed, 1 skipped tests (subtests included) in 4 packages (3 failed, 1 without tests)",
	}
	for _, w := range wantLines {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
	// A parent that failed only because of its subtest is not printed
	// again: the subtest's output is the explanation.
	if strings.Contains(out, "--- TestCase failed:") {
		t.Errorf("parent test's framework lines printed as a failure:\n%s", out)
	}
	// Passing tests' output is not shown.
	if strings.Contains(out, "=== RUN   TestOne") {
		t.Errorf("passing test output shown:\n%s", out)
	}
}

func TestReportPassingRun(t *testing.T) {
	stream := `{"Action":"start","Package":"github.com/caddy-sso/caddy-sso/store"}
{"Action":"run","Package":"github.com/caddy-sso/caddy-sso/store","Test":"TestA"}
{"Action":"output","Package":"github.com/caddy-sso/caddy-sso/store","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"github.com/caddy-sso/caddy-sso/store","Test":"TestA","Elapsed":0.5}
{"Action":"output","Package":"github.com/caddy-sso/caddy-sso/store","Output":"ok  \tgithub.com/caddy-sso/caddy-sso/store\t0.6s\n"}
{"Action":"pass","Package":"github.com/caddy-sso/caddy-sso/store","Elapsed":0.6}
go: a line go printed itself
`
	var out bytes.Buffer
	r := newReport(&out, time.Now)
	if err := r.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if r.summary() {
		t.Errorf("passing run reported as failed:\n%s", out.String())
	}
	for _, w := range []string{"ok    store", "0.6s  1 passed", "go: a line go printed itself", "PASS: 1 passed, 0 failed, 0 skipped"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, out.String())
		}
	}
}

// TestReportUnfinished: a package whose events stop (go test killed)
// fails the run, and the heartbeat names it while it runs.
func TestReportUnfinished(t *testing.T) {
	now := time.Unix(1000, 0)
	var out bytes.Buffer
	r := newReport(&out, func() time.Time { return now })
	if got := r.stillRunning(); !strings.Contains(got, "compiling") {
		t.Errorf("before any package starts: %q", got)
	}
	r.read(strings.NewReader(`{"Action":"start","Package":"github.com/caddy-sso/caddy-sso/caddymodule"}` + "\n"))
	now = now.Add(95 * time.Second)
	if got := r.stillRunning(); got != "..    1m35s: still running caddymodule (1m35s)" {
		t.Errorf("heartbeat = %q", got)
	}
	if !r.summary() || !strings.Contains(out.String(), "FAIL  caddymodule did not finish") {
		t.Errorf("unfinished package not reported as a failure:\n%s", out.String())
	}
	// It was reported, if not to its end: not "no package".
	if strings.Contains(out.String(), "reported no package") {
		t.Errorf("unfinished package counted as no package:\n%s", out.String())
	}
}

// TestReportListsInStableOrder: packages finish in any order under
// `go test -p`, and the summary lists the same skips and failures the
// same way.
func TestReportListsInStableOrder(t *testing.T) {
	events := func(pkg, test string) string {
		return `{"Action":"start","Package":"example.com/m/` + pkg + `"}
{"Action":"run","Package":"example.com/m/` + pkg + `","Test":"` + test + `Skip"}
{"Action":"output","Package":"example.com/m/` + pkg + `","Test":"` + test + `Skip","Output":"    x_test.go:1: no browser\n"}
{"Action":"skip","Package":"example.com/m/` + pkg + `","Test":"` + test + `Skip","Elapsed":0.1}
{"Action":"run","Package":"example.com/m/` + pkg + `","Test":"` + test + `"}
{"Action":"fail","Package":"example.com/m/` + pkg + `","Test":"` + test + `","Elapsed":0.1}
{"Action":"fail","Package":"example.com/m/` + pkg + `","Elapsed":0.1}
`
	}
	var reports []string
	for _, stream := range []string{events("bad", "TestB") + events("crash", "TestC"), events("crash", "TestC") + events("bad", "TestB")} {
		var out bytes.Buffer
		r := newReport(&out, time.Now)
		if err := r.read(strings.NewReader(stream)); err != nil {
			t.Fatal(err)
		}
		r.summary()
		s := out.String()
		reports = append(reports, s[strings.Index(s, "Skipped:"):])
	}
	if reports[0] != reports[1] || !strings.Contains(reports[0], "Failed:\n  example.com/m/bad TestB\n  example.com/m/crash TestC\n") ||
		!strings.Contains(reports[0], "Skipped:\n  example.com/m/bad TestBSkip: x_test.go:1: no browser\n  example.com/m/crash TestCSkip") {
		t.Errorf("lists in finishing order:\n%s\n---\n%s", reports[0], reports[1])
	}
}
