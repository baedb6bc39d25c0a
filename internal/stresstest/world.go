package stresstest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// The identity providers of a World, as named in its Caddyfile.
const (
	// OIDCName is the OpenID provider. SCIM provisions its users. It is
	// "okta" so that the users bench/genstore makes are its users.
	OIDCName = "okta"
	// SAMLName is the SAML IdP.
	SAMLName = "saml"
)

// The gateway's registration at the OpenID provider.
const (
	ClientID     = "caddy-sso-stress"
	ClientSecret = "stress-secret"
)

// scimTokenEnv carries the SCIM bearer token to Caddy.
const scimTokenEnv = "STRESS_SCIM_TOKEN"

// World is what every stress run starts: an OpenID provider (oidctest)
// and a SAML IdP (samltest) in this process, an upstream that echoes each
// request's headers as JSON, and a Caddy process that protects the
// upstream with both IdPs (users pick one at /.sso/login?idp=) and serves
// SCIM for the OpenID provider's users under /scim/v2.
type World struct {
	OIDC      *oidctest.Server
	SAML      *samltest.Server
	Upstream  *httptest.Server
	Caddy     *Caddy
	Base      string // http://127.0.0.1:<port>
	AdminPort int
	Store     string // the bolt file
	SCIMToken string

	// Global holds extra global options (lines inside the first block),
	// e.g. "\tgrace_period 5s\n".
	Global string
	// Site holds extra directives for the protected route, e.g.
	// "\t\theader X-Config 2\n"; changing it makes a different config.
	Site string
	// LogLevel is Caddy's log level (default INFO).
	LogLevel string
}

// NewWorld starts the IdPs and the upstream and picks Caddy's ports; its
// files go to dir, the store to dir/sso.db unless storePath is given.
// Start runs Caddy.
func NewWorld(bin, dir, storePath string) (*World, error) {
	port, _, err := testport.Pick() // held until the process exits
	if err != nil {
		return nil, err
	}
	admin, _, err := testport.Pick() // held until the process exits
	if err != nil {
		return nil, err
	}
	if storePath == "" {
		storePath = filepath.Join(dir, "sso.db")
	}
	tok := make([]byte, 32)
	_, _ = rand.Read(tok)
	w := &World{
		Base: fmt.Sprintf("http://127.0.0.1:%d", port), AdminPort: admin, Store: storePath,
		SCIMToken: base64.RawURLEncoding.EncodeToString(tok), LogLevel: "INFO",
	}
	w.Caddy = &Caddy{Bin: bin, Dir: dir, Port: port, Env: []string{scimTokenEnv + "=" + w.SCIMToken}}
	if w.OIDC, err = oidctest.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	w.OIDC.RegisterClient(oidctest.Client{ID: ClientID, Secret: ClientSecret,
		RedirectURIs: []string{w.Base + "/.sso/oidc/" + OIDCName + "/callback"}})
	if w.SAML, err = samltest.Start("127.0.0.1:0"); err != nil {
		_ = w.OIDC.Close()
		return nil, err
	}
	w.Upstream = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(Echoed{Path: r.URL.RequestURI(), Headers: r.Header})
	}))
	return w, nil
}

// Echoed is what the upstream answers: the request it received.
type Echoed struct {
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

// Header returns the first value of a header the upstream received.
func (e Echoed) Header(name string) string {
	for k, v := range e.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Caddyfile is the configuration Start runs.
func (w *World) Caddyfile() string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	persist_config off
	auto_https off
	storage file_system %[2]s/caddy
	skip_install_trust
	log {
		level %[3]s
	}
%[4]s	sso {
		store bolt %[5]s
		idp %[6]s oidc {
			preset okta
			issuer %[7]s
			client_id %[8]s
			client_secret %[9]s
			jit
			scim
		}
		idp %[10]s saml {
			preset okta
			metadata_url %[11]s
			jit
		}
	}
}

%[12]s {
	handle /scim/v2/* {
		sso_scim {
			idp %[6]s {env.%[13]s}
		}
	}
	handle {
		sso %[6]s %[10]s
%[14]s		reverse_proxy %[15]s
	}
}
`, w.AdminPort, w.Caddy.Dir, w.LogLevel, w.Global, w.Store, OIDCName, w.OIDC.Issuer, ClientID, ClientSecret,
		SAMLName, w.SAML.MetadataURL(), w.Base, scimTokenEnv, w.Site, strings.TrimPrefix(w.Upstream.URL, "http://"))
}

// Start runs Caddy on the World's Caddyfile and waits until it listens.
func (w *World) Start() error { return w.Caddy.Start(w.Caddyfile()) }

// RegisterSP registers the gateway's SAML SP metadata at the SAML IdP, as
// an IdP administrator pasting the metadata URL does. Caddy must be
// running; the SP key pair is kept in the store, so once is enough.
func (w *World) RegisterSP() error {
	resp, err := http.Get(w.Base + "/.sso/saml/" + SAMLName + "/metadata")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("SP metadata: %s: %s", resp.Status, body)
	}
	return w.SAML.RegisterServiceProvider(body)
}

// User is a person both IdPs know.
type User struct {
	Username, Password string
	Subject            string // OIDC sub and SAML uniqueUserId
	Email              string
}

// AddUser makes u known to both IdPs.
func (w *World) AddUser(u User) {
	w.OIDC.AddUser(u.Username, u.Password, map[string]any{
		"sub": u.Subject, "given_name": "Stress", "family_name": u.Username,
		"email": u.Email, "email_verified": true,
	})
	w.SAML.AddUser(samltest.Okta(u.Username, u.Password, samltest.Person{
		ID: u.Subject, FirstName: "Stress", LastName: u.Username, Email: u.Email}))
}

// SCIM is a SCIM client of the World's gateway.
func (w *World) SCIM(c *http.Client) *SCIM {
	return &SCIM{Base: w.Base + "/scim/v2", Token: w.SCIMToken, Client: c}
}

// Close stops Caddy (SIGTERM), the IdPs and the upstream.
func (w *World) Close() error {
	err := w.Caddy.Stop()
	w.Upstream.Close()
	return errors.Join(err, w.OIDC.Close(), w.SAML.Close())
}
