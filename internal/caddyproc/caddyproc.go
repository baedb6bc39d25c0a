// Package caddyproc runs this repository's Caddy (cmd/caddy) as separate
// processes, as an operator runs instances: for the multi-instance tests
// (internal/clustertest) and the bench/ programs that time a real start.
// It knows nothing of testing, so that both can use it.
package caddyproc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build builds cmd/caddy of the module that holds the working directory
// and returns the binary's path. The binary lives in a directory of the
// temporary directory named after the module's location, so a later build
// finds it and go build relinks only when a source changed (seconds
// instead of most of a minute on a busy machine).
func Build(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the caddy-sso module")
	}
	root := filepath.Dir(gomod)
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "caddy-sso-bin-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// Process is one running Caddy.
type Process struct {
	Name string
	Dir  string // its Caddyfile and log (caddy.out: stdout and stderr)
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, once done is closed

	stopOnce sync.Once
}

// Start runs `caddy run` with the Caddyfile in dir (written there as
// Caddyfile) and env added to this process's environment. It returns at
// once; wait with WaitServing.
func Start(bin, name, dir, caddyfile string, env ...string) (*Process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(dir, "caddy.out"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cf, "--adapter", "caddyfile")
	// Caddy's own directories (autosave, certificates) stay in dir.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir+"/config", "XDG_DATA_HOME="+dir+"/data")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("start caddy %s: %w", name, err)
	}
	p := &Process{Name: name, Dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitServing polls url with GET until it answers with status want (any
// status when want is 0), the process exits, or ctx ends. header holds
// name, value pairs to send.
func (p *Process) WaitServing(ctx context.Context, url string, want int, header ...string) error {
	client := &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if want == 0 || resp.StatusCode == want {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("caddy %s exited (%v) before serving %s:\n%s", p.Name, p.err, url, p.Output())
		case <-ctx.Done():
			var last string // the last answer's status, or why there was none
			if err != nil {
				last = err.Error()
			} else {
				last = resp.Status
			}
			return fmt.Errorf("caddy %s did not serve %s (last: %s): %w\n%s", p.Name, url, last, ctx.Err(), p.Output())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Output is what the process wrote to stdout and stderr so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "caddy.out"))
	return string(b)
}

// Kill ends the process with SIGKILL, as a crash would (nothing flushed,
// no connection closed cleanly), and waits for it.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	})
}

// Stop asks the process to stop (SIGTERM: Caddy's graceful stop), waits up
// to timeout, then kills it.
func (p *Process) Stop(timeout time.Duration) {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(timeout):
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
	})
}
