package caddytest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/caddy-sso/caddy-sso/cli"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/store"
)

// The test IdP's registration of the gateway.
const (
	ClientID     = "caddy-sso-test"
	ClientSecret = "test-secret"
)

// OIDC is one real OpenID Connect setup: a test IdP signing real ID tokens
// and a gateway with IdP "test" protecting an echoing upstream. The IdP
// knows user "ada" (password "ada-pw", subject "sub-ada").
type OIDC struct {
	T        testing.TB
	IdP      *oidctest.Server
	Upstream *EchoUpstream
	GW       *Gateway
	// IdPBlock are extra lines inside the idp block (e.g. "\t\t\tjit\n").
	IdPBlock string
	// Sites are the site blocks; by default one site protecting everything.
	Sites string
}

// NewOIDC starts the IdP and the upstream; Start runs Caddy.
func NewOIDC(t testing.TB, idpBlock string) *OIDC {
	t.Helper()
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Close() })
	w := &OIDC{T: t, IdP: op, Upstream: NewEchoUpstream(t), GW: NewGateway(t), IdPBlock: idpBlock}
	op.RegisterClient(oidctest.Client{ID: ClientID, Secret: ClientSecret,
		RedirectURIs: []string{w.GW.Base + "/.sso/oidc/test/callback"}})
	op.AddUser("ada", "ada-pw", map[string]any{
		"sub": "sub-ada", "given_name": "Ada", "family_name": "Lovelace",
		"email": "ada@example.com", "email_verified": true, "groups": []string{"eng", "admins"},
	})
	w.Sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", w.GW.Base, w.Upstream.HostPort())
	return w
}

// IdPConfig is the idp block of the global sso option.
func (w *OIDC) IdPConfig() string {
	return fmt.Sprintf("\t\tidp test oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n%s\t\t}\n",
		w.IdP.Issuer, ClientID, ClientSecret, w.IdPBlock)
}

// Caddyfile is the whole config.
func (w *OIDC) Caddyfile() string { return w.GW.Caddyfile(w.IdPConfig(), w.Sites) }

// Start runs Caddy with the config.
func (w *OIDC) Start() *OIDC {
	w.GW.Start(w.Caddyfile())
	return w
}

// UserBySubject reads the user of IdP "test" with the login subject from
// the running store.
func UserBySubject(t testing.TB, subject string) *store.User {
	t.Helper()
	var u *store.User
	View(t, func(tx store.Tx) error {
		var err error
		u, err = tx.UserByLink("test", subject)
		return err
	})
	return u
}

// Output is a buffer that one goroutine (a following command) writes
// while another reads.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// CLI runs `caddy sso <args>` in this process, writing to out, until it
// returns or ctx ends.
func CLI(ctx context.Context, out *Output, args ...string) error {
	cmd := cli.NewCommand()
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// RunCLI runs `caddy sso <args>` in this process and returns its output.
func RunCLI(ctx context.Context, args ...string) (string, error) {
	out := new(Output)
	err := CLI(ctx, out, args...)
	return out.String(), err
}
