package caddymodule_test

import (
	"fmt"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// oidcWorld is one real OIDC login setup: a provider signing real ID
// tokens, a Caddy with the sso handler in front of an echoing upstream.
type oidcWorld struct {
	t        *testing.T
	idp      *oidctest.Server
	upstream *echoUpstream
	gw       *gateway
	idpBlock string // extra lines inside the idp block
	sites    string
}

const (
	clientID     = caddytest.ClientID
	clientSecret = caddytest.ClientSecret
)

// newOIDCWorld is caddytest.NewOIDC under this package's names.
func newOIDCWorld(t *testing.T, idpBlock string) *oidcWorld {
	t.Helper()
	o := caddytest.NewOIDC(t, idpBlock)
	gw := newGatewayOf(t, o.GW)
	return &oidcWorld{t: t, idp: o.IdP, upstream: &echoUpstream{o.Upstream}, gw: gw, idpBlock: idpBlock, sites: o.Sites}
}

// newTwoIdPWorld is newOIDCWorld whose OpenID provider also serves a
// second IdP block, "other", beside "test" (its client registered for both
// callbacks): for routes that offer a choice of IdP (twoIdPCaddyfile).
func newTwoIdPWorld(t *testing.T) *oidcWorld {
	t.Helper()
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{w.gw.base + "/.sso/oidc/test/callback", w.gw.base + "/.sso/oidc/other/callback"}})
	return w
}

// twoIdPCaddyfile is the Caddyfile of a newTwoIdPWorld: IdPs test and
// other, and the site running directive ("sso test other", say) in front
// of the upstream.
func (w *oidcWorld) twoIdPCaddyfile(directive string) string {
	var blocks string
	for _, name := range []string{"test", "other"} {
		blocks += fmt.Sprintf("\t\tidp %s oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t}\n",
			name, w.idp.Issuer, clientID, clientSecret)
	}
	return w.gw.caddyfile(blocks, fmt.Sprintf("%s {\n\t%s\n\treverse_proxy %s\n}\n", w.gw.base, directive, w.upstream.hostPort()))
}

// newLocalhostOIDCWorld is newOIDCWorld with the site on
// http://localhost, a site of its own beside the IdP on 127.0.0.1 (as a
// browser tells them apart for cookies and cross-site rules), its callback
// registered there.
func newLocalhostOIDCWorld(t *testing.T, idpBlock string) *oidcWorld {
	t.Helper()
	w := newOIDCWorld(t, idpBlock)
	w.gw.base = fmt.Sprintf("http://localhost:%d", w.gw.port)
	w.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{w.gw.base + "/.sso/oidc/test/callback"}})
	return w
}

func (w *oidcWorld) caddyfile() string {
	o := caddytest.OIDC{IdP: w.idp, GW: w.gw.Gateway, IdPBlock: w.idpBlock, Sites: w.sites}
	return o.Caddyfile()
}

func (w *oidcWorld) start() *oidcWorld {
	w.gw.start(w.caddyfile())
	return w
}
