package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/idpcheck"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/signin"
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
	// TrustEmail vouches for the email this IdP gives, which its
	// administrators control (oidc.Config.TrustEmail, saml.Config.TrustEmail).
	TrustEmail bool `json:"trust_email,omitempty"`
	// SCIM says SCIM provisions this IdP's users (an sso_scim handler lists
	// it): a user SCIM or an admin deleted is refused at sign-in, not created
	// again by JIT. Explicit, so JIT never depends on a block elsewhere.
	SCIM bool `json:"scim,omitempty"`

	// OIDC holds the OpenID Connect settings when Protocol is "oidc".
	OIDC *OIDCConfig `json:"oidc,omitempty"`
	// SAML holds the SAML 2.0 settings when Protocol is "saml".
	SAML *SAMLConfig `json:"saml,omitempty"`
}

// OIDCConfig are the OpenID Connect relying-party settings. Issuer, client ID and
// secret, and tenant ID take placeholders ({env.CLIENT_SECRET}); the rest are literal.
type OIDCConfig struct {
	Issuer               string         `json:"issuer"`
	ClientID             string         `json:"client_id"`
	ClientSecret         string         `json:"client_secret,omitempty"`
	TokenAuth            string         `json:"token_auth,omitempty"` // oidc.Config.TokenAuth
	Scopes               []string       `json:"scopes,omitempty"`
	Algorithms           []string       `json:"algorithms,omitempty"`
	TenantID             string         `json:"tenant_id,omitempty"`
	Tenants              []string       `json:"tenants,omitempty"` // oidc.Config.Tenants: Entra multi-tenant
	ClockSkew            caddy.Duration `json:"clock_skew,omitempty"`
	OfflineAccess        bool           `json:"offline_access,omitempty"`         // asks for offline_access; the refresh token is kept only for routes passing tokens (README, "Tokens for the upstream")
	AllowUnverifiedEmail bool           `json:"allow_unverified_email,omitempty"` // oidc.Config.AllowUnverifiedEmail
	RequireACR           []string       `json:"require_acr,omitempty"`            // oidc.Config.RequireACR
	HostedDomains        []string       `json:"hosted_domain,omitempty"`          // oidc.Config.HostedDomains
}

// Values accepted by IdPConfig fields.
var (
	protocols     = []string{idp.ProtocolOIDC, idp.ProtocolSAML}
	updateModes   = []string{provision.UpdateForce.String(), provision.UpdateImport.String()}
	createModes   = []string{"active", "pending"}
	optionalAttrs = []string{mapping.FirstName, mapping.LastName, mapping.Email}
)

// Validate checks the IdP's settings without side effects (`caddy sso
// check` runs it on each IdP of a config).
func (c *IdPConfig) Validate() error { return c.validate() }

// validate checks what needs no placeholder replaced, at the end of each
// Caddyfile idp block and at Provision for JSON: both meet the same rules.
func (c *IdPConfig) validate() error {
	if err := cmp.Or(idp.CheckName(c.Name), oneOf("protocol", c.Protocol, protocols)); err != nil {
		return err
	}
	// A block of the other protocol would be ignored: say so instead.
	if c.Protocol == idp.ProtocolOIDC && c.SAML != nil {
		return errors.New(`an oidc IdP takes no "saml" settings (use protocol saml, or drop them)`)
	}
	if c.Protocol == idp.ProtocolSAML && c.OIDC != nil {
		return errors.New(`a saml IdP takes no "oidc" settings (use protocol oidc, or drop them)`)
	}
	if err := oneOf("create_as", cmp.Or(c.CreateAs, "active"), createModes); err != nil {
		return err
	}
	r, err := c.rules()
	if err = cmp.Or(err, r.CheckJIT()); err != nil { // CheckJIT: a rule of the whole block
		return err
	}
	if _, err := mapping.New(c.Preset, c.Protocol, c.Map); err != nil {
		return err
	}
	switch c.Protocol {
	case idp.ProtocolOIDC:
		// What oidc.New would refuse at Provision, placeholders left for it.
		return cmp.Or(c.OIDC, new(OIDCConfig)).config(c).Check(idp.HasPlaceholder)
	case idp.ProtocolSAML:
		return cmp.Or(c.SAML, new(SAMLConfig)).check(true)
	}
	return nil
}

func oneOf(what, v string, allowed []string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("unknown %s %q (expected one of: %s)", what, v, strings.Join(allowed, ", "))
}

// rules returns the JIT rules of this IdP, checked by provision: the one
// place those rules (and their spellings) are defined.
func (c *IdPConfig) rules() (provision.Rules, error) {
	r := provision.Rules{
		JIT:            c.JIT,
		Optional:       c.Optional,
		AllowedDomains: c.AllowedDomains,
		DefaultGroups:  c.DefaultGroups,
		CreatePending:  c.CreateAs == "pending",
		LinkByEmail:    c.LinkByEmail,
		SCIMManaged:    c.SCIM,
	}
	if c.Update != "" {
		mode, err := provision.ParseUpdateMode(c.Update)
		if err != nil {
			return r, err
		}
		r.Update = mode
	}
	return r, r.Validate()
}

// build makes the IdP ready to serve without touching the store or the
// network (the provider's Start does). repl resolves placeholders; one
// that resolves to nothing in a required setting is an error naming it.
func (c *IdPConfig) build(a *App, repl *caddy.Replacer) (*gateway.IdP, error) {
	mapper, err := mapping.New(c.Preset, c.Protocol, c.Map)
	if err != nil {
		return nil, err
	}
	rules, err := c.rules()
	if err != nil {
		return nil, err
	}
	p := &gateway.IdP{Name: c.Name, Protocol: c.Protocol,
		SignIn: signin.IdP{Name: c.Name, Mapper: mapper, Rules: rules}}
	logger := a.logger.Named(c.Protocol)
	switch c.Protocol {
	case idp.ProtocolOIDC:
		o := c.OIDC
		cfg := o.config(c)
		if cfg.Issuer, err = resolve(repl, "issuer", o.Issuer, true); err != nil {
			return nil, err
		}
		if cfg.ClientID, err = resolve(repl, "client_id", o.ClientID, true); err != nil {
			return nil, err
		}
		if cfg.ClientSecret, err = resolve(repl, "client_secret", o.ClientSecret, false); err == nil {
			cfg.TenantID, err = resolve(repl, "tenant_id", o.TenantID, false)
		}
		if err != nil {
			return nil, err
		}
		warnWritten(logger, o.ClientSecret, "the client secret", "{env.OIDC_CLIENT_SECRET}", zap.String("idp", c.Name))
		p.OfflineAccess = cfg.OfflineAccess
		cfg.Logger, cfg.TenantKeyClaims = logger, mapper.Expected(mapping.UniqueUserID) // namespaced by tenant with tenants
		if p.Provider, err = oidc.New(cfg); err != nil {
			return nil, err
		}
	case idp.ProtocolSAML:
		if p.Provider, err = c.SAML.build(c.Name, c.TrustEmail, repl, logger); err != nil {
			return nil, err
		}
		if c.LinkByEmail && !c.TrustEmail {
			logger.Warn("link_by_email has no effect on a SAML identity provider without trust_email: SAML does not say whether an email address was verified, and only verified addresses are linked",
				zap.String("idp", c.Name))
		}
	default:
		return nil, fmt.Errorf("protocol %q is not available", c.Protocol)
	}
	a.metrics.WatchIdP(c.Name, p.Provider)
	return p, nil
}

// config is the relying party's configuration of IdP c as written, placeholders
// unresolved: validate holds it to oidc.Config.Check, build resolves it.
func (o *OIDCConfig) config(c *IdPConfig) oidc.Config {
	return oidc.Config{Name: c.Name, TrustEmail: c.TrustEmail, Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		TenantID: o.TenantID, Tenants: o.Tenants, Scopes: o.Scopes, Algorithms: o.Algorithms, ClockSkew: time.Duration(o.ClockSkew),
		RequireACR: o.RequireACR, HostedDomains: o.HostedDomains, AllowUnverifiedEmail: o.AllowUnverifiedEmail, TokenAuth: o.TokenAuth,
		OfflineAccess: o.OfflineAccess || slices.Contains(o.Scopes, "offline_access")} // the scope says what the setting does
}

// resolve resolves a setting's placeholders. One that resolves to nothing, all of the value or part of it ({env.ID}/as), is an
// unset variable or a file unread, which the error names, for optional settings too (an unset tenant_id would admit every tenant).
func resolve(repl *caddy.Replacer, setting, raw string, need bool) (string, error) { // need: unwritten is an error too
	v, err := repl.ReplaceOrErr(raw, true, false) // err: "evaluated placeholder {env.X} is empty"; a request's ({http.…}) stay
	switch empty := strings.TrimPrefix(fmt.Sprint(err), "evaluated placeholder "); {
	case err == nil && (v != "" || raw == "" && !need):
		return v, nil
	case err != nil && strings.Contains(empty, "{file."):
		return "", fmt.Errorf("%s %s: is the file there, readable by Caddy's user, and not empty?", setting, empty)
	case err != nil:
		return "", fmt.Errorf("%s %s: is the variable set in Caddy's environment?", setting, empty)
	}
	return "", fmt.Errorf("%s is required", setting)
}

// warnWritten warns when raw, a secret's setting, writes the secret into
// the config itself rather than a placeholder.
func warnWritten(logger *zap.Logger, raw, secret, placeholder string, fields ...zap.Field) {
	if raw != "" && !idp.HasPlaceholder(raw) {
		logger.Warn(secret+" is written into the config, where the admin API and autosaved configs show it; use a placeholder such as "+placeholder, fields...)
	}
}

// Probe checks the IdP as sign-in will meet it (idpcheck): `caddy sso
// check` reports the findings, and the app logs the problems at start.
func (c *IdPConfig) Probe(ctx context.Context, client *http.Client, repl *caddy.Replacer, now time.Time) []idpcheck.Finding {
	if s := c.SAML; s != nil { // the settings sign-in uses (SAMLConfig.config), the IdP's resolved
		cfg := s.config(c.Name, nil)
		cfg.MetadataURL, cfg.MetadataFile, cfg.IdPEntityID = repl.ReplaceKnown(s.MetadataURL, ""), repl.ReplaceKnown(s.MetadataFile, ""), repl.ReplaceKnown(s.IdPEntityID, "")
		return idpcheck.SAML(ctx, client, cfg, now)
	}
	o := *c.OIDC // the settings sign-in uses, the issuer resolved; of the secret, only whether there is one counts
	o.Issuer = repl.ReplaceKnown(o.Issuer, "")
	return idpcheck.OIDC(ctx, client, o.config(c))
}

// probeIdPs logs, for each IdP, what sign-in will refuse, with the fix
// (docs/troubleshooting.md, "idp_misconfigured"); a Stop ends it.
func (a *App) probeIdPs(ctx context.Context) {
	client := &http.Client{Timeout: idp.DefaultHTTPTimeout} // sign-in's: an IdP slower than that fails every sign-in
	for _, c := range a.IdPs {
		if fs := c.Probe(ctx, client, caddy.NewReplacer(), time.Now()); ctx.Err() == nil {
			idpcheck.LogProblems(a.logger, c.Name, fs)
		}
	}
}
