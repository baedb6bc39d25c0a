package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The streams under testdata are what `go test -json -count=1` printed
// (Time fields dropped) for packages of a module example.com/sample:
//
//   - exitzero: TestMain is `m.Run(); os.Exit(0)`; TestFine passes and
//     TestBroken fails. The binary exits 0, so go test reports the
//     package as passed and exits 0: only the test's fail event tells.
//   - norun: TestMain is `os.Exit(0)`, without m.Run; the package's test
//     never runs, and go test reports the package as passed.
//   - runnothing: the exitzero package run with -run XXX: no test runs,
//     and m.Run says PASS.
//   - pass: a package whose test passes and one without test files.
//   - hang: TestHangs logs a line and sleeps past -timeout 2s; the
//     timeout's panic ends the binary while the test runs.
//   - initpanic: an init function panics before any test starts.
//   - nopackage: what go test printed for a go.mod it could not read (on
//     stderr, and nothing on stdout; here as the lines a person saw).

// TestReportGatesOnWhatTestsDid: the report fails the run whenever a test
// failed or a package's tests did not run, even where go test itself exits 0,
// and passes a run whose tests passed or that -run filtered to nothing.
func TestReportGatesOnWhatTestsDid(t *testing.T) {
	tests := []struct {
		file   string
		failed bool
		want   []string
		absent []string
	}{
		{"exitzero.jsonl", true, []string{
			"FAIL  example.com/sample/exitzero",
			"  --- the test binary exited 0 after a test failed (a TestMain that ignores m.Run's result?)\n",
			"  --- TestBroken failed:\n      === RUN   TestBroken\n          x_test.go:12: got 1, want 2\n",
			"Failed:\n  example.com/sample/exitzero TestBroken\n",
			"FAIL: 1 passed, 1 failed, 0 skipped tests (subtests included) in 1 packages (1 failed, 0 without tests)",
		}, []string{
			// The binary's own FAIL and go test's ok lines explain nothing.
			"outside any test",
			"TestFine",
		}},
		{"hang.jsonl", true, []string{
			"FAIL  example.com/sample/hang",
			// The test that hung, with what it logged and the timeout's panic.
			"  --- TestHangs did not finish:\n      === RUN   TestHangs\n          x_test.go:11: waiting for the server\n      panic: test timed out after 2s\n",
		}, []string{"TestFine"}},
		{"initpanic.jsonl", true, []string{
			"FAIL  example.com/sample/initpanic",
			"  --- output of example.com/sample/initpanic outside any test:\n      panic: no config\n",
		}, nil},
		{"norun.jsonl", true, []string{
			"FAIL  example.com/sample/norun",
			"  --- the test binary exited 0 without running its tests (a TestMain that does not call m.Run?)\n",
			"FAIL: 0 passed, 0 failed, 0 skipped tests (subtests included) in 1 packages (1 failed, 0 without tests)",
		}, nil},
		{"runnothing.jsonl", false, []string{
			"ok    example.com/sample/exitzero",
			"PASS: 0 passed, 0 failed, 0 skipped tests (subtests included) in 1 packages (0 failed, 0 without tests)",
		}, nil},
		{"pass.jsonl", false, []string{
			"ok    example.com/sample/good",
			"skip  example.com/sample/notests (no test files)",
			"PASS: 1 passed, 0 failed, 0 skipped tests (subtests included) in 1 packages (0 failed, 1 without tests)",
		}, nil},
		{"nopackage.jsonl", true, []string{
			"go: errors parsing go.mod:\n",
			"FAIL  go test reported no package\n",
			"FAIL: 0 passed, 0 failed, 0 skipped tests (subtests included) in 0 packages",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			stream, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			r := newReport(&out, time.Now)
			if err := r.read(bytes.NewReader(stream)); err != nil {
				t.Fatal(err)
			}
			if failed := r.summary(); failed != tt.failed {
				t.Errorf("failed = %v, want %v:\n%s", failed, tt.failed, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, out.String())
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(out.String(), a) {
					t.Errorf("report has %q:\n%s", a, out.String())
				}
			}
			if !tt.failed && strings.Contains(out.String(), "FAIL") {
				t.Errorf("passing run reports a failure:\n%s", out.String())
			}
		})
	}
}

// TestFormatterExitStatus runs the built formatter, as scripts/test does,
// on streams and checks its exit status: scripts/test's pipeline fails on
// it (with pipefail) and on go test's, and where go test exits 0 after a
// failure (exitzero, norun) the formatter's status is all there is.
func TestFormatterExitStatus(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	bin := filepath.Join(t.TempDir(), "testreport")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	file := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	pass := file("pass.jsonl")
	tests := []struct {
		name   string
		stream string
		status int
		want   string
	}{
		{"passing run", pass, 0, "PASS: 1 passed"},
		{"a test failed, the binary exited 0", file("exitzero.jsonl"), 1, "FAIL: 1 passed, 1 failed"},
		{"tests never ran, the binary exited 0", file("norun.jsonl"), 1, "without running its tests"},
		{"no package", file("nopackage.jsonl"), 1, "go test reported no package"},
		{"empty stream", "", 1, "go test reported no package"},
		// go test was killed: the last package never finished.
		{"cut short", pass + `{"Action":"start","Package":"example.com/sample/slow"}` + "\n", 1, "FAIL  example.com/sample/slow did not finish"},
		// Lines longer than bufio's default 64 KiB are read (build output
		// is not split into lines of bounded length).
		{"long line", strings.Repeat("x", 100<<10) + "\n" + pass, 0, "PASS: 1 passed"},
		// A line longer than the reader's 16 MiB limit ends the reading.
		{"unreadable line", pass + strings.Repeat("x", 17<<20) + "\n", 1, "testreport: reading go test output: bufio.Scanner: token too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Stdin = strings.NewReader(tt.stream)
			out, err := cmd.Output()
			status := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				status = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tt.status {
				t.Errorf("exit status %d, want %d:\n%.2000s", status, tt.status, out)
			}
			if !bytes.Contains(out, []byte(tt.want)) {
				t.Errorf("output lacks %q:\n%.2000s", tt.want, out)
			}
		})
	}
}

// TestReportListsEveryFailureAndSkip: a failed test is listed even when
// another failed test's name starts with its own (only its subtests stand
// for it), and a skip's reason is the last line it logged.
func TestReportListsEveryFailureAndSkip(t *testing.T) {
	const p = `"Package":"example.com/m/p"`
	stream := `{"Action":"start",` + p + `}
{"Action":"run",` + p + `,"Test":"TestAB"}
{"Action":"fail",` + p + `,"Test":"TestAB"}
{"Action":"run",` + p + `,"Test":"TestA"}
{"Action":"output",` + p + `,"Test":"TestA","Output":"    x_test.go:3: got 1, want 2\n"}
{"Action":"fail",` + p + `,"Test":"TestA"}
{"Action":"run",` + p + `,"Test":"TestS"}
{"Action":"output",` + p + `,"Test":"TestS","Output":"    x_test.go:7: starting the browser\n"}
{"Action":"output",` + p + `,"Test":"TestS","Output":"    x_test.go:8: no browser\n"}
{"Action":"output",` + p + `,"Test":"TestS","Output":"--- SKIP: TestS (0.00s)\n"}
{"Action":"skip",` + p + `,"Test":"TestS"}
{"Action":"fail",` + p + `}
`
	var out bytes.Buffer
	r := newReport(&out, time.Now)
	if err := r.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	r.summary()
	for _, w := range []string{
		"Skipped:\n  example.com/m/p TestS: x_test.go:8: no browser\n",
		"Failed:\n  example.com/m/p TestA\n  example.com/m/p TestAB\n",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, out.String())
		}
	}
}

// TestStillRunningOldestFirst: the heartbeat names the packages that run
// longest first.
func TestStillRunningOldestFirst(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newReport(io.Discard, func() time.Time { return now })
	r.read(strings.NewReader(`{"Action":"start","Package":"example.com/m/slow"}` + "\n"))
	now = now.Add(10 * time.Second)
	r.read(strings.NewReader(`{"Action":"start","Package":"example.com/m/fast"}` + "\n"))
	now = now.Add(85 * time.Second)
	if got, want := r.stillRunning(), "..    1m35s: still running example.com/m/slow (1m35s), example.com/m/fast (1m25s)"; got != want {
		t.Errorf("heartbeat = %q, want %q", got, want)
	}
}

// TestHeartbeatOnlyAfterSilence: the heartbeat prints once nothing was
// printed for its interval, and then waits a whole interval again.
func TestHeartbeatOnlyAfterSilence(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	r := newReport(&out, func() time.Time { return now }) // now is read and moved under r.mu
	stop := r.heartbeat(30 * time.Millisecond)            // checks every 10ms of real time
	defer stop()
	printed := func() string { r.mu.Lock(); defer r.mu.Unlock(); return out.String() }
	time.Sleep(60 * time.Millisecond)
	if s := printed(); s != "" {
		t.Fatalf("heartbeat before any silence: %q", s)
	}
	r.mu.Lock()
	now = now.Add(2 * time.Minute)
	r.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for printed() == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(60 * time.Millisecond) // several more checks, with the clock still
	if s := printed(); s != "..    2m0s: compiling\n" {
		t.Errorf("after two minutes of silence: %q, want one heartbeat line", s)
	}
}
