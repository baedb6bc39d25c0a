package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// IdPConfig configures one identity provider and the JIT rules for users
// who sign in through it.
type IdPConfig struct {
	// Name identifies the IdP in the Caddyfile, in endpoint paths
	// (/.sso/oidc/<name>/callback) and in user links. Changing it orphans
	// the links of existing users.
	Name string `json:"name"`
	// Protocol is "oidc" or "saml".
	Protocol string `json:"protocol"`
	// Preset selects the attribute mapping: entra, okta, pingone or generic.
	Preset string `json:"preset,omitempty"`
	// Map overrides the preset per attribute: attribute -> candidate names.
	Map map[string][]string `json:"map,omitempty"`

	// JIT creates unknown users on their first sign-in.
	JIT bool `json:"jit,omitempty"`
	// Update is "force" (default: keep profiles current on every sign-in)
	// or "import" (take the profile at creation only).
	Update string `json:"update,omitempty"`
	// Optional lists attributes (firstName, lastName, email) that may be
	// missing when a user is created.
	Optional []string `json:"optional,omitempty"`
	// AllowedDomains restricts sign-in to these email domains.
	AllowedDomains []string `json:"allowed_domains,omitempty"`
	// DefaultGroups are given to users created by JIT.
	DefaultGroups []string `json:"default_groups,omitempty"`
	// CreateAs is "active" (default) or "pending" (admin approval first).
	CreateAs string `json:"create_as,omitempty"`
	// LinkByEmail links an unknown subject to the existing user with the
	// same verified email instead of refusing it.
	LinkByEmail bool `json:"link_by_email,omitempty"`

	// OIDC holds the OpenID Connect settings when Protocol is "oidc".
	OIDC *OIDCConfig `json:"oidc,omitempty"`
	// SAML holds the SAML 2.0 settings when Protocol is "saml".
	SAML *SAMLConfig `json:"saml,omitempty"`
}

// OIDCConfig are the OpenID Connect relying-party settings. String fields
// accept Caddy placeholders such as {env.CLIENT_SECRET}.
type OIDCConfig struct {
	Issuer       string         `json:"issuer"`
	ClientID     string         `json:"client_id"`
	ClientSecret string         `json:"client_secret,omitempty"`
	Scopes       []string       `json:"scopes,omitempty"`
	Algorithms   []string       `json:"algorithms,omitempty"`
	TenantID     string         `json:"tenant_id,omitempty"`
	ClockSkew    caddy.Duration `json:"clock_skew,omitempty"`
}

// Values accepted by IdPConfig fields.
var (
	protocols     = []string{idp.ProtocolOIDC, idp.ProtocolSAML}
	updateModes   = []string{"force", "import"}
	createModes   = []string{"active", "pending"}
	optionalAttrs = []string{mapping.FirstName, mapping.LastName, mapping.Email}
)

func (c *IdPConfig) validate() error {
	if c.Name == "" || strings.ContainsAny(c.Name, "/?#% ") {
		return fmt.Errorf("name %q must be non-empty and usable in a URL path", c.Name)
	}
	if err := oneOf("protocol", c.Protocol, protocols); err != nil {
		return err
	}
	if c.Update != "" {
		if err := oneOf("update", c.Update, updateModes); err != nil {
			return err
		}
	}
	if c.CreateAs != "" {
		if err := oneOf("create_as", c.CreateAs, createModes); err != nil {
			return err
		}
	}
	for _, o := range c.Optional {
		if err := oneOf("optional attribute", o, optionalAttrs); err != nil {
			return err
		}
	}
	if _, err := mapping.New(c.Preset, c.Protocol, c.Map); err != nil {
		return err
	}
	switch c.Protocol {
	case idp.ProtocolOIDC:
		if c.OIDC == nil || c.OIDC.Issuer == "" || c.OIDC.ClientID == "" {
			return fmt.Errorf("oidc needs issuer and client_id")
		}
	case idp.ProtocolSAML:
		if c.SAML == nil {
			return fmt.Errorf("saml needs one of metadata_url, metadata_file or metadata")
		}
		return c.SAML.validate()
	}
	return nil
}

func oneOf(what, v string, allowed []string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("unknown %s %q (expected one of: %s)", what, v, strings.Join(allowed, ", "))
}

// rules returns the JIT rules of this IdP.
func (c *IdPConfig) rules() provision.Rules {
	r := provision.Rules{
		JIT:            c.JIT,
		Optional:       c.Optional,
		AllowedDomains: c.AllowedDomains,
		DefaultGroups:  c.DefaultGroups,
		CreatePending:  c.CreateAs == "pending",
		LinkByEmail:    c.LinkByEmail,
	}
	if c.Update == "import" {
		r.Update = provision.UpdateImport
	}
	return r
}

// loginProtocol is what the sso handler needs from a protocol adapter.
// Every method gets base, the absolute URL of this IdP's endpoints on the
// site the request arrived on (origin + path prefix + "<protocol>/<name>/",
// see Handler.endpointBase), so that one adapter serves any number of sites
// and the handler never needs to know a protocol's endpoint names.
type loginProtocol interface {
	// Begin sends the browser to the IdP; returnTo is a same-origin path.
	Begin(w http.ResponseWriter, r *http.Request, base, returnTo string) error
	// Callback verifies the IdP's answer at base + the callback endpoint
	// and returns who signed in and the returnTo saved by Begin.
	Callback(w http.ResponseWriter, r *http.Request, base string) (*idp.Assertion, string, error)
	// Logout ends the IdP's session once the local one has ended. It
	// either answers the request (a redirect, or an auto-posting form, to
	// the IdP, which later sends the browser to returnTo) and reports
	// true, or writes nothing and reports false: the IdP offers no logout,
	// or refused to build one (the error says why).
	Logout(w http.ResponseWriter, r *http.Request, base string, info idp.LogoutInfo, returnTo string) (bool, error)
	// LogoutOrigin returns the origin (scheme://host[:port]) of the IdP
	// endpoint Logout sends the browser to, or "" when the IdP has none or
	// its discovery document or metadata cannot be had. The sign-out page lets its form's
	// submission be redirected there (CSP form-action).
	LogoutOrigin(ctx context.Context) string
	// ServeEndpoint serves the protocol's endpoints under base other than
	// the callback (SAML: metadata, slo). It returns errNoEndpoint, having
	// written nothing, for a name the protocol does not have.
	ServeEndpoint(w http.ResponseWriter, r *http.Request, base, name string) error
	// Start begins background work (SAML metadata refresh); Close ends it.
	Start()
	Close() error
}

// errNoEndpoint is ServeEndpoint's answer for an unknown endpoint name.
var errNoEndpoint = errors.New("no such endpoint")

// identityProvider is an IdPConfig made ready to serve.
type identityProvider struct {
	name     string
	protocol string
	login    loginProtocol
	mapper   *mapping.Mapper
	rules    provision.Rules
	// callback is the endpoint name, under the IdP's base, where the IdP
	// returns the browser, and callbackMethod the one method it takes.
	callback       string
	callbackMethod string
}

// build makes the IdP ready to serve. It may read and write the app's store
// (a SAML SP key generated on first start is persisted there).
func (c *IdPConfig) build(ctx context.Context, a *App, repl *caddy.Replacer) (*identityProvider, error) {
	mapper, err := mapping.New(c.Preset, c.Protocol, c.Map)
	if err != nil {
		return nil, err
	}
	p := &identityProvider{name: c.Name, protocol: c.Protocol, mapper: mapper, rules: c.rules()}
	replay := store.ReplayGuard{Store: a.db}
	switch c.Protocol {
	case idp.ProtocolOIDC:
		o := c.OIDC
		rp, err := oidc.New(oidc.Config{
			Name:         c.Name,
			Issuer:       repl.ReplaceKnown(o.Issuer, ""),
			ClientID:     repl.ReplaceKnown(o.ClientID, ""),
			ClientSecret: repl.ReplaceKnown(o.ClientSecret, ""),
			Scopes:       o.Scopes,
			Algorithms:   o.Algorithms,
			TenantID:     repl.ReplaceKnown(o.TenantID, ""),
			ClockSkew:    time.Duration(o.ClockSkew),
		}, a.flows, replay)
		if err != nil {
			return nil, err
		}
		p.login = oidcProtocol{rp}
		p.callback, p.callbackMethod = oidcCallback, http.MethodGet
	case idp.ProtocolSAML:
		sp, err := c.SAML.build(ctx, a, c.Name, repl, replay)
		if err != nil {
			return nil, err
		}
		p.login = &samlProtocol{sp: sp, name: c.Name, app: a, logger: a.logger.Named("saml").With(zap.String("idp", c.Name))}
		if c.LinkByEmail {
			a.logger.Warn("link_by_email has no effect on a SAML identity provider: SAML does not say whether an email address was verified, and only verified addresses are linked",
				zap.String("idp", c.Name))
		}
		p.callback, p.callbackMethod = samlACS, http.MethodPost
	default:
		return nil, fmt.Errorf("protocol %q is not available", c.Protocol)
	}
	return p, nil
}

// Callback endpoint names under an IdP's base (DESIGN.md section 1).
const (
	oidcCallback = "callback" // the OIDC redirect URI
	samlACS      = "acs"      // idp/saml derives it from base too
)

// oidcProtocol adapts an OpenID Connect relying party to loginProtocol:
// its redirect URI is base+"callback".
type oidcProtocol struct{ rp *oidc.Provider }

func (o oidcProtocol) Begin(w http.ResponseWriter, r *http.Request, base, returnTo string) error {
	return o.rp.Begin(w, r, base+oidcCallback, returnTo)
}

func (o oidcProtocol) Callback(w http.ResponseWriter, r *http.Request, base string) (*idp.Assertion, string, error) {
	return o.rp.Callback(w, r, base+oidcCallback)
}

// Logout redirects to the IdP's end_session_endpoint, which returns the
// browser to returnTo on this site (registered there as a post-logout
// redirect URI).
func (o oidcProtocol) Logout(w http.ResponseWriter, r *http.Request, base string, info idp.LogoutInfo, returnTo string) (bool, error) {
	u, err := url.Parse(base)
	if err != nil {
		return false, err
	}
	to, err := o.rp.LogoutURL(r.Context(), info, u.Scheme+"://"+u.Host+returnTo)
	if err != nil || to == "" {
		return false, err
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return true, nil
}

// LogoutOrigin is the end_session_endpoint from discovery.
func (o oidcProtocol) LogoutOrigin(ctx context.Context) string {
	to, err := o.rp.LogoutURL(ctx, idp.LogoutInfo{}, "")
	if err != nil {
		return ""
	}
	return originOf(to)
}

func (oidcProtocol) ServeEndpoint(http.ResponseWriter, *http.Request, string, string) error {
	return errNoEndpoint
}

func (oidcProtocol) Start()       {}
func (oidcProtocol) Close() error { return nil }
