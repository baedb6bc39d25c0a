package caddymodule_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// BenchmarkSCIMUserNameFilterThroughCaddy is the request Entra and Okta
// send before every create, GET /Users?filter=userName eq "…", through a
// real Caddy (loopback HTTP, keep-alive) over a bbolt store holding 1,000
// and 100,000 users. The cost per request is the same at both sizes: the
// filter is an index read, not a scan. It also reports Caddy's start-up
// time with that store and the latency percentiles.
//
//	go test -run '^$' -bench SCIMUserNameFilterThroughCaddy -benchtime 5000x ./caddymodule/
func BenchmarkSCIMUserNameFilterThroughCaddy(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint(n, "users"), func(b *testing.B) {
			g := newGateway(b)
			fillSCIMUsers(b, g.dir+"/sso.db", n)
			b.Setenv("CADDY_SSO_BENCH_SCIM_TOKEN", scimTokenEntra)
			cfg := g.caddyfile("\t\tidp entra oidc {\n\t\t\tissuer http://127.0.0.1:9/entra\n\t\t\tclient_id bench\n\t\t\tscim\n\t\t}\n",
				g.base+" {\n\tsso_scim {\n\t\tidp entra {env.CADDY_SSO_BENCH_SCIM_TOKEN}\n\t}\n}\n")
			start := time.Now()
			g.start(cfg)
			startup := time.Since(start)

			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			rng := rand.New(rand.NewPCG(1, 2))
			var lat []time.Duration
			for b.Loop() {
				f := url.PathEscape(fmt.Sprintf(`userName eq "USER%d@example.com"`, rng.IntN(n)))
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, g.base+"/scim/v2/Users?filter="+f, nil)
				req.Header.Set("Authorization", "Bearer "+scimTokenEntra)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"totalResults":1`) {
					b.Fatalf("%s: %s", resp.Status, body)
				}
			}
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) }
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
			b.ReportMetric(float64(startup.Milliseconds()), "startup-ms")
		})
	}
}

// fillSCIMUsers writes n users of IdP "entra", as SCIM creates them, in
// transactions of 10,000, and closes the file for Caddy to open.
func fillSCIMUsers(b *testing.B, path string, n int) {
	b.Helper()
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for from := 0; from < n; from += 10_000 {
		err := db.Update(context.Background(), func(tx store.Tx) error {
			for i := from; i < min(from+10_000, n); i++ {
				email := fmt.Sprintf("user%d@example.com", i)
				if err := tx.PutUser(&store.User{
					UserName: email, Email: email, FirstName: "First", LastName: fmt.Sprint("Last", i),
					Active: true, Source: store.SourceSCIM, IdP: "entra", ExternalID: fmt.Sprintf("oid-%08d", i),
					Emails: []store.Email{{Value: email, Type: "work", Primary: true}}, Created: t0, Updated: t0,
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
