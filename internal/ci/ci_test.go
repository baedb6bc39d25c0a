package ci_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/ci"
)

func TestRunning(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{"", false},
		{"false", false},
		{"0", false},
		{"true", true},
		{"1", true},
		{"woodpecker", true},
	} {
		t.Run("CI="+tc.value, func(t *testing.T) {
			t.Setenv("CI", tc.value)
			if got := ci.Running(); got != tc.want {
				t.Errorf("Running() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSkipf: Skipf fails the test under CI and skips it elsewhere.
func TestSkipf(t *testing.T) {
	for _, tc := range []struct {
		value    string
		wantFail bool
	}{
		{"", false},
		{"false", false},
		{"true", true},
		{"woodpecker", true},
	} {
		t.Run("CI="+tc.value, func(t *testing.T) {
			t.Setenv("CI", tc.value)
			skipped, failed := ci.Outcome(t, func(t testing.TB) {
				ci.Skipf(t, "no %s here", "tool")
				t.Error("Skipf returned")
			})
			if failed != tc.wantFail || skipped == tc.wantFail {
				t.Errorf("skipped=%v failed=%v, want failed=%v and the other not", skipped, failed, tc.wantFail)
			}
		})
	}
}

// TestOutcome: the recorder ends f where testing would, and passes
// nothing on to t (this test would fail or skip otherwise).
func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		name               string
		f                  func(testing.TB)
		wantSkip, wantFail bool
	}{
		{"pass", func(testing.TB) {}, false, false},
		{"Errorf goes on", func(t testing.TB) { t.Errorf("e"); t.Log("still here") }, false, true},
		{"Fatal", func(t testing.TB) { t.Fatal("f"); panic("Fatal returned") }, false, true},
		{"Fatalf", func(t testing.TB) { t.Fatalf("f"); panic("Fatalf returned") }, false, true},
		{"Skip", func(t testing.TB) { t.Skip("s"); panic("Skip returned") }, true, false},
		{"Skipf", func(t testing.TB) { t.Skipf("s"); panic("Skipf returned") }, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skipped, failed := ci.Outcome(t, tc.f)
			if skipped != tc.wantSkip || failed != tc.wantFail {
				t.Errorf("skipped=%v failed=%v, want %v %v", skipped, failed, tc.wantSkip, tc.wantFail)
			}
		})
	}
}
