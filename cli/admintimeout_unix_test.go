//go:build unix

// Unix only: the test interrupts itself with SIGINT, which Windows cannot send.

package cli_test

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAuditFollowInterruptedWhileUnanswered: Ctrl-C ends `audit --follow`
// at once while a poll waits for an endpoint that does not answer, not
// after --timeout.
func TestAuditFollowInterruptedWhileUnanswered(t *testing.T) {
	api, _ := startFakeAuditAPI(t)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	p := newAdminProxy(t, srv.Listener.Addr().String())
	// No deadline of its own: only the signal ends it.
	stdout, stderr, done := followCLI(context.Background(), "audit", "--follow", "--interval=20ms", "--timeout=20s", p.address())
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "first") }, "the first event", stdout, stderr)
	p.set(func(p *adminProxy) { p.silent = true })
	waitFollowing(t, done, func() bool { held, _ := p.counts(); return held >= 1 }, "a poll left unanswered", stdout, stderr)
	// The follower catches SIGINT (signal.NotifyContext) from its start to
	// its end, which the first event shows it is within.
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("audit --follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("audit --follow waits for the unanswered poll after Ctrl-C")
	}
	cliWaitFor(t, func() bool { held, released := p.counts(); return released == held }, "the client to close the connection")
}
