package main

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	texttemplate "text/template"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/pagestyle"
)

// The two sites use two host names for this machine, so that each has its
// own cookies (cookies are per host name, not per port): the session of
// one site is not the session of the other, and each shows its own
// sign-in. Each IdP is on the other host name, so every sign-in crosses
// sites, as it does in production, where the IdP is elsewhere.
const (
	oidcHost    = "localhost"
	samlHost    = "127.0.0.1"
	oidcIdPHost = samlHost
	samlIdPHost = oidcHost
)

// config is what the flags set; every port is on the loopback interface.
type config struct {
	oidcPort, samlPort       int    // Caddy: the app over OIDC, over SAML
	oidcIdPPort, samlIdPPort int    // the local IdPs
	upstreamPort             int    // the demo app
	admin                    string // Caddy's admin endpoint, host:port
	dataDir                  string
}

// port is a port the demo listens on and the flag that chooses it.
type port struct {
	n    int
	flag string
	what string
	host string // the name browsers and the banner's commands reach it by
}

func (c config) ports() []port {
	adminHost, admin, _ := net.SplitHostPort(c.admin)
	var adminPort int
	_, _ = fmt.Sscan(admin, &adminPort) // a port that is not a number stays 0, which any free port passes
	return []port{
		{c.oidcPort, "-port", "the app over OpenID Connect", oidcHost},
		{c.samlPort, "-saml-port", "the app over SAML", samlHost},
		{c.oidcIdPPort, "-idp-port", "the local OpenID provider", oidcIdPHost},
		{c.samlIdPPort, "-saml-idp-port", "the local SAML IdP", samlIdPHost},
		{c.upstreamPort, "-upstream-port", "the demo app", "127.0.0.1"},
		{adminPort, "-admin", "Caddy's admin endpoint", adminName(adminHost)},
	}
}

// adminName is the name the banner's commands reach an admin endpoint on
// host by: localhost for 127.0.0.1, as `caddy sso` does by default
// (localhost:2019).
func adminName(host string) string {
	if host == "127.0.0.1" {
		return "localhost"
	}
	return host
}

// checkPorts fails at once, naming the port and its flag, when one is
// taken, before anything starts: a port Caddy cannot bind would otherwise
// surface later, among other messages.
func (c config) checkPorts() error {
	host, _, err := net.SplitHostPort(c.admin)
	if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("-admin %q must be a loopback IP address and port, such as 127.0.0.1:2019", c.admin)
	}
	seen := map[int]string{}
	for _, p := range c.ports() {
		if other, dup := seen[p.n]; dup {
			return fmt.Errorf("port %d is given twice (%s and %s)", p.n, other, p.flag)
		}
		seen[p.n] = p.flag
		ln, err := listen(p)
		if err != nil {
			return err
		}
		err = freeOnIPv6Loopback(p)
		_ = ln.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// freeOnIPv6Loopback fails when p, reached by the name localhost, is taken
// on ::1. The demo listens on 127.0.0.1 only, but browsers (and Go, and
// curl) try ::1 first for localhost where the hosts file lists it: another
// server on [::1]:p, such as a dev server bound to "localhost", would get
// the newcomer's requests instead of the demo. A host without IPv6 has no
// ::1 to take.
func freeOnIPv6Loopback(p port) error {
	if p.host != "localhost" {
		return nil
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", p.n))
	switch {
	case err == nil:
		return ln.Close()
	case errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT):
		return nil
	}
	return fmt.Errorf("port %d (%s) is not free on ::1, where browsers reach localhost first: %w; choose another with %s", p.n, p.what, err, p.flag)
}

// listen listens on 127.0.0.1 at p, with an error that says what to do.
func listen(p port) (net.Listener, error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.n))
	if err != nil {
		return nil, fmt.Errorf("port %d (%s) is not free: %w; choose another with %s", p.n, p.what, err, p.flag)
	}
	return ln, nil
}

// checkDataDir refuses a data directory that is not the demo user's own:
// the default is a fixed name in the shared temporary directory, which
// another local user can create first, writable to them, with symbolic
// links in it that point the demo's writes (its secret, its Caddyfile,
// Caddy's log and store) at the newcomer's files. MkdirAll keeps a
// directory it finds as it is, so this looks at what is there, without
// following a link.
func checkDataDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("the data directory: %w", err)
	}
	why := ""
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		why = "is a symbolic link"
	case !fi.IsDir():
		why = "is not a directory"
	default:
		why = othersMayWrite(fi)
	}
	if why != "" {
		return fmt.Errorf("the data directory %s %s, so others could choose what the demo writes; choose another with -data DIR", dir, why)
	}
	return nil
}

// writeAnew writes data to path as a new file, readable by the demo's
// user only, replacing what is there without writing through it: a
// symbolic link at path is removed, not followed (checkDataDir keeps
// others out of the directory; this keeps a link that is there anyway
// from sending the demo's secret elsewhere). O_EXCL fails, rather than
// follows, should a link reappear between the two.
func writeAnew(path string, data []byte) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// demo is everything the demo started; close stops it all.
type demo struct {
	cfg           config
	appURL        string // the app behind OpenID Connect sign-in
	samlAppURL    string // the same app behind SAML sign-in
	storePath     string
	caddyfilePath string
	secretPath    string // the OpenID client secret, which the Caddyfile reads
	caddyfile     string
	logPath       string
	idp           *oidctest.Server
	samlIdP       *samltest.Server
	servers       []*http.Server // the IdPs and the app
	unlock        func()         // releases the data directory (lockDataDir)
}

// The demo's OpenID client registration; a local, throwaway secret.
const (
	demoClientID     = "caddy-sso-demo"
	demoClientSecret = "demo-secret-not-for-production"
)

func start(cfg config) (*demo, error) {
	if err := cfg.checkPorts(); err != nil {
		return nil, err
	}
	d := &demo{
		cfg:           cfg,
		appURL:        fmt.Sprintf("http://%s:%d", oidcHost, cfg.oidcPort),
		samlAppURL:    fmt.Sprintf("http://%s:%d", samlHost, cfg.samlPort),
		storePath:     filepath.Join(cfg.dataDir, "sso.db"),
		caddyfilePath: filepath.Join(cfg.dataDir, "Caddyfile"),
		secretPath:    filepath.Join(cfg.dataDir, "oidc-client-secret"),
		logPath:       filepath.Join(cfg.dataDir, "caddy.log"),
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := checkDataDir(cfg.dataDir); err != nil {
		return nil, err
	}
	// Before anything is written into it (lockDataDir).
	unlock, err := lockDataDir(cfg.dataDir)
	if err != nil {
		return nil, err
	}
	d.unlock = unlock
	ports := cfg.ports()
	err = d.startIdPs(ports[2], ports[3])
	if err == nil {
		err = d.serve(ports[4], http.HandlerFunc(serveApp))
	}
	if err == nil {
		err = d.startCaddy()
	}
	if err != nil {
		_ = d.close() // the start error is the one to report
		return nil, err
	}
	return d, nil
}

func (d *demo) startIdPs(oidcPort, samlPort port) error {
	var err error
	d.idp, err = oidctest.NewServer(fmt.Sprintf("http://%s:%d", oidcIdPHost, oidcPort.n))
	if err != nil {
		return err
	}
	d.idp.RegisterClient(oidctest.Client{ID: demoClientID, Secret: demoClientSecret,
		RedirectURIs: []string{d.appURL + "/.sso/oidc/demo/callback"}})
	d.idp.SetLoginHint(hint(oidcUsers))
	for _, u := range oidcUsers {
		d.idp.AddUser(u.username, u.username, u.claims())
	}
	if err := d.serve(oidcPort, d.idp); err != nil {
		return err
	}

	d.samlIdP, err = samltest.NewServer(fmt.Sprintf("http://%s:%d", samlIdPHost, samlPort.n))
	if err != nil {
		return err
	}
	d.samlIdP.SetLoginHint(hint(samlUsers))
	for _, u := range samlUsers {
		d.samlIdP.AddUser(samltest.Okta(u.username, u.username, u.person()))
	}
	return d.serve(samlPort, d.samlIdP)
}

// serve serves h on 127.0.0.1 at p until close.
func (d *demo) serve(p port, h http.Handler) error {
	ln, err := listen(p)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	d.servers = append(d.servers, srv)
	go srv.Serve(ln) //nolint:errcheck // ErrServerClosed on close
	return nil
}

// caddyfileTemplate is the demo's configuration, written to the data
// directory so that `caddy sso check --config` and the CLI can read it.
// It is the configuration a newcomer copies, and its start log has no
// WARN: the client secret is read from a file, as a secret should be,
// and the sites, plain HTTP, offer only HTTP/1.1, so that Caddy does not
// warn that HTTP/2 and HTTP/3 are skipped for want of TLS.
const caddyfileTemplate = `# The caddy-sso demo's configuration, written by go run ./examples/demo.
# Caddy runs inside the demo's process; this file is what it loaded.
{
	admin {{.Admin}}
	persist_config off
	auto_https off
	default_bind 127.0.0.1
	servers {
		protocols h1
	}
	storage file_system {{token .CaddyDataDir}}
	log {
		output file {{token .LogPath}}
	}
	sso {
		store bolt {{token .StorePath}}
		idp demo oidc {
			preset generic
			issuer {{.Issuer}}
			client_id {{.ClientID}}
			client_secret {{token .ClientSecret}}
			jit
			default_groups demo-users
		}
		idp demo-saml saml {
			preset okta
			metadata_url {{.MetadataURL}}
			jit
			default_groups demo-users
		}
	}
}

# The app, signing in over OpenID Connect.
{{.AppURL}} {
	sso demo
	reverse_proxy 127.0.0.1:{{.UpstreamPort}}
}

# The same app on another host name, signing in over SAML 2.0.
{{.SAMLAppURL}} {
	sso demo-saml
	reverse_proxy 127.0.0.1:{{.UpstreamPort}}
}
`

func (d *demo) startCaddy() error {
	if err := writeAnew(d.secretPath, []byte(demoClientSecret+"\n")); err != nil {
		return fmt.Errorf("writing the client secret: %w", err)
	}
	var buf bytes.Buffer
	// text/template: the Caddyfile is not HTML, and html/template would
	// write a path's & or " as an HTML entity.
	tmpl := texttemplate.New("Caddyfile").Funcs(texttemplate.FuncMap{"token": caddyfileToken})
	err := texttemplate.Must(tmpl.Parse(caddyfileTemplate)).Execute(&buf, map[string]any{
		"Admin": d.cfg.admin, "CaddyDataDir": filepath.Join(d.cfg.dataDir, "caddy"), "LogPath": d.logPath, "StorePath": d.storePath,
		"Issuer": d.idp.Issuer, "ClientID": demoClientID, "ClientSecret": "{file." + d.secretPath + "}",
		"MetadataURL": d.samlIdP.MetadataURL(), "AppURL": d.appURL, "SAMLAppURL": d.samlAppURL,
		"UpstreamPort": d.cfg.upstreamPort,
	})
	if err != nil {
		return fmt.Errorf("writing the Caddyfile for the data directory %s: %w; choose another with -data DIR", d.cfg.dataDir, err)
	}
	d.caddyfile = string(caddyfile.Format(buf.Bytes()))
	if err := writeAnew(d.caddyfilePath, []byte(d.caddyfile)); err != nil {
		return fmt.Errorf("writing the Caddyfile: %w", err)
	}
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(d.caddyfile), map[string]any{"filename": d.caddyfilePath})
	if err == nil {
		err = caddy.Load(cfgJSON, true)
	}
	if err != nil {
		return fmt.Errorf("starting Caddy: %w", err)
	}
	if err := d.registerSAML(); err != nil {
		return fmt.Errorf("registering the SAML site at the local SAML IdP: %w", err)
	}
	return nil
}

// caddyfileToken writes s as one Caddyfile token, so that a data directory
// with a space (a Windows user name under %TEMP%, say), a quote or a #
// stays one path. In double quotes the Caddyfile lexer keeps everything
// as it is but \" (a quote); a backslash before a quote or at the end
// would read as that escape, so such a value goes in backquotes, where
// nothing is escaped. A value that needs both cannot be one token.
func caddyfileToken(s string) (string, error) {
	if !strings.Contains(s, `\"`) && !strings.HasSuffix(s, `\`) {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`, nil
	}
	if !strings.Contains(s, "`") {
		return "`" + s + "`", nil
	}
	return "", fmt.Errorf("%q cannot be written as one Caddyfile token", s)
}

// registerSAML does what an IdP admin does with the SP metadata URL.
func (d *demo) registerSAML() error {
	resp, err := http.Get(d.samlAppURL + "/.sso/saml/demo-saml/metadata")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	md, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("SP metadata: %s", resp.Status)
	}
	if err != nil {
		return err
	}
	return d.samlIdP.RegisterServiceProvider(md)
}

func (d *demo) close() error {
	var errs []error
	if d.caddyfile != "" {
		errs = append(errs, caddy.Stop())
	}
	for _, s := range d.servers {
		errs = append(errs, s.Close())
	}
	if d.unlock != nil {
		d.unlock() // last: Caddy has closed the store
	}
	return errors.Join(errs...)
}

// demoUser is a person at one of the demo IdPs; the password is the user
// name.
type demoUser struct {
	username           string
	id                 string // the IdP's immutable user ID
	first, last, email string
	groups             []string
	note               string // what signing in as them shows
}

// claims is the user as the OpenID provider describes them.
func (u demoUser) claims() map[string]any {
	c := map[string]any{"sub": u.id, "given_name": u.first, "family_name": u.last, "groups": u.groups}
	if u.email != "" {
		c["email"], c["email_verified"] = u.email, true
	}
	return c
}

// person is the user as the SAML IdP describes them.
func (u demoUser) person() samltest.Person {
	return samltest.Person{ID: u.id, FirstName: u.first, LastName: u.last, Email: u.email, Groups: u.groups}
}

// The demo's users. alice exists at both IdPs with one email address, as
// one person with accounts at two IdPs would: JIT keys users on the IdP's
// user ID, never on email, so the second site she signs in to refuses her
// instead of silently joining the two accounts (the email_conflict rule).
var (
	oidcUsers = []demoUser{
		{"alice", "00u-alice", "Alice", "Liddell", "alice@example.com", []string{"engineering", "admins"},
			"created Just-In-Time at her first sign-in"},
		{"carol", "00u-carol", "Carol", "Danvers", "", nil,
			"has no email address at this IdP: sees the page that explains what is missing"},
	}
	samlUsers = []demoUser{
		{"bob", "00u-bob", "Bob", "Builder", "bob@example.com", []string{"sales"},
			"created Just-In-Time at his first sign-in"},
		{"alice", "saml-alice", "Alice", "Liddell", "alice@example.com", []string{"engineering"},
			"the same email address as alice at the OpenID provider, another IdP user ID: " +
				"whichever site she signs in to second refuses her (email_conflict), as JIT never links accounts by email"},
	}
)

// hint is the line an IdP's login page shows: its users.
func hint(users []demoUser) string {
	var names []string
	for _, u := range users {
		names = append(names, u.username+" / "+u.username)
	}
	return "Demo users (user name / password): " + strings.Join(names, ", ") + "."
}

// serveApp is the protected app: a legacy app knows nothing about SSO; it
// reads the identity from the headers Caddy sets, and shows them.
func serveApp(w http.ResponseWriter, r *http.Request) {
	var rows [][2]string
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-Forwarded-") {
			rows = append(rows, [2]string{k, strings.Join(v, ", ")})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	appPage.Execute(w, struct { //nolint:errcheck // the browser went away
		Name, IdP string
		Rows      [][2]string
		CSS       template.CSS
	}{r.Header.Get("X-Forwarded-First-Name"), r.Header.Get("X-Forwarded-Idp"), rows, pagestyle.Template()})
}

var appPage = template.Must(template.New("app").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Demo app behind caddy-sso</title><style>{{.CSS}}</style></head>
<body><h1>Hello, <span id="name">{{.Name}}</span></h1>
<p>This page is served by a small app that knows nothing about SSO. Caddy signed you in
through the identity provider <code id="idp">{{.IdP}}</code> and sent the app these headers,
having removed any such header your browser might have sent:</p>
<table id="headers"><tr><th>Header</th><th>Value</th></tr>
{{range .Rows}}<tr><td><code>{{index . 0}}</code></td><td>{{index . 1}}</td></tr>{{end}}</table>
<h2>What the gateway stored</h2>
<p id="jit">loading…</p>
<p>From <a href="/.sso/whoami"><code>/.sso/whoami</code></a>:</p>
<pre id="whoami">loading…</pre>
<form method="post" action="/.sso/logout"><button id="logout" type="submit">Sign out</button></form>
<script>
fetch('/.sso/whoami').then(r => r.json()).then(u => {
  const how = u.source === 'jit' ? 'created Just-In-Time at your first sign-in, ' + u.created : 'source: ' + u.source;
  document.getElementById('jit').textContent = 'User ' + u.id + ' was ' + how + '.';
  document.getElementById('whoami').textContent = JSON.stringify(u, null, 2);
});
</script>
</body></html>
`))
