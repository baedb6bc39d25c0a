package main

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

type config struct {
	host                           string
	appPort, idpPort, upstreamPort int
	samlPort, samlIdPPort          int
	dataDir                        string
}

// demo is everything the demo started; close stops it all.
type demo struct {
	appURL     string // the app behind OpenID Connect sign-in
	samlAppURL string // the same app behind SAML sign-in
	storePath  string
	idp        *oidctest.Server
	samlIdP    *samltest.Server
	upstream   *http.Server
}

// The demo's OpenID client registration; a local, throwaway secret.
const (
	demoClientID     = "caddy-sso-demo"
	demoClientSecret = "demo-secret-not-for-production"
)

func start(cfg config) (*demo, error) {
	d := &demo{
		appURL:     fmt.Sprintf("http://%s:%d", cfg.host, cfg.appPort),
		samlAppURL: fmt.Sprintf("http://%s:%d", cfg.host, cfg.samlPort),
		storePath:  filepath.Join(cfg.dataDir, "sso.db"),
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return nil, err
	}

	idp, err := oidctest.Start(fmt.Sprintf("%s:%d", cfg.host, cfg.idpPort))
	if err != nil {
		return nil, fmt.Errorf("starting the local OpenID provider: %w", err)
	}
	d.idp = idp
	idp.RegisterClient(oidctest.Client{ID: demoClientID, Secret: demoClientSecret,
		RedirectURIs: []string{d.appURL + "/.sso/oidc/demo/callback"}})
	for _, u := range demoUsers {
		idp.AddUser(u.username, u.username, u.claims)
	}

	samlIdP, err := samltest.Start(fmt.Sprintf("%s:%d", cfg.host, cfg.samlIdPPort))
	if err != nil {
		idp.Close()
		return nil, fmt.Errorf("starting the local SAML IdP: %w", err)
	}
	d.samlIdP = samlIdP
	for _, u := range demoUsers {
		samlIdP.AddUser(samltest.Okta(u.username, u.username, u.person()))
	}

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.upstreamPort))
	if err != nil {
		idp.Close()
		samlIdP.Close()
		return nil, fmt.Errorf("starting the demo app: %w", err)
	}
	d.upstream = &http.Server{Handler: http.HandlerFunc(serveApp), ReadHeaderTimeout: 10 * time.Second}
	go d.upstream.Serve(ln) //nolint:errcheck // ErrServerClosed on close

	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	storage file_system %[1]s/caddy
	sso {
		store bolt %[2]s
		idp demo oidc {
			preset generic
			issuer %[3]s
			client_id %[4]s
			client_secret %[5]s
			jit
			default_groups demo-users
		}
		idp demo-saml saml {
			preset okta
			metadata_url %[8]s
			jit
			default_groups demo-users
		}
	}
}

%[6]s {
	sso demo
	reverse_proxy 127.0.0.1:%[7]d
}

%[9]s {
	sso demo-saml
	reverse_proxy 127.0.0.1:%[7]d
}
`, cfg.dataDir, d.storePath, idp.Issuer, demoClientID, demoClientSecret, d.appURL, cfg.upstreamPort,
		samlIdP.MetadataURL(), d.samlAppURL)
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "demo Caddyfile"})
	if err == nil {
		err = caddy.Load(cfgJSON, true)
	}
	if err == nil {
		err = d.registerSAML()
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("starting Caddy: %w", err)
	}
	return d, nil
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
	return errors.Join(caddy.Stop(), d.upstream.Close(), d.idp.Close(), d.samlIdP.Close())
}

type demoUser struct {
	username string
	claims   map[string]any
}

// person is the same user as the SAML IdP describes them.
func (u demoUser) person() samltest.Person {
	str := func(k string) string { v, _ := u.claims[k].(string); return v }
	groups, _ := u.claims["groups"].([]string)
	return samltest.Person{ID: str("sub"), FirstName: str("given_name"), LastName: str("family_name"),
		Email: str("email"), Groups: groups}
}

var demoUsers = []demoUser{
	{"alice", map[string]any{"sub": "00u-alice", "given_name": "Alice", "family_name": "Liddell",
		"email": "alice@example.com", "email_verified": true, "groups": []string{"engineering", "admins"}}},
	{"bob", map[string]any{"sub": "00u-bob", "given_name": "Bob", "family_name": "Builder",
		"email": "bob@example.com", "email_verified": true, "groups": []string{"sales"}}},
	{"carol", map[string]any{"sub": "00u-carol", "given_name": "Carol", "family_name": "Danvers"}},
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
		Name string
		Rows [][2]string
	}{r.Header.Get("X-Forwarded-First-Name"), rows})
}

var appPage = template.Must(template.New("app").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo app behind caddy-sso</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}code{background:#f3f3f3}</style></head>
<body><h1>Hello, <span id="name">{{.Name}}</span></h1>
<p>This page is served by a small app that knows nothing about SSO. Caddy signed you in and
sent it these headers, and removed any such header your browser might have sent:</p>
<table id="headers"><tr><th>Header</th><th>Value</th></tr>
{{range .Rows}}<tr><td><code>{{index . 0}}</code></td><td>{{index . 1}}</td></tr>{{end}}</table>
<h2>What the gateway stored</h2>
<p>From <a href="/.sso/whoami"><code>/.sso/whoami</code></a>:</p>
<pre id="whoami">loading…</pre>
<form method="post" action="/.sso/logout"><button id="logout" type="submit">Sign out</button></form>
<script>
fetch('/.sso/whoami').then(r => r.json()).then(u => {
  const how = u.source === 'jit' ? 'created Just-In-Time at your first sign-in, ' + u.created : 'source: ' + u.source;
  document.getElementById('whoami').textContent = 'User ' + u.id + ' was ' + how + '\n\n' + JSON.stringify(u, null, 2);
});
</script>
</body></html>
`))
