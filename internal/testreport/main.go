// Command testreport turns the event stream of `go test -json` (on stdin)
// into what a person running the whole suite wants to see: one line per
// package as it finishes (ok, FAIL or skip, with its elapsed time), the full
// output of every failing test, a note every half minute naming the
// packages still running (so a slow suite is not mistaken for a hung one),
// and a summary of passed, failed and skipped tests at the end, with the
// reason of each skip. It exits 1 when any test, package or build failed,
// when a package's test binary exited 0 without running its tests, and when
// the stream reports no package at all.
//
// scripts/test builds it and runs it as
//
//	go test -json -race -count=1 ./... | testreport
//
// (`go test -json ./... | go run ./internal/testreport` does the same).
// It is part of the repository, rather than a downloaded tool such as
// gotestsum, so the suite needs nothing but Go.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

func main() {
	r := newReport(os.Stdout, time.Now)
	stop := r.heartbeat(30 * time.Second)
	err := r.read(os.Stdin)
	stop()
	failed := r.summary()
	if err != nil {
		fmt.Fprintf(os.Stdout, "testreport: reading go test output: %v\n", err)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (see `go doc test2json`). Build
// failures arrive as build-output/build-fail events keyed by ImportPath,
// and the package's fail event names them in FailedBuild.
type event struct {
	Time        time.Time
	Action      string
	Package     string
	ImportPath  string
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

type testResult struct {
	name   string
	action string // "" while running, then pass, fail or skip
	output []string
}

type pkgState struct {
	name    string
	started time.Time
	tests   map[string]*testResult
	order   []*testResult // in the order they started
	output  []string      // lines not attributed to a test
	counts  map[string]int
}

// report is the formatter's state. Its methods are called from the reading
// goroutine and the heartbeat, hence the mutex.
type report struct {
	mu        sync.Mutex
	out       io.Writer
	now       func() time.Time
	start     time.Time
	lastPrint time.Time

	running  map[string]*pkgState
	build    map[string][]string // build output per ImportPath
	counts   map[string]int      // tests (subtests included) per result
	pkgs     map[string]int      // packages per result
	failures []string            // "pkg TestName" of failed tests
	skips    []string            // "pkg TestName: reason"
	failed   bool
}

func newReport(out io.Writer, now func() time.Time) *report {
	t := now()
	return &report{out: out, now: now, start: t, lastPrint: t,
		running: map[string]*pkgState{}, build: map[string][]string{},
		counts: map[string]int{}, pkgs: map[string]int{}}
}

// printf writes a line and notes the time, so the heartbeat stays quiet
// while lines are coming.
func (r *report) printf(format string, args ...any) {
	fmt.Fprintf(r.out, format, args...)
	r.lastPrint = r.now()
}

// read consumes the event stream. Lines that are not JSON events (a
// message go itself printed) are passed through.
func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			r.mu.Lock()
			r.printf("%s\n", line)
			r.mu.Unlock()
			continue
		}
		r.mu.Lock()
		r.handle(e)
		r.mu.Unlock()
	}
	return sc.Err()
}

func (r *report) pkg(name string) *pkgState {
	p := r.running[name]
	if p == nil {
		p = &pkgState{name: name, started: r.now(), tests: map[string]*testResult{}, counts: map[string]int{}}
		r.running[name] = p
	}
	return p
}

func (r *report) handle(e event) {
	switch e.Action {
	case "build-output":
		r.build[e.ImportPath] = append(r.build[e.ImportPath], e.Output)
		return
	case "build-fail":
		r.failed = true
		return
	}
	if e.Package == "" {
		return
	}
	p := r.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "output":
			p.output = append(p.output, e.Output)
		case "pass", "fail", "skip":
			r.finish(p, e)
		}
		return
	}
	t := p.tests[e.Test]
	if t == nil {
		t = &testResult{name: e.Test}
		p.tests[e.Test] = t
		p.order = append(p.order, t)
	}
	switch e.Action {
	case "output":
		t.output = append(t.output, e.Output)
	case "pass", "fail", "skip":
		t.action = e.Action
		p.counts[e.Action]++
		r.counts[e.Action]++
		switch e.Action {
		case "fail":
			// The summary lists the failures that explain themselves: a
			// parent failed by its subtests is left out.
			id := shortPkg(p.name) + " " + t.name
			if !slices.ContainsFunc(r.failures, func(f string) bool { return strings.HasPrefix(f, id+"/") }) {
				r.failures = append(r.failures, id)
			}
		case "skip":
			r.skips = append(r.skips, shortPkg(p.name)+" "+t.name+": "+skipReason(t.output))
		}
	}
}

// finish prints the package's line and, when it failed, what explains it.
func (r *report) finish(p *pkgState, e event) {
	delete(r.running, p.name)
	action, why := e.Action, ""
	if action == "pass" {
		// go test passes a package whose test binary exited 0, whatever
		// its tests did; a TestMain decides that exit code.
		switch {
		case p.counts["fail"] > 0:
			why = "the test binary exited 0 after a test failed (a TestMain that ignores m.Run's result?)"
		case len(p.order) == 0 && !slices.ContainsFunc(p.output, func(l string) bool { return strings.TrimSpace(l) == "PASS" }):
			// m.Run prints PASS even when -run matches no test.
			why = "the test binary exited 0 without running its tests (a TestMain that does not call m.Run?)"
		}
		if why != "" {
			action = "fail"
		}
	}
	r.pkgs[action]++
	name := shortPkg(p.name)
	switch action {
	case "skip":
		r.printf("skip  %s (no test files)\n", name)
		return
	case "pass":
		r.printf("ok    %-40s %7s  %s\n", name, seconds(e.Elapsed), countLine(p.counts))
		return
	}
	r.failed = true
	if e.FailedBuild != "" {
		r.printf("FAIL  %-40s build failed\n", name)
		for _, l := range r.build[e.FailedBuild] {
			r.printf("      %s", l)
		}
		return
	}
	r.printf("FAIL  %-40s %7s  %s\n", name, seconds(e.Elapsed), countLine(p.counts))
	if why != "" {
		r.printf("  --- %s\n", why)
	}
	for _, t := range p.order {
		switch {
		case t.action == "fail" && !onlyFramework(t.output):
			r.printf("  --- %s failed:\n", t.name)
		case t.action == "":
			// A panic or a timeout ends the binary while tests run.
			r.printf("  --- %s did not finish:\n", t.name)
		default:
			continue
		}
		for _, l := range t.output {
			r.printf("      %s", l)
		}
	}
	var rest []string
	for _, l := range p.output {
		if l != "FAIL\n" && !strings.HasPrefix(l, "FAIL\t") && !strings.HasPrefix(l, "ok  \t") {
			rest = append(rest, l)
		}
	}
	if len(rest) > 0 {
		r.printf("  --- output of %s outside any test:\n", name)
		for _, l := range rest {
			r.printf("      %s", l)
		}
	}
}

// heartbeat prints, whenever nothing was printed for every, how long the
// suite has run and which packages are still running (or that it is still
// compiling). It returns a function that stops it.
func (r *report) heartbeat(every time.Duration) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				r.mu.Lock()
				if r.now().Sub(r.lastPrint) >= every {
					r.printf("%s\n", r.stillRunning())
				}
				r.mu.Unlock()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (r *report) stillRunning() string {
	now := r.now()
	if len(r.running) == 0 {
		return fmt.Sprintf("..    %s: compiling", round(now.Sub(r.start)))
	}
	ps := make([]*pkgState, 0, len(r.running))
	for _, p := range r.running {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].started.Before(ps[j].started) })
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s (%s)", shortPkg(p.name), round(now.Sub(p.started))))
	}
	return fmt.Sprintf("..    %s: still running %s", round(now.Sub(r.start)), strings.Join(parts, ", "))
}

// summary prints the totals and reports whether anything failed.
func (r *report) summary() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	// No event at all: go test failed before it tested any package (a
	// go.mod it cannot read), which only its exit status would report.
	if len(r.running) == 0 && len(r.pkgs) == 0 && !r.failed {
		r.failed = true
		r.printf("FAIL  go test reported no package\n")
	}
	// Packages that started but never finished: go test was killed.
	for _, p := range r.running {
		r.failed = true
		r.printf("FAIL  %s did not finish\n", shortPkg(p.name))
	}
	r.printf("\n")
	// Packages run in parallel and finish in any order; the lists are
	// sorted so that two runs of the same failures read the same.
	slices.Sort(r.skips)
	slices.Sort(r.failures)
	if len(r.skips) > 0 {
		r.printf("Skipped:\n")
		for _, s := range r.skips {
			r.printf("  %s\n", s)
		}
	}
	if len(r.failures) > 0 {
		r.printf("Failed:\n")
		for _, f := range r.failures {
			r.printf("  %s\n", f)
		}
	}
	verdict := "PASS"
	if r.failed {
		verdict = "FAIL"
	}
	r.printf("%s: %d passed, %d failed, %d skipped tests (subtests included) in %d packages (%d failed, %d without tests), %s\n",
		verdict, r.counts["pass"], r.counts["fail"], r.counts["skip"],
		r.pkgs["pass"]+r.pkgs["fail"], r.pkgs["fail"], r.pkgs["skip"], round(r.now().Sub(r.start)))
	return r.failed
}

// shortPkg drops the module path, which every line would repeat.
func shortPkg(p string) string {
	const module = "github.com/caddy-sso/caddy-sso"
	if p == module {
		return "."
	}
	return strings.TrimPrefix(p, module+"/")
}

func countLine(c map[string]int) string {
	s := fmt.Sprintf("%d passed", c["pass"])
	if c["fail"] > 0 {
		s += fmt.Sprintf(", %d failed", c["fail"])
	}
	if c["skip"] > 0 {
		s += fmt.Sprintf(", %d skipped", c["skip"])
	}
	return s
}

func seconds(s float64) string { return fmt.Sprintf("%.1fs", s) }

func round(d time.Duration) time.Duration { return d.Round(time.Second) }

// onlyFramework reports whether a test's own output is only the testing
// package's === and --- lines: a parent that failed because a subtest did,
// whose output is printed under the subtest's name.
func onlyFramework(lines []string) bool {
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "=== ") && !strings.HasPrefix(t, "--- ") {
			return false
		}
	}
	return true
}

// skipReason is the message t.Skip logged: the last output line before
// "--- SKIP", without the file:line prefix's indentation.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		t := strings.TrimSpace(lines[i])
		if t != "" && !strings.HasPrefix(t, "=== ") && !strings.HasPrefix(t, "--- ") {
			return t
		}
	}
	return "(no reason given)"
}
