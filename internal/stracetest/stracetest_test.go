package stracetest

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/ci"
)

func TestLinesJoinsResumedCalls(t *testing.T) {
	raw := "11 openat(AT_FDCWD, \"/d\", O_RDONLY <unfinished ...>\n" +
		"12    write(1, \"x\", 1) = 1\n" +
		"11 <... openat resumed>) = 7\n" +
		"11 fsync(7 <unfinished ...>\n" +
		"12 <... futex resumed>) = 0\n" +
		"11 <... fsync resumed>) = 0"
	want := []string{`11 openat(AT_FDCWD, "/d", O_RDONLY) = 7`, `12    write(1, "x", 1) = 1`, "11 fsync(7) = 0", "12 <... futex resumed>) = 0"}
	if got := Lines(raw); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRequireFailsUnderCI: where strace cannot run, Require skips, except
// under CI, where the durability tests must not drop out unseen.
func TestRequireFailsUnderCI(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
	}{
		{"", false},
		{"true", true},
		{"woodpecker", true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir()) // no strace here
			t.Setenv("CI", tc.ci)
			skipped, failed := ci.Outcome(t, func(t testing.TB) { Require(t) })
			if failed != tc.wantFail || skipped == tc.wantFail {
				t.Errorf("Require without strace: skipped=%v failed=%v, want failed=%v and the other not", skipped, failed, tc.wantFail)
			}
		})
	}
}
