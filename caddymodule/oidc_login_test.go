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
