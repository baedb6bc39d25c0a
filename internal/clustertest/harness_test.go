package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/caddyproc"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// caddyBinary builds cmd/caddy once per test binary.
var caddyBinary = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	return caddyproc.Build(ctx)
})

// The registrations at the test IdPs.
const (
	clientID     = "caddy-sso-cluster"
	clientSecret = "cluster-test-secret"
	scimToken    = "cluster-test-scim-token-0123456789"
)

// instanceCaddyfile is the one Caddyfile every instance runs. What differs
// between instances (ports, data directory, name) comes from the
// environment, as it would on two hosts. The site is named by its host,
// as a public site is: the public origin is then the balancer's, whose
// Host header (127.0.0.1:<balancer port>) reaches the instances unchanged
// and passes the site's host matcher.
const instanceCaddyfile = `{
` + instanceGlobals + `	sso {
		store postgres {env.SSO_DATABASE_URL} {
			pool_size 8
			statement_timeout %s
		}
		idp oidc oidc {
			issuer %s
			client_id %s
			client_secret {env.OIDC_CLIENT_SECRET}
			jit
			scim
		}
		idp saml saml {
			preset okta
			metadata_url %s
			jit
		}
	}
}

http://127.0.0.1:{$SSO_HTTP_PORT} {
	header X-Served-By {$SSO_INSTANCE}
	handle /healthz {
		respond "ok"
	}
	handle /scim/v2/* {
		sso_scim {
			idp oidc {env.SCIM_TOKEN}
		}
	}
	handle {
		sso oidc saml {
			default_idp oidc
			identity_jwt
		}
		reverse_proxy %s
	}
}
`

// instanceGlobals are the global options every instance's Caddyfile
// (instanceCaddyfile, refreshCaddyfile) opens with: its admin and HTTP
// ports and its data directory come from the environment.
const instanceGlobals = `	admin 127.0.0.1:{$SSO_ADMIN_PORT}
	persist_config off
	auto_https off
	default_bind 127.0.0.1
	http_port {$SSO_HTTP_PORT}
	storage file_system {$SSO_DATA}/caddy
	log {
		output file {$SSO_DATA}/caddy.log
		level INFO
	}
`

// balancerCaddyfile is the third Caddy: round robin over the instances,
// passing the Host header through (Caddy's default). A failed connection
// marks an instance down for a while (passive health check) and the
// request goes to the next; /healthz is checked every second as well.
const balancerCaddyfile = `{
	admin off
	persist_config off
	auto_https off
	default_bind 127.0.0.1
	storage file_system %[1]s/caddy
	log {
		output file %[1]s/caddy.log
		level WARN
	}
}

http://127.0.0.1:%[2]d {
	reverse_proxy %[3]s {
		lb_policy round_robin
		lb_try_duration 5s
		lb_try_interval 20ms
		fail_duration 30s
		health_uri /healthz
		health_interval 1s
	}
}
`

// cluster is instances of one Caddyfile on one database behind a
// round-robin balancer, with a real OpenID provider and SAML IdP.
type cluster struct {
	t        *testing.T
	dsn      string
	oidc     *oidctest.Server
	saml     *samltest.Server
	upstream *caddytest.EchoUpstream
	base     string // the balancer: the public origin users and IdPs see
	lbAddr   string
	lb       *caddyproc.Process
	names    []string
	inst     map[string]*instance
}

type instance struct {
	name  string
	addr  string // 127.0.0.1:port
	admin string // the admin endpoint's 127.0.0.1:port
	proc  *caddyproc.Process
	log   string // the path of its log file
}

// URL is the instance's own address for path, bypassing the balancer.
func (i *instance) URL(path string) string { return "http://" + i.addr + path }

// metrics returns what the instance's admin endpoint serves at /metrics.
func (i *instance) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + i.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("instance %s metrics: %d %v", i.name, resp.StatusCode, err)
	}
	return string(b)
}

// logged counts the instance's log lines whose message is msg and whose
// user_id field is userID.
func (i *instance) logged(t *testing.T, msg, userID string) int {
	t.Helper()
	n := 0
	for line := range strings.Lines(readFile(i.log)) {
		var l struct {
			Msg    string `json:"msg"`
			UserID string `json:"user_id"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg && l.UserID == userID {
			n++
		}
	}
	return n
}

// clusterOptions vary the cluster.
type clusterOptions struct {
	names            []string // instance names; default a, b
	statementTimeout string   // the store's statement_timeout; default the product's
	session          string   // the lines of a session { } block in sso; default none
}

// startCluster starts the IdPs, the upstream, the instances on dsn and the
// balancer, and stops them when the test ends.
func startCluster(t *testing.T, dsn string, opt clusterOptions) *cluster {
	t.Helper()
	bin, err := caddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	if opt.names == nil {
		opt.names = []string{"a", "b"}
	}
	if opt.statementTimeout == "" {
		// The product's bound, not a tighter one: these tests assert
		// what the instances agree on, and a CI machine running other
		// packages beside them can keep a first sign-in's answer from
		// the database over 3 s (TestTwoInstances' 50 concurrent
		// sign-ins did once). failover_test.go sets its own.
		opt.statementTimeout = postgres.DefaultStatementTimeout.String()
	}
	c := &cluster{t: t, dsn: dsn, names: opt.names, inst: map[string]*instance{}, upstream: caddytest.NewEchoUpstream(t)}
	c.oidc, err = oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.oidc.Close() })
	c.saml, err = samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.saml.Close() })

	lbPort := testport.For(t)
	c.lbAddr = fmt.Sprintf("127.0.0.1:%d", lbPort)
	c.base = "http://" + c.lbAddr
	c.oidc.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{c.base + "/.sso/oidc/oidc/callback"}})

	caddyfile := fmt.Sprintf(instanceCaddyfile, opt.statementTimeout, c.oidc.Issuer, clientID, c.saml.MetadataURL(), c.upstream.HostPort())
	if opt.session != "" {
		caddyfile = strings.Replace(caddyfile, "\tsso {\n", "\tsso {\n\t\tsession {\n"+opt.session+"\t\t}\n", 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var upstreams []string
	for _, name := range opt.names {
		port, admin := testport.For(t), testport.For(t)
		dir := filepath.Join(t.TempDir(), name)
		p, err := caddyproc.Start(bin, name, dir, caddyfile,
			"SSO_INSTANCE="+name, fmt.Sprintf("SSO_HTTP_PORT=%d", port), fmt.Sprintf("SSO_ADMIN_PORT=%d", admin),
			"SSO_DATA="+dir, "SSO_DATABASE_URL="+dsn, "OIDC_CLIENT_SECRET="+clientSecret, "SCIM_TOKEN="+scimToken)
		if err != nil {
			t.Fatal(err)
		}
		in := &instance{name: name, addr: fmt.Sprintf("127.0.0.1:%d", port), admin: fmt.Sprintf("127.0.0.1:%d", admin), proc: p,
			log: filepath.Join(dir, "caddy.log")}
		t.Cleanup(func() {
			p.Stop(10 * time.Second)
			if t.Failed() {
				t.Logf("caddy %s log:\n%s", name, tail(readFile(in.log), 30))
			}
		})
		c.inst[name] = in
		upstreams = append(upstreams, in.addr)
	}
	for _, in := range c.inst {
		// whoami answers 401 once the sso app has started on the store.
		if err := in.proc.WaitServing(ctx, in.URL("/.sso/whoami"), http.StatusUnauthorized); err != nil {
			t.Fatal(err)
		}
	}
	lbDir := filepath.Join(t.TempDir(), "balancer")
	c.lb, err = caddyproc.Start(bin, "balancer", lbDir, fmt.Sprintf(balancerCaddyfile, lbDir, lbPort, strings.Join(upstreams, " ")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.lb.Stop(10 * time.Second) })
	if err := c.lb.WaitServing(ctx, c.base+"/.sso/whoami", http.StatusUnauthorized); err != nil {
		t.Fatal(err)
	}
	return c
}

// addOIDCUser registers a user at the OpenID provider (password: name+"-pw",
// subject: "sub-"+name, email: name@example.com).
func (c *cluster) addOIDCUser(name string) {
	c.oidc.AddUser(name, name+"-pw", map[string]any{
		"sub": "sub-" + name, "given_name": "Test", "family_name": name,
		"email": name + "@example.com", "email_verified": true, "groups": []string{"staff"},
	})
}

// registerSP registers the site at the SAML IdP from the SP metadata, as
// an IdP administrator pasting the metadata URL would.
func (c *cluster) registerSP(metadata string) {
	c.t.Helper()
	if err := c.saml.RegisterServiceProvider([]byte(metadata)); err != nil {
		c.t.Fatal(err)
	}
}

// db opens the cluster's database as one more instance would, for the
// test to look at what the instances wrote.
func (c *cluster) db() *postgres.DB {
	c.t.Helper()
	db, err := postgres.Open(context.Background(), postgres.Config{DSN: c.dsn})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = db.Close() })
	return db
}

// usersMatching counts the users linked to (idp, subject) or with email.
func usersMatching(t *testing.T, db store.Store, idpName, subject, email string) []*store.User {
	t.Helper()
	var out []*store.User
	err := db.View(context.Background(), func(tx store.Tx) error {
		out = out[:0]
		return tx.ForEachUser("", func(u *store.User) error {
			if strings.EqualFold(u.Email, email) {
				out = append(out, u)
				return nil
			}
			for _, l := range u.Links {
				if l.IdP == idpName && l.Subject == subject {
					out = append(out, u)
					return nil
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ---- browsers ----

// served is one response of the balancer's origin: which instance
// answered which request.
type served struct {
	method, path string
	by           string // X-Served-By: the instance's name
	status       int
}

// browser is a cookie-keeping client of the public origin that can be
// pinned to one instance: while pinned, its connections to the balancer's
// address go to that instance instead (the Host header is still the
// public one), as if the balancer had chosen it. It records which
// instance answered each request.
type browser struct {
	*caddytest.Browser
	c   *cluster
	pin atomic.Pointer[string] // instance address, or nil for the balancer

	mu  sync.Mutex
	log []served
}

func (c *cluster) newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{c: c}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		// A new connection per request, so that a pin takes effect at once.
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if p := b.pin.Load(); p != nil && addr == c.lbAddr {
				addr = *p
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	b.Browser = &caddytest.Browser{T: t, Jar: jar, Client: &http.Client{Jar: jar, Transport: recorder{tr, b}}}
	return b
}

// via pins the browser to an instance ("" unpins it).
func (b *browser) via(name string) *browser {
	if name == "" {
		b.pin.Store(nil)
		return b
	}
	addr := b.c.inst[name].addr
	b.pin.Store(&addr)
	return b
}

// servedBy returns the instances that answered requests whose path
// starts with prefix, in order.
func (b *browser) servedBy(prefix string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, s := range b.log {
		if strings.HasPrefix(s.path, prefix) {
			out = append(out, s.by)
		}
	}
	return out
}

// withCookie returns a new browser pinned to instance inst that holds a
// copy of another browser's session cookie, token.
func (c *cluster) withCookie(t *testing.T, inst, token string) *browser {
	br := c.newBrowser(t).via(inst)
	u, _ := url.Parse(c.base)
	br.Jar.SetCookies(u, []*http.Cookie{{Name: "sso_session", Value: token}})
	return br
}

// sessionCookie returns the browser's session cookie for the public
// origin, or "".
func (b *browser) sessionCookie() string {
	u, _ := url.Parse(b.c.base)
	for _, ck := range b.Jar.Cookies(u) {
		if ck.Name == "sso_session" {
			return ck.Value
		}
	}
	return ""
}

// api sends a request as a script would (Accept: application/json) and
// returns the status and the upstream's answer, if it came from there.
func (b *browser) api(path string) (int, caddytest.Echoed, error) {
	resp, err := b.TryGet(b.c.base+path, "Accept", "application/json")
	if err != nil {
		return 0, caddytest.Echoed{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, caddytest.Echoed{}, err
	}
	var e caddytest.Echoed
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &e); err != nil {
			return resp.StatusCode, e, fmt.Errorf("not the upstream's answer: %.200s", raw)
		}
	}
	return resp.StatusCode, e, nil
}

// whoami returns the signed-in user's ID, failing the test otherwise.
func (b *browser) whoami(t *testing.T) string {
	t.Helper()
	resp, err := b.TryGet(b.c.base+"/.sso/whoami", "Accept", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	body := caddytest.ReadBody(t, resp)
	var w struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &w) != nil || w.ID == "" {
		t.Fatalf("whoami: %s: %s", resp.Status, body)
	}
	return w.ID
}

// recorder notes which instance answered each request to the public
// origin.
type recorder struct {
	next http.RoundTripper
	b    *browser
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil && req.URL.Host == r.b.c.lbAddr {
		r.b.mu.Lock()
		r.b.log = append(r.b.log, served{method: req.Method, path: req.URL.Path, by: resp.Header.Get("X-Served-By"), status: resp.StatusCode})
		r.b.mu.Unlock()
	}
	return resp, err
}

// signInOIDC signs the browser in as user through the OpenID provider and
// returns the upstream's view of the page it asked for.
func (b *browser) signInOIDC(t *testing.T, path, user string) caddytest.Echoed {
	t.Helper()
	return caddytest.UpstreamSaw(t, b.SignIn(b.c.base+path, user, user+"-pw"))
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
