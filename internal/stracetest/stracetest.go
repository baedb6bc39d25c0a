// Package stracetest reads the system calls of a test's child process
// under strace, for the tests that prove an answer comes only after the
// fsync that makes it durable (docs/operations.md, "Limits and behaviour
// under failure"). .ci/run installs strace; where it is missing or ptrace
// is not allowed, those tests skip, and under CI (internal/ci) fail: the
// durability proofs must not drop out of a CI run unseen.
package stracetest

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/ci"
)

// Require skips t unless strace can trace here; under CI it fails t.
func Require(t testing.TB) {
	t.Helper()
	if err := exec.Command("strace", "-qq", "-o", os.DevNull, "true").Run(); err != nil { //nolint:gosec // G204: fixed arguments
		ci.Skipf(t, "strace cannot trace here (not installed, or ptrace not allowed): %v", err)
	}
}

// Lines returns strace -f's output as lines, each call another thread
// interrupted ("PID call(args <unfinished ...>", later "PID <... call
// resumed>rest") joined back into one line, where the call began: on a
// busy machine an fsync or openat is split so, and a test that reads
// whole lines would miss it.
func Lines(raw string) []string {
	var out []string
	pending := map[string]int{} // PID -> its unfinished call's line in out
	for _, line := range strings.Split(raw, "\n") {
		pid, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimLeft(rest, " ")
		if head, ok := strings.CutSuffix(rest, " <unfinished ...>"); ok {
			pending[pid] = len(out)
			out = append(out, pid+" "+head)
			continue
		}
		if i, ok := pending[pid]; ok && strings.HasPrefix(rest, "<... ") {
			_, tail, _ := strings.Cut(rest, " resumed>")
			out[i] += tail
			delete(pending, pid)
			continue
		}
		out = append(out, line)
	}
	return out
}
