// Command garbageload sends unauthenticated garbage to the sign-in
// endpoints of a real Caddy running caddy-sso and reports what it cost:
// the growth of the store file, the audit events and single-use IDs added,
// and every request that reached the identity providers (there must be
// none). It runs Caddy in this process, in front of a local OpenID
// provider and a local SAML IdP (idp/oidc/oidctest, idp/saml/samltest)
// that count the requests they get, all on loopback ports.
//
// Half the requests are OIDC callbacks, half SAML ACS posts, in these
// shapes (what anyone can send, without having begun a sign-in):
//
//	oidc  random state and code; the same with a flow cookie named for that
//	      state but holding garbage; an error response; no parameters
//	saml  random bytes as SAMLResponse; a well-formed unsigned Response with
//	      a RelayState of the gateway's form and a forged flow cookie named
//	      for it; an unsolicited well-formed Response; a value that is not
//	      base64
//
// It exits non-zero when the store grew by 1 MiB or more, when a single-use
// ID, session or user was added, when more audit events were added than
// the budget for refusals of no sign-in of this browser allows
// (signin.DefaultUnboundAuditPerMinute in each minute the run touched), or
// when an IdP got a request.
//
//	go run ./bench/garbageload -n 10000 -c 8 -timeout 3m
package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

func main() {
	n := flag.Int("n", 10000, "garbage requests to send (half OIDC callbacks, half SAML ACS posts)")
	conc := flag.Int("c", 8, "concurrent connections")
	timeout := flag.Duration("timeout", 3*time.Minute, "stop sending after this long")
	flag.Parse()
	if err := run(*n, *conc, *timeout); err != nil {
		log.Fatal(err)
	}
}

// figures is what the store holds, read from the running app.
type figures struct {
	fileBytes int64
	audit     int
	consumed  int
	sessions  int
	users     int
}

func run(n, conc int, timeout time.Duration) error {
	dir, err := os.MkdirTemp("", "sso-garbage-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer op.Close()
	sp, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sp.Close()

	port, _, err := testport.Pick() // held until the process exits
	if err != nil {
		return err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	op.RegisterClient(oidctest.Client{ID: "garbage", Secret: "garbage-secret", RedirectURIs: []string{base + "/.sso/oidc/gbo/callback"}})
	dbPath := filepath.Join(dir, "sso.db")
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	http_port %[1]d
	storage file_system %[2]s/caddy
	log {
		output discard
	}
	sso {
		store bolt %[3]s
		idp gbo oidc {
			issuer %[4]s
			client_id garbage
			client_secret garbage-secret
			jit
		}
		idp gbs saml {
			metadata_url %[5]s
			jit
		}
	}
}

%[6]s {
	sso gbo gbs {
		default_idp gbo
	}
	respond "protected"
}
`, port, dir, dbPath, op.Issuer, sp.MetadataURL(), base)
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return fmt.Errorf("adapting the Caddyfile: %w", err)
	}
	if err := caddy.Load(adapted, true); err != nil {
		return fmt.Errorf("starting Caddy: %w", err)
	}
	defer caddy.Stop() //nolint:errcheck // best effort at exit
	if err := waitListening(port); err != nil {
		return err
	}
	// The SAML IdP knows the SP, as after an administrator registered it.
	md, err := get(base + "/.sso/saml/gbs/metadata")
	if err != nil {
		return err
	}
	if err := sp.RegisterServiceProvider(md); err != nil {
		return err
	}
	// The gateway fetches the SAML IdP's metadata, and checks both IdPs,
	// in the background at start; count only what comes after, once the
	// IdPs have had no request for a while.
	for deadline := time.Now().Add(10 * time.Second); sp.Requests(samltest.PathMetadata) == 0; {
		if time.Now().After(deadline) {
			return errors.New("the gateway did not fetch the SAML IdP's metadata")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for last := idpRequests(op, sp); ; {
		time.Sleep(300 * time.Millisecond)
		now := idpRequests(op, sp)
		if maps.Equal(now, last) {
			break
		}
		last = now
	}
	db, err := runningStore()
	if err != nil {
		return err
	}
	before, err := measure(db, dbPath)
	if err != nil {
		return err
	}
	idpBefore := idpRequests(op, sp)

	fmt.Printf("garbage load: %d requests (%d OIDC callbacks, %d SAML ACS posts), %d connections, at most %s, against %s\n",
		n, n-n/2, n/2, conc, timeout, base)
	fmt.Printf("before: store %s, %d audit events, %d single-use IDs, %d sessions, %d users\n",
		size(before.fileBytes), before.audit, before.consumed, before.sessions, before.users)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	var (
		next     atomic.Int64
		done     atomic.Int64
		mu       sync.Mutex
		statuses = map[string]int{}
		failures int
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req, kind := garbage(ctx, base, i)
				resp, err := client.Do(req)
				mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						failures++
					}
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					statuses[fmt.Sprintf("%s %d", kind, resp.StatusCode)]++
				}
				mu.Unlock()
				if d := done.Add(1); d%1000 == 0 {
					fmt.Printf("  %6d sent, %5.1fs, %.0f requests/s\n", d, time.Since(start).Seconds(), float64(d)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sent := int(done.Load())

	// Let background work (last-seen flush, housekeeping) settle, then
	// read the store while it is open and once more after Caddy stopped.
	time.Sleep(200 * time.Millisecond)
	after, err := measure(db, dbPath)
	if err != nil {
		return err
	}
	idpAfter := idpRequests(op, sp)
	if err := caddy.Stop(); err != nil {
		return fmt.Errorf("stopping Caddy: %w", err)
	}
	closed, err := os.Stat(dbPath)
	if err != nil {
		return err
	}

	fmt.Printf("sent %d requests in %.1fs (%.0f requests/s), %d transport failures\n", sent, elapsed.Seconds(), float64(sent)/elapsed.Seconds(), failures)
	var keys []string
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-12s %6d\n", k, statuses[k])
	}
	growth := after.fileBytes - before.fileBytes
	fmt.Printf("after: store %s (%+d bytes; %s once Caddy stopped), %d audit events (%+d), %d single-use IDs (%+d), %d sessions (%+d), %d users (%+d)\n",
		size(after.fileBytes), growth, size(closed.Size()), after.audit, after.audit-before.audit,
		after.consumed, after.consumed-before.consumed, after.sessions, after.sessions-before.sessions,
		after.users, after.users-before.users)
	var reached []string
	for path, c := range idpAfter {
		if d := c - idpBefore[path]; d != 0 {
			reached = append(reached, fmt.Sprintf("%s: %d", path, d))
		}
	}
	sort.Strings(reached)
	if len(reached) == 0 {
		fmt.Println("identity providers: no request")
	} else {
		fmt.Printf("identity providers: %s\n", strings.Join(reached, ", "))
	}

	var problems []string
	if sent < n {
		problems = append(problems, fmt.Sprintf("only %d of %d requests sent within %s", sent, n, timeout))
	}
	if growth >= 1<<20 || closed.Size()-before.fileBytes >= 1<<20 {
		problems = append(problems, "the store grew by 1 MiB or more")
	}
	// Such refusals are audited within a budget per minute (signin.Refusals):
	// a run of e minutes touches at most e+2 of the budget's minutes.
	auditBudget := signin.DefaultUnboundAuditPerMinute * (int(elapsed/time.Minute) + 2)
	if added := after.audit - before.audit; added > auditBudget {
		problems = append(problems, fmt.Sprintf("garbage wrote %d audit events, over the budget of %d", added, auditBudget))
	}
	if after.consumed != before.consumed || after.sessions != before.sessions || after.users != before.users {
		problems = append(problems, "garbage wrote to the store")
	}
	if len(reached) > 0 {
		problems = append(problems, "garbage reached an identity provider")
	}
	if failures > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed", failures))
	}
	if len(problems) > 0 {
		return errors.New("FAIL: " + strings.Join(problems, "; "))
	}
	fmt.Println("PASS: the store grew by less than 1 MiB, nothing was written but audit events within their budget, no request reached an IdP")
	return nil
}

// garbage is request i: OIDC callbacks for even i, SAML ACS posts for odd.
func garbage(ctx context.Context, base string, i int) (*http.Request, string) {
	if i%2 == 0 {
		state, code := random(32), random(24)
		q := url.Values{"state": {state}, "code": {code}}
		shape := i / 2 % 4
		switch shape {
		case 2:
			q = url.Values{"state": {state}, "error": {"access_denied"}}
		case 3:
			q = url.Values{}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/.sso/oidc/gbo/callback?"+q.Encode(), nil)
		req.Header.Set("Accept", "text/html")
		if shape == 1 {
			req.AddCookie(&http.Cookie{Name: flowCookieName(req, "oidc/gbo/"+state), Value: random(120)})
		}
		return req, fmt.Sprintf("oidc/%d", shape)
	}
	shape := i / 2 % 4
	form := url.Values{}
	relay := strings.ToUpper(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(randomBytes(16)))[:26]
	switch shape {
	case 0:
		form.Set("SAMLResponse", base64.StdEncoding.EncodeToString(randomBytes(600)))
	case 1:
		form.Set("SAMLResponse", base64.StdEncoding.EncodeToString(unsignedResponse(base, "_"+random(20))))
		form.Set("RelayState", relay)
	case 2:
		form.Set("SAMLResponse", base64.StdEncoding.EncodeToString(unsignedResponse(base, "")))
	case 3:
		form.Set("SAMLResponse", "%%% not base64 %%%")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/.sso/saml/gbs/acs", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	if shape == 1 {
		req.AddCookie(&http.Cookie{Name: flowCookieName(req, "saml/gbs/login/"+relay), Value: random(160)})
	}
	return req, fmt.Sprintf("saml/%d", shape)
}

// unsignedResponse is a well-formed SAML Response a forger can write: no
// signature, a fresh assertion ID, answering inResponseTo (or unsolicited).
func unsignedResponse(base, inResponseTo string) []byte {
	now := time.Now().UTC().Format(time.RFC3339)
	irt := ""
	if inResponseTo != "" {
		irt = ` InResponseTo="` + inResponseTo + `"`
	}
	return []byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_` + random(20) + `" Version="2.0" IssueInstant="` + now + `" Destination="` + base + `/.sso/saml/gbs/acs"` + irt + `>` +
		`<saml:Issuer>https://forger.example/</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
		`<saml:Assertion ID="_` + random(20) + `" Version="2.0" IssueInstant="` + now + `"><saml:Issuer>https://forger.example/</saml:Issuer>` +
		`<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">` + random(12) + `</saml:NameID></saml:Subject>` +
		`<saml:AttributeStatement><saml:Attribute Name="email"><saml:AttributeValue>admin@example.com</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>` +
		`</saml:Assertion></samlp:Response>`)
}

// flowCookieName is the name the gateway gives the flow cookie of flowID
// (public: it depends on no key), which a forger can compute.
var namer = func() *idp.FlowCookies {
	f, err := idp.NewFlowCookies(randomBytes(32))
	if err != nil {
		panic(err)
	}
	return f
}()

func flowCookieName(r *http.Request, flowID string) string { return namer.CookieName(r, flowID) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func random(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n))[:n] }

func runningStore() (store.Store, error) {
	app, err := caddy.ActiveContext().AppIfConfigured("sso")
	if err != nil {
		return nil, err
	}
	db := app.(*caddymodule.App).Store()
	if db == nil {
		return nil, errors.New("the sso app has no store")
	}
	return db, nil
}

func measure(db store.Store, path string) (figures, error) {
	var f figures
	st, err := os.Stat(path)
	if err != nil {
		return f, err
	}
	f.fileBytes = st.Size()
	err = db.View(context.Background(), func(tx store.Tx) error {
		c, err := tx.Counts()
		if err != nil {
			return err
		}
		f.audit, f.sessions, f.users = c.AuditEvents, c.Sessions, c.Users
		return tx.ForEachConsumed(func(string, string, time.Time) error { f.consumed++; return nil })
	})
	return f, err
}

// idpRequests counts the requests each IdP endpoint got so far.
func idpRequests(op *oidctest.Server, sp *samltest.Server) map[string]int {
	out := map[string]int{}
	for _, p := range []string{oidctest.PathDiscovery, oidctest.PathAuthorize, oidctest.PathToken, oidctest.PathUserinfo, oidctest.PathJWKS, oidctest.PathEndSession} {
		out["oidc "+p] = op.Requests(p)
	}
	for _, p := range []string{samltest.PathMetadata, samltest.PathSSO, samltest.PathLogin, samltest.PathSLO, samltest.PathIdPInitiated, samltest.PathLogout} {
		out["saml "+p] = sp.Requests(p)
	}
	return out
}

func size(b int64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }

func waitListening(port int) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("caddy did not start listening")
}

func get(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return b, err
}
