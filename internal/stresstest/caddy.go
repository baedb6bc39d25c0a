// Package stresstest runs caddy-sso as a separate process, the Caddy binary
// of cmd/caddy, so that it can be killed, restarted on the same store,
// starved of disk and reloaded under load; and drives it as browsers and
// SCIM clients do. The tests of this package (crash consistency, full and
// read-only disks, damaged store files, a degraded IdP) and the long-run
// programs under bench/ (soak, a million users, reloads under load) share
// it. docs/operations.md, "Limits and behaviour under failure", has what
// they measured.
//
// Unlike internal/caddytest, which loads Caddy into the test process, a
// Caddy here is a process of its own: several run side by side, and a
// kill -9 is real.
package stresstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Caddy is one Caddy process run from a Caddyfile. Its output (Caddy's
// logs, JSON lines on stderr) goes to Dir/caddy.out, appended across
// restarts.
type Caddy struct {
	Bin  string
	Dir  string // the Caddyfile, the output, Caddy's own storage
	Port int    // where it serves; Start waits until it listens there
	// Env is added to the environment (NAME=value), e.g. secrets the
	// Caddyfile reads with {env.NAME}.
	Env []string
	// SysProcAttr, when set, is Caddy's: with a Credential, say, it runs
	// Caddy as another user (the caller must be root), as a service
	// account would.
	SysProcAttr *syscall.SysProcAttr

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // how the process ended
}

// OutputPath is the file Caddy's output goes to.
func (c *Caddy) OutputPath() string { return filepath.Join(c.Dir, "caddy.out") }

// Output returns what Caddy has written so far.
func (c *Caddy) Output() string {
	b, _ := os.ReadFile(c.OutputPath())
	return string(b)
}

// env is the process environment: HOME and the XDG directories inside Dir,
// so that Caddy's data (autosave, certificates, the default store path)
// never touches the user's.
func (c *Caddy) env() []string {
	return append(os.Environ(), append([]string{"HOME=" + c.Dir, "XDG_CONFIG_HOME=" + c.Dir + "/config",
		"XDG_DATA_HOME=" + c.Dir + "/data"}, c.Env...)...)
}

// Launch writes the Caddyfile and starts `caddy run` on it, without
// waiting for it to listen.
func (c *Caddy) Launch(caddyfile string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		select {
		case <-c.exited:
		default:
			return errors.New("caddy is already running")
		}
	}
	cfg := filepath.Join(c.Dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o600); err != nil {
		return err
	}
	out, err := os.OpenFile(c.OutputPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.Bin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = c.env()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = c.SysProcAttr
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return err
	}
	exited := make(chan struct{})
	c.cmd, c.exited, c.err = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		_ = out.Close()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Start launches Caddy and waits until it listens on Port, failing with
// its output when it exits first.
func (c *Caddy) Start(caddyfile string) error {
	if err := c.Launch(caddyfile); err != nil {
		return err
	}
	return c.WaitListening(30 * time.Second)
}

// WaitListening waits until Port accepts connections.
func (c *Caddy) WaitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	addr := fmt.Sprintf("127.0.0.1:%d", c.Port)
	for {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-c.Exited():
			return fmt.Errorf("caddy exited (%v) before listening on %s:\n%s", c.ExitErr(), addr, tail(c.Output(), 4000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("caddy not listening on %s after %s:\n%s", addr, timeout, tail(c.Output(), 4000))
		}
	}
}

// Exited is closed when the process has ended (at once if it never ran).
func (c *Caddy) Exited() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exited == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return c.exited
}

// ExitErr is how the process ended (nil for exit status 0).
func (c *Caddy) ExitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// PID is the process ID (0 before Launch).
func (c *Caddy) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

func (c *Caddy) signal(sig syscall.Signal, wait time.Duration) error {
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-c.Exited():
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-c.Exited():
		return nil
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-c.Exited()
		return fmt.Errorf("caddy did not exit within %s of %v; killed", wait, sig)
	}
}

// Kill sends SIGKILL, as a crash or the OOM killer would, and waits for
// the process to be gone.
func (c *Caddy) Kill() error { return c.signal(syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM, as systemd does, and waits up to 30 s for a clean
// exit (then kills).
func (c *Caddy) Stop() error { return c.signal(syscall.SIGTERM, 30*time.Second) }

// Command runs the same binary with args (e.g. "sso", "check", "--store",
// path) in Caddy's environment and returns its combined output.
func (c *Caddy) Command(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
