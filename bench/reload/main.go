// Command reload counts the requests that fail while Caddy reloads its
// configuration under load: it runs a Caddy process (cmd/caddy) with the
// sso handler in front of an upstream, signs in once over OIDC, loads the
// protected site with wrk carrying that session (wrk retries nothing, so
// every dropped connection counts), and meanwhile runs `caddy reload`
// -reloads times with a Caddyfile that changes each time. It prints wrk's
// totals: requests, socket errors by kind, non-2xx answers.
//
//	go run ./bench/reload                                  # 20 reloads, Caddy's defaults
//	go run ./bench/reload -global 'grace_period 10s'       # with a global option
//
// bench/reload.sh runs it for each setting docs/operations.md compares.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddyproc"
	"github.com/caddy-sso/caddy-sso/internal/stresstest"
)

func main() {
	bin := flag.String("caddy", "", "Caddy binary (default: build ./cmd/caddy)")
	reloads := flag.Int("reloads", 20, "configuration reloads")
	every := flag.Duration("every", 500*time.Millisecond, "time between reloads")
	conns := flag.Int("connections", 32, "wrk connections")
	global := flag.String("global", "", "extra global option lines for the Caddyfile, ';'-separated")
	site := flag.String("site", "", "extra directives for the protected route, ';'-separated")
	client := flag.String("client", "wrk", "load generator: wrk (retries nothing), wrk-close (a new connection per request), "+
		"or go (Go's HTTP client, which like browsers resends a GET whose reused connection was closed before an answer)")
	flag.Parse()
	if err := run(*bin, *reloads, *every, *conns, *global, *site, *client); err != nil {
		log.Fatal("reload: ", err)
	}
}

func lines(s, indent string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, ";") {
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString(indent + l + "\n")
		}
	}
	return b.String()
}

func run(bin string, reloads int, every time.Duration, conns int, global, site, client string) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed (apt-get install -y wrk)")
	}
	dir, err := os.MkdirTemp("", "sso-reload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		fmt.Println("building ./cmd/caddy ...")
		if bin, err = caddyproc.Build(context.Background()); err != nil {
			return err
		}
	}
	w, err := stresstest.NewWorld(bin, dir, "")
	if err != nil {
		return err
	}
	defer w.Close()
	w.LogLevel = "WARN"
	w.Global = lines(global, "\t")
	baseSite := lines(site, "\t\t")
	w.Site = baseSite
	if err := w.Start(); err != nil {
		return err
	}
	ctx := context.Background()
	w.AddUser(stresstest.User{Username: "load", Password: "pw", Subject: "sub-load", Email: "load@example.com"})
	b := stresstest.NewBrowser(nil)
	if p, err := b.SignIn(ctx, w.Base, stresstest.OIDCName, "load", "pw", "/"); err != nil || p.Status != 200 {
		return fmt.Errorf("sign-in: %v %d %s", err, p.Status, p.Title())
	}
	cookie := b.SessionCookie(w.Base)

	duration := time.Duration(reloads+2) * every
	fmt.Printf("%s: %d connections for %s; %d reloads every %s; global options %q\n", client, conns, duration.Round(time.Second), reloads, every, strings.TrimSpace(w.Global))
	var result func() (wrkResult, error)
	switch client {
	case "wrk", "wrk-close":
		args := []string{"-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(duration.Seconds()+0.999)),
			"-H", "Cookie: " + cookie, "-H", "Accept: application/json"}
		if client == "wrk-close" {
			args = append(args, "-H", "Connection: close")
		}
		wrk := exec.Command("wrk", append(args, w.Base+"/load")...)
		var out strings.Builder
		wrk.Stdout, wrk.Stderr = &out, &out
		if err := wrk.Start(); err != nil {
			return err
		}
		result = func() (wrkResult, error) {
			if err := wrk.Wait(); err != nil {
				return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out.String())
			}
			return parseWrk(out.String()), nil
		}
	case "go":
		result = goLoad(w.Base+"/load", cookie, conns, duration)
	default:
		return fmt.Errorf("unknown -client %q", client)
	}
	cfg := filepath.Join(dir, "Caddyfile.reload")
	time.Sleep(every)
	failedReloads := 0
	for i := range reloads {
		// A different config each time: the handler and its routes are
		// provisioned anew, as an operator's edit would.
		w.Site = baseSite + fmt.Sprintf("\t\theader X-Config %d\n", i)
		if err := os.WriteFile(cfg, []byte(w.Caddyfile()), 0o600); err != nil {
			return err
		}
		if out, err := w.Caddy.Command(ctx, "reload", "--config", cfg, "--adapter", "caddyfile",
			"--address", fmt.Sprintf("127.0.0.1:%d", w.AdminPort)); err != nil {
			failedReloads++
			fmt.Printf("reload %d failed: %v\n%s\n", i+1, err, out)
		}
		time.Sleep(every)
	}
	r, err := result()
	if err != nil {
		return err
	}
	fmt.Printf("requests %d, socket errors: connect %d, read %d, write %d, timeout %d; non-2xx %d; failed %d (%.4f%%); reloads failed %d\n",
		r.requests, r.connect, r.read, r.write, r.timeout, r.non2xx, r.failed(), 100*float64(r.failed())/float64(max(r.requests, 1)), failedReloads)
	return nil
}

type wrkResult struct {
	requests, connect, read, write, timeout, non2xx int
}

func (r wrkResult) failed() int { return r.connect + r.read + r.write + r.timeout + r.non2xx }

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func parseWrk(s string) wrkResult {
	var r wrkResult
	atoi := func(v string) int { n, _ := strconv.Atoi(v); return n }
	if m := wrkRequests.FindStringSubmatch(s); m != nil {
		r.requests = atoi(m[1])
	}
	if m := wrkSocket.FindStringSubmatch(s); m != nil {
		r.connect, r.read, r.write, r.timeout = atoi(m[1]), atoi(m[2]), atoi(m[3]), atoi(m[4])
	}
	if m := wrkNon2xx.FindStringSubmatch(s); m != nil {
		r.non2xx = atoi(m[1])
	}
	return r
}

// goLoad runs conns goroutines that GET url with the session for d on one
// pooled Go client and counts failures as wrk does: errors as read errors,
// answers other than 200 as non-2xx.
func goLoad(url, cookie string, conns int, d time.Duration) func() (wrkResult, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: 10 * time.Second}
	var requests, errs, non2xx atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Cookie", cookie)
				req.Header.Set("Accept", "application/json")
				resp, err := client.Do(req)
				requests.Add(1)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					non2xx.Add(1)
				}
			}
		})
	}
	return func() (wrkResult, error) {
		wg.Wait()
		return wrkResult{requests: int(requests.Load()), read: int(errs.Load()), non2xx: int(non2xx.Load())}, nil
	}
}
