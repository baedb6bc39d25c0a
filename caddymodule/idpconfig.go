package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
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
		return fmt.Errorf("saml is not available in this build yet")
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
type loginProtocol interface {
	// Begin sends the browser to the IdP; returnTo is a same-origin path.
	Begin(w http.ResponseWriter, r *http.Request, callbackURL, returnTo string) error
	// Callback verifies the IdP's answer and returns who signed in and
	// the returnTo saved by Begin.
	Callback(w http.ResponseWriter, r *http.Request, callbackURL string) (*idp.Assertion, string, error)
	// LogoutURL returns where to send the browser to end the IdP session, or "".
	LogoutURL(ctx context.Context, info idp.LogoutInfo, postLogoutRedirect string) (string, error)
}

// identityProvider is an IdPConfig made ready to serve.
type identityProvider struct {
	name     string
	protocol string
	login    loginProtocol
	mapper   *mapping.Mapper
	rules    provision.Rules
}

func (c *IdPConfig) build(repl *caddy.Replacer, flows *idp.FlowCookies, replay idp.ReplayGuard) (*identityProvider, error) {
	mapper, err := mapping.New(c.Preset, c.Protocol, c.Map)
	if err != nil {
		return nil, err
	}
	p := &identityProvider{name: c.Name, protocol: c.Protocol, mapper: mapper, rules: c.rules()}
	switch c.Protocol {
	case idp.ProtocolOIDC:
		o := c.OIDC
		p.login, err = oidc.New(oidc.Config{
			Name:         c.Name,
			Issuer:       repl.ReplaceKnown(o.Issuer, ""),
			ClientID:     repl.ReplaceKnown(o.ClientID, ""),
			ClientSecret: repl.ReplaceKnown(o.ClientSecret, ""),
			Scopes:       o.Scopes,
			Algorithms:   o.Algorithms,
			TenantID:     repl.ReplaceKnown(o.TenantID, ""),
			ClockSkew:    time.Duration(o.ClockSkew),
		}, flows, replay)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("protocol %q is not available", c.Protocol)
	}
	return p, nil
}

// callbackPath is where the IdP sends the browser back, under prefix.
func (p *identityProvider) callbackPath(prefix string) string {
	if p.protocol == idp.ProtocolSAML {
		return prefix + "saml/" + p.name + "/acs"
	}
	return prefix + "oidc/" + p.name + "/callback"
}
