//go:build unix

// Unix only: the Traefik build is serialized across test processes with flock (build_test.go).

package traefik_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/ci"
)

// traefikVersion is the Traefik the test builds and runs. v3.7.12 is the
// newest release whose dependencies the Go module proxy serves here
// (v3.7.13's lego v5.4.1 needs DNS provider modules it does not); it has
// aliasHeadersStrategy (v3.7.12 and later), which traefik.yml sets.
const traefikVersion = "v3.7.12"

// traefikGoMod builds Traefik's command from the module proxy. Traefik's
// own go.mod cannot be used as is (go install refuses replace
// directives), so this module requires Traefik and repeats its replace and
// exclude directives, with two changes:
//   - github.com/traefik/traefik/dynamic/ext, a nested module of Traefik's
//     repository replaced by ./pkg/config/dynamic/ext, is not a module the
//     proxy can serve (its path does not match its directory); ./ext holds
//     its source (traefikExt).
//   - the go-http-auth fork is the one Traefik v3.7.10 uses: the proxy here
//     does not serve the newer one of v3.7.11 and later. Only the BasicAuth
//     middleware uses it, with the same code in v3.7.10 and v3.7.12.
var traefikGoMod = `module traefikbuild

go 1.26.0

require github.com/traefik/traefik/v3 ` + traefikVersion + `

replace github.com/traefik/traefik/dynamic/ext => ./ext

replace (
	github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
	github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59
)

exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible
`

// traefikExt is Traefik's pkg/config/dynamic/ext (MIT licence), verbatim:
// two empty extension points that its dynamic configuration embeds.
const (
	traefikExtGoMod = "module github.com/traefik/traefik/dynamic/ext\n\ngo 1.26.0\n"
	traefikExt      = `package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}
`
)

var traefikBuild struct {
	sync.Mutex
	path string
}

// traefikBinary returns a Traefik of traefikVersion, built from the module
// proxy into ${XDG_CACHE_HOME:-$HOME/.cache}/caddy-sso/traefik-<version>
// on first use (several minutes: it downloads about 600 MB of modules and
// compiles some 2,700 packages) and reused while `traefik version` says
// so. When it cannot be built the test is skipped, except in CI.
func traefikBinary(t *testing.T) string {
	t.Helper()
	traefikBuild.Lock()
	defer traefikBuild.Unlock()
	if traefikBuild.path != "" {
		return traefikBuild.path
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		ci.Skipf(t, "no cache directory for Traefik: %v", err)
	}
	dir := filepath.Join(cache, "caddy-sso", "traefik-"+traefikVersion)
	bin := filepath.Join(dir, "traefik")
	if err := os.MkdirAll(filepath.Join(dir, "src", "ext"), 0o755); err != nil {
		ci.Skipf(t, "Traefik's build directory: %v", err)
	}
	// Another test process may be building it.
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		ci.Skipf(t, "Traefik's build lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		ci.Skipf(t, "Traefik's build lock: %v", err)
	}
	if traefikBuilt(bin) {
		traefikBuild.path = bin
		return bin
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		ci.Skipf(t, "Traefik %s is built with go, which is not on PATH", traefikVersion)
	}
	sum, err := os.ReadFile(filepath.Join("testdata", "traefik-"+traefikVersion+".go.sum"))
	if err != nil {
		t.Fatalf("%v (a new version needs the go.sum its first build writes)", err)
	}
	for name, content := range map[string]string{"go.mod": traefikGoMod, "go.sum": string(sum), "ext/go.mod": traefikExtGoMod, "ext/ext.go": traefikExt} {
		if err := os.WriteFile(filepath.Join(dir, "src", name), []byte(content), 0o644); err != nil {
			ci.Skipf(t, "Traefik's build directory: %v", err)
		}
	}
	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-v", "-trimpath",
		"-ldflags", "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version="+traefikVersion,
		"-o", bin+".new", "github.com/traefik/traefik/v3/cmd/traefik")
	cmd.Dir = filepath.Join(dir, "src")
	// The checksums of every module the build downloads are in
	// testdata/traefik-<version>.go.sum (written by a build that checked
	// them all against sum.golang.org), which go build checks them
	// against without asking the checksum database: here its lookups
	// sometimes answer 404 (github.com/go-acme/esa-20240910/v3 v3.4.0,
	// for one), which failed a build without the file.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.StderrPipe()
	if err != nil {
		ci.Skipf(t, "go build: %v", err)
	}
	cmd.Stdout = cmd.Stderr
	t.Logf("building Traefik %s into %s (first run only: several minutes)", traefikVersion, dir)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		ci.Skipf(t, "go build: %v", err)
	}
	// go build -v names each package it compiles: a progress line every
	// 20 seconds, and the output's last lines if it fails.
	var (
		mu              sync.Mutex
		lines           []string
		downloads, pkgs int
	)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(20 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				mu.Lock()
				t.Logf("building Traefik: %s, %d modules downloaded, %d packages compiled", time.Since(start).Round(time.Second), downloads, pkgs)
				mu.Unlock()
			}
		}
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		mu.Lock()
		line := sc.Text()
		lines = append(lines, line)
		if strings.HasPrefix(line, "go: downloading ") {
			downloads++
		} else if !strings.Contains(line, " ") {
			pkgs++
		}
		mu.Unlock()
	}
	err = cmd.Wait()
	close(done)
	if err != nil {
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		ci.Skipf(t, "building Traefik %s from the Go module proxy failed after %s: %v\n%s", traefikVersion, time.Since(start).Round(time.Second), errors.Join(err, ctx.Err()), strings.Join(lines, "\n"))
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		ci.Skipf(t, "%v", err)
	}
	if !traefikBuilt(bin) {
		ci.Skipf(t, "the Traefik built in %s does not report version %s", dir, traefikVersion)
	}
	t.Logf("built Traefik %s in %s", traefikVersion, time.Since(start).Round(time.Second))
	traefikBuild.path = bin
	return bin
}

// traefikBuilt tells whether bin is a Traefik of traefikVersion.
func traefikBuilt(bin string) bool {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Version:" {
			return f[1] == traefikVersion
		}
	}
	return false
}
