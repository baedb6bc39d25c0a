// Command scimload drives a SCIM endpoint at a fixed request rate with the
// lifecycle Entra and Okta run for every user (look up by userName,
// create, read, update, deactivate, delete) and fails unless every
// request got the status it should and the rate was held.
//
//	go run ./provision/scim/scimload -url https://scim.example.com/scim/v2 \
//		-token "$SCIM_TOKEN_ENTRA" -rate 25 -duration 30s
//
// It creates users named scimload-<run>-<n>@example.invalid and deletes
// each before it exits. -insecure skips TLS verification, for a local
// Caddy with its internal CA only.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scimload:", err)
		os.Exit(1)
	}
}

type config struct {
	base     string
	token    string
	rate     float64
	duration time.Duration
	workers  int
	client   *http.Client
	run      string
}

func run() error {
	var c config
	insecure := false
	flag.StringVar(&c.base, "url", "", "SCIM base URL, e.g. https://scim.example.com/scim/v2")
	flag.StringVar(&c.token, "token", os.Getenv("SCIM_TOKEN"), "bearer token (default $SCIM_TOKEN)")
	flag.Float64Var(&c.rate, "rate", 25, "requests per second")
	flag.DurationVar(&c.duration, "duration", 30*time.Second, "how long to keep the rate")
	flag.IntVar(&c.workers, "workers", 8, "concurrent user lifecycles")
	flag.BoolVar(&insecure, "insecure", false, "skip TLS verification (local test CA only)")
	flag.Parse()
	if c.base == "" || c.token == "" || c.rate <= 0 || c.workers <= 0 {
		flag.Usage()
		return errors.New("-url, -token, a positive -rate and -workers are required")
	}
	c.base = strings.TrimRight(c.base, "/")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = c.workers
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opt-in, for a local test CA
	}
	c.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var b [4]byte
	_, _ = rand.Read(b[:])
	c.run = hex.EncodeToString(b[:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res := drive(ctx, &c)
	res.print(os.Stdout, c.duration)
	achieved := float64(res.count()) / c.duration.Seconds()
	switch {
	case len(res.failures) > 0:
		return fmt.Errorf("%d of %d requests failed", len(res.failures), res.count())
	case achieved < 0.95*c.rate:
		return fmt.Errorf("held %.1f requests/s, below 95%% of %.1f", achieved, c.rate)
	}
	return nil
}

// results collects latencies and failures from all workers.
type results struct {
	mu        sync.Mutex
	latencies []time.Duration
	failures  []string
}

func (r *results) add(d time.Duration, failure string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latencies = append(r.latencies, d)
	if failure != "" {
		r.failures = append(r.failures, failure)
	}
}

func (r *results) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.latencies)
}

func (r *results) print(w io.Writer, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	pct := func(p float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(p*float64(len(l))))]
	}
	fmt.Fprintf(w, "requests %d in %s (%.1f/s), failures %d\n", len(l), d, float64(len(l))/d.Seconds(), len(r.failures))
	fmt.Fprintf(w, "latency p50 %s p95 %s p99 %s max %s\n", pct(0.50), pct(0.95), pct(0.99), pct(1))
	for i, f := range r.failures {
		if i == 20 {
			fmt.Fprintf(w, "... and %d more\n", len(r.failures)-20)
			break
		}
		fmt.Fprintln(w, "FAIL", f)
	}
}

// drive hands out one ticket per request at the configured rate; workers
// run user lifecycles, taking a ticket before each request. When time is
// up, workers finish their lifecycle without tickets so that no test user
// is left behind.
func drive(ctx context.Context, c *config) *results {
	res := &results{}
	tickets := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Duration(float64(time.Second) / c.rate))
		defer tick.Stop()
		end := time.After(c.duration)
		for {
			select {
			case <-ctx.Done():
				return
			case <-end:
				return
			case <-tick.C:
				select {
				case tickets <- struct{}{}:
				default: // every worker busy: the missed request shows in the rate
				}
			}
		}
	}()
	var seq atomic.Int64
	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-tickets:
				}
				lifecycle(c, res, seq.Add(1), tickets, done)
			}
		})
	}
	wg.Wait()
	return res
}

// lifecycle runs one user through what a directory does to it. It already
// holds the ticket for its first request.
func lifecycle(c *config, res *results, n int64, tickets <-chan struct{}, done <-chan struct{}) {
	name := fmt.Sprintf("scimload-%s-%d@example.invalid", c.run, n)
	wait := func() bool {
		select {
		case <-tickets:
			return true
		case <-done:
			return false
		}
	}
	filter := url.QueryEscape(fmt.Sprintf("userName eq %q", name))
	c.do(res, "GET", "/Users?filter="+filter, "", http.StatusOK)
	if !wait() {
		return
	}
	body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"externalId":"scimload-%s-%d",
		"active":true,"name":{"givenName":"Load","familyName":"Test"},"emails":[{"value":%q,"type":"work","primary":true}]}`,
		name, c.run, n, name)
	created := c.do(res, "POST", "/Users", body, http.StatusCreated)
	id, _ := created["id"].(string)
	if id == "" {
		return
	}
	steps := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/Users/" + id, "", http.StatusOK},
		{"PATCH", "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"name.familyName","value":"Updated"}]}`, http.StatusOK},
		{"PATCH", "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`, http.StatusOK},
	}
	for _, s := range steps {
		if !wait() {
			break
		}
		c.do(res, s.method, s.path, s.body, s.want)
	}
	wait() // the delete runs even after time is up
	c.do(res, "DELETE", "/Users/"+id, "", http.StatusNoContent)
}

// do sends one request and records it; it returns the decoded body.
func (c *config) do(res *results, method, path, body string, want int) map[string]any {
	req, err := http.NewRequest(method, c.base+path, bytes.NewBufferString(body))
	if err != nil {
		res.add(0, fmt.Sprintf("%s %s: %v", method, path, err))
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		res.add(time.Since(start), fmt.Sprintf("%s %s: %v", method, path, err))
		return nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != want {
		res.add(took, fmt.Sprintf("%s %s: status %d, want %d: %.200s", method, path, resp.StatusCode, want, raw))
		return nil
	}
	res.add(took, "")
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}
