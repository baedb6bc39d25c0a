// Package ci decides, in one place, whether the tests run under CI. There
// a test that cannot run here (no PostgreSQL, Chromium, nginx, strace or
// tmpfs mount) must fail, so that a run cannot pass by skipping it;
// elsewhere it skips, saying why.
package ci

import (
	"os"
	"runtime"
	"testing"
)

// Running reports whether the environment variable CI says this is a CI
// run: set to anything but "false" or "0". CI systems set it to "true"
// (GitHub Actions, GitLab), "1" or their own name (Woodpecker), so the
// rule takes any value but the two that say no.
func Running() bool {
	switch os.Getenv("CI") {
	case "", "false", "0":
		return false
	}
	return true
}

// Skipf skips t with the message, or, under CI (Running), fails it with
// the message, since CI must run every test.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	if Running() {
		t.Fatalf(format+" (CI must run this test)", args...)
	}
	t.Skipf(format, args...)
}

// Outcome runs f with a t of its own and reports whether f skipped or
// failed it, without failing or skipping t: the tests of a helper that
// must fail under CI and skip elsewhere read both outcomes. Everything
// else (logs, cleanups, the environment) goes to t.
func Outcome(t testing.TB, f func(testing.TB)) (skipped, failed bool) {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.skipped, r.failed
}

// recorder is a testing.TB whose failures and skips are recorded, not
// passed on; FailNow and SkipNow end f's goroutine as testing's do.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Fail()         { r.failed = true }
func (r *recorder) Failed() bool  { return r.failed }
func (r *recorder) Skipped() bool { return r.skipped }
func (r *recorder) FailNow()      { r.failed = true; runtime.Goexit() }
func (r *recorder) SkipNow()      { r.skipped = true; runtime.Goexit() }

func (r *recorder) Error(args ...any) { r.Helper(); r.Log(args...); r.Fail() }
func (r *recorder) Fatal(args ...any) { r.Helper(); r.Log(args...); r.FailNow() }
func (r *recorder) Skip(args ...any)  { r.Helper(); r.Log(args...); r.SkipNow() }

func (r *recorder) Errorf(format string, args ...any) {
	r.Helper()
	r.Logf(format, args...)
	r.Fail()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Helper()
	r.Logf(format, args...)
	r.FailNow()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.Helper()
	r.Logf(format, args...)
	r.SkipNow()
}
