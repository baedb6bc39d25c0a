package caddymodule

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/store/backend"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("sso", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("sso", parseHandlerDirective)
	// Authentication runs before anything that serves or rewrites content
	// for the upstream, like Caddy's own basic_auth.
	httpcaddyfile.RegisterDirectiveOrder("sso", httpcaddyfile.Before, "basic_auth")
}

// parseGlobalOption parses the global option
//
//	sso {
//		store bolt <path>
//		session {
//			lifetime <duration>
//			idle_timeout <duration>
//			max_sessions_per_user <n>
//		}
//		audit_retention <duration>|0
//		pages_dir <directory>
//		idp <name> oidc|saml {
//			…
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	d.Next() // "sso", the line a second option is reported at
	if existing != nil {
		return nil, d.Err("sso: the global option may appear only once")
	}
	app := new(App)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	given := make(onceEach)
	idpAt := make(map[string]lineOf)
	for d.NextBlock(0) {
		s := next(d, "sso")
		if s.key != "idp" && s.key != "session" {
			if err := given.once(d, "sso ", s.key); err != nil {
				return nil, err
			}
		}
		var err error
		switch s.key {
		case "store":
			app.StoreConfig, err = parseStore(s)
		case "session":
			app.SessionConfig = cmp.Or(app.SessionConfig, new(SessionConfig))
			err = parseSession(s, app.SessionConfig, given)
		case "audit_retention":
			app.AuditRetention = new(caddy.Duration)
			if d, perr := caddy.ParseDuration(strings.Join(s.args, " ")); perr != nil || d < 0 {
				err = s.errf("audit_retention %q is not a duration (0 keeps every event)", strings.Join(s.args, " "))
			} else if d > 0 {
				*app.AuditRetention, err = s.duration()
			}
		case "pages_dir":
			app.PagesDir, err = s.one()
		case "idp":
			// The idp line, not the block's closing brace, is where a
			// second definition is reported.
			at := lineOf{d.File(), d.Line()}
			c, err := parseIdP(s)
			if err != nil {
				return nil, err
			}
			if first, ok := idpAt[c.Name]; ok {
				return nil, fmt.Errorf("sso idp: %q is defined twice, at %s (first at %s)", c.Name, at, first)
			}
			idpAt[c.Name] = at
			app.IdPs = append(app.IdPs, c)
		default:
			err = s.unknown("store, session, audit_retention, pages_dir or idp")
		}
		if err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: "sso", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseSession parses
//
//	session {
//		lifetime <duration>
//		idle_timeout <duration>
//		max_sessions_per_user <n>
//	}
func parseSession(s setting, c *SessionConfig, given onceEach) error {
	// A bare or empty session line would set nothing.
	if len(s.args) > 0 || !s.d.NextBlock(1) {
		return s.errf("session takes a block: session { lifetime <duration>; idle_timeout <duration>; max_sessions_per_user <n> }")
	}
	for more := true; more; more = s.d.NextBlock(1) {
		s := next(s.d, "sso session")
		if err := given.once(s.d, "sso session ", s.key); err != nil {
			return err
		}
		var err error
		switch s.key {
		case "lifetime":
			c.Lifetime, err = s.duration()
		case "idle_timeout":
			c.IdleTimeout, err = s.duration()
		case "max_sessions_per_user":
			c.MaxPerUser, err = s.count()
		default:
			err = s.unknown("lifetime, idle_timeout or max_sessions_per_user")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseStore parses
//
//	store bolt <path>
//	store postgres <dsn> {
//		pool_size <n>
//		statement_timeout <duration>
//	}
//
// The settings are checked as they are read, by the rules App.Validate
// applies to JSON configs too, so that an error has its line.
func parseStore(s setting) (*StoreConfig, error) {
	// "" is none (setting.one): bolt would take the default file.
	if len(s.args) != 2 || s.args[1] == "" || (s.args[0] != backend.Bolt && s.args[0] != backend.Postgres) {
		return nil, s.errf("store: expected: store bolt <path>, or store postgres <dsn> (a placeholder such as {env.SSO_DATABASE_URL})")
	}
	c := &StoreConfig{Backend: s.args[0]}
	block := "sso store " + c.Backend
	if c.Backend == backend.Bolt {
		c.Path = s.args[1]
		if s.d.NextBlock(1) {
			s.d.Prev() // the "{", on the store line
			return nil, s.d.Errf("%s: takes no block", block)
		}
		return c, nil
	}
	c.DSN = s.args[1]
	if err := c.validate(); err != nil {
		return nil, s.d.Errf("%s: %v", block, err)
	}
	given := make(onceEach)
	for s.d.NextBlock(1) {
		s := next(s.d, block)
		if err := given.once(s.d, block+" ", s.key); err != nil {
			return nil, err
		}
		var err error
		switch s.key {
		case "pool_size":
			c.PoolSize, err = s.count()
		case "statement_timeout":
			c.StatementTimeout, err = s.duration()
		default:
			err = s.unknown("pool_size or statement_timeout")
		}
		if err := cmp.Or(err, s.check(c.validate())); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// lineOf is where a setting is written, for errors.
type lineOf struct {
	file string
	line int
}

func (l lineOf) String() string { return fmt.Sprintf("%s:%d", l.file, l.line) }

// onceEach records where each single-valued setting of a block was given,
// so that a second line, which would silently replace the first, is
// refused instead.
type onceEach map[string]lineOf

// once records key at the dispenser's line; given before, it is an error
// naming both lines. prefix starts the message ("sso idp a: ").
func (o onceEach) once(d *caddyfile.Dispenser, prefix, key string) error {
	here := lineOf{d.File(), d.Line()}
	if first, ok := o[key]; ok {
		return fmt.Errorf("%s%s given twice, at %s (first at %s)", prefix, key, here, first)
	}
	o[key] = here
	return nil
}

// setting is one line of a block: its key and arguments, and the block's
// name, which starts every error ("sso idp a: …"); the dispenser adds the line.
type setting struct {
	d     *caddyfile.Dispenser
	block string
	key   string
	args  []string
}

// next reads the dispenser's current line of the block.
func next(d *caddyfile.Dispenser, block string) setting {
	return setting{d: d, block: block, key: d.Val(), args: d.RemainingArgs()}
}

func (s setting) errf(format string, a ...any) error {
	return s.d.Errf("%s: %s", s.block, fmt.Sprintf(format, a...))
}

// one returns the line's only value. "" is none: written, it would read
// as unset and turn the setting off (an empty tenant_id admits every
// tenant).
func (s setting) one() (string, error) {
	switch {
	case len(s.args) == 0 || s.args[0] == "":
		return "", s.errf("%s needs a value", s.key)
	case len(s.args) == 1:
		return s.args[0], nil
	}
	return "", s.errf("%s takes one value", s.key)
}

// many returns the line's values, at least one, none "".
func (s setting) many() ([]string, error) {
	if len(s.args) == 0 || slices.Contains(s.args, "") {
		return nil, s.errf("%s needs at least one value, and no empty one", s.key)
	}
	return s.args, nil
}

// size returns the line's only value, a size in bytes (1048576, 1MiB…).
func (s setting) size() (int64, error) {
	v, err := s.one()
	if err != nil {
		return 0, err
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 || n > math.MaxInt64 {
		return 0, s.errf("%s %q is not a size, such as 1MiB", s.key, v)
	}
	return int64(n), nil
}

// unknown is the error for a line whose key the block does not know. A
// key "{" is a block opened by a setting that takes none.
func (s setting) unknown(expected string) error {
	if s.key == "{" {
		return s.errf("unexpected block: the setting on this line takes no block")
	}
	return s.errf("unknown setting %q (expected %s)", s.key, expected)
}

// flag is a line that takes no value.
func (s setting) flag() (bool, error) {
	if len(s.args) > 0 {
		return false, s.errf("%s takes no value", s.key)
	}
	return true, nil
}

// choice returns the line's only value, one of allowed.
func (s setting) choice(allowed []string) (string, error) {
	return s.checked(func(v string) error { return oneOf(s.key, v, allowed) })
}

// duration returns the line's only value, a duration idp.CheckDuration takes, above 0.
func (s setting) duration() (caddy.Duration, error) {
	v, err := s.one()
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, s.errf("%s %q is not a positive duration", s.key, v)
	}
	return caddy.Duration(dur), s.check(idp.CheckDuration(s.key, dur))
}

// check gives err, a setting's rule broken, the setting's line, and its
// name when err does not say it.
func (s setting) check(err error) error {
	switch {
	case err == nil:
		return nil
	case !strings.Contains(err.Error(), s.key):
		return s.errf("%s: %v", s.key, err)
	}
	return s.errf("%v", err)
}

// checked returns the line's only value, held to rule.
func (s setting) checked(rule func(string) error) (string, error) {
	v, err := s.one()
	return v, cmp.Or(err, s.check(rule(v)))
}

// errOf is the error of a call whose result only a rule's verdict matters of.
func errOf[T any](_ T, err error) error { return err }

// count returns the line's only value, a positive number.
func (s setting) count() (int, error) {
	v, err := s.one()
	n, nerr := strconv.Atoi(v)
	if err == nil && (nerr != nil || n < 1) {
		err = s.errf("%s %q is not a positive number", s.key, v)
	}
	return n, err
}

// idpLine parses one line of an idp block into c.
type idpLine func(s setting, c *IdPConfig) error

// parseIdP parses one "idp <name> oidc|saml { … }" block: the lines of
// sharedIdPLines, and those of oidcLines or samlLines. Each line is checked
// as it is read (SAML lines by SAMLConfig.check, the rule JSON configs
// get), so that an error has its line; what the block as a whole lacks is
// reported at its first line.
func parseIdP(s setting) (*IdPConfig, error) {
	d := s.d
	file, line := d.File(), d.Line()
	if len(s.args) != 2 {
		return nil, d.Err("sso idp: expected: idp <name> oidc|saml { … }")
	}
	c := &IdPConfig{Name: s.args[0], Protocol: s.args[1]}
	if err := oneOf("protocol", c.Protocol, protocols); err != nil {
		return nil, d.Errf("sso idp %s: %v", c.Name, err)
	}
	own, other, otherName := oidcLines(), samlLines(), "a saml setting"
	if c.Protocol == idp.ProtocolSAML {
		own, other, otherName = other, own, "an oidc setting"
		c.SAML = new(SAMLConfig)
	} else {
		c.OIDC = new(OIDCConfig)
	}
	maps.Copy(own, sharedIdPLines())
	block := "sso idp " + c.Name
	given := make(onceEach)
	for d.NextBlock(1) {
		s := next(d, block)
		parse := own[s.key]
		switch {
		case parse == nil && other[s.key] != nil:
			return nil, s.errf("%s is %s", s.key, otherName)
		case parse == nil:
			return nil, s.unknown("one of: " + strings.Join(slices.Sorted(maps.Keys(own)), ", "))
		}
		// Every setting takes one line, except sp_cert (a key pair, then
		// the previous one) and map (one line per attribute).
		once := s.key
		if s.key == "map" && len(s.args) > 0 {
			once = "map " + s.args[0]
		}
		if s.key != "sp_cert" {
			if err := given.once(d, block+": ", once); err != nil {
				return nil, err
			}
		}
		if err := cmp.Or(parse(s, c), s.check(c.checkLine())); err != nil {
			return nil, err
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("sso idp %s: %w, at %s:%d", c.Name, err, file, line)
	}
	return c, nil
}

// checkLine holds an idp block read so far to the rule of each setting
// given (what it lacks waits for its end), so that an error has the line
// that made it; an OIDC secret still unset (for HMAC) is a later line's.
func (c *IdPConfig) checkLine() error {
	err := cmp.Or(errOf(c.rules()), errOf(mapping.New(c.Preset, c.Protocol, c.Map)))
	if c.SAML != nil {
		return cmp.Or(err, c.SAML.check(false))
	}
	return cmp.Or(err, c.OIDC.config(c).CheckSettings(func(v string) bool { return v == "" || idp.HasPlaceholder(v) }))
}

// sharedIdPLines are the lines of every idp block:
//
//	preset entra|okta|pingone|generic
//	map <attribute> <name>…
//	jit
//	update force|import
//	optional firstName|lastName|email…
//	allowed_domains <domain>…
//	default_groups <group>…
//	create_as active|pending
//	link_by_email
//	trust_email
//	scim
func sharedIdPLines() map[string]idpLine {
	return map[string]idpLine{
		"preset": func(s setting, c *IdPConfig) (err error) { c.Preset, err = s.choice(mapping.Presets()); return err },
		"map": func(s setting, c *IdPConfig) error {
			if len(s.args) < 2 {
				return s.errf("expected: map <attribute> <name>…")
			}
			if c.Map == nil {
				c.Map = make(map[string][]string)
			}
			c.Map[s.args[0]] = s.args[1:]
			return nil
		},
		"jit":           func(s setting, c *IdPConfig) (err error) { c.JIT, err = s.flag(); return err },
		"link_by_email": func(s setting, c *IdPConfig) (err error) { c.LinkByEmail, err = s.flag(); return err },
		"trust_email":   func(s setting, c *IdPConfig) (err error) { c.TrustEmail, err = s.flag(); return err },
		"scim":          func(s setting, c *IdPConfig) (err error) { c.SCIM, err = s.flag(); return err },
		"update":        func(s setting, c *IdPConfig) (err error) { c.Update, err = s.choice(updateModes); return err },
		"create_as":     func(s setting, c *IdPConfig) (err error) { c.CreateAs, err = s.choice(createModes); return err },
		"optional": func(s setting, c *IdPConfig) (err error) {
			if c.Optional, err = s.many(); err == nil {
				for _, o := range c.Optional {
					if err := oneOf("optional attribute", o, optionalAttrs); err != nil {
						return s.errf("%v", err)
					}
				}
			}
			return err
		},
		"allowed_domains": func(s setting, c *IdPConfig) (err error) { c.AllowedDomains, err = s.many(); return err },
		"default_groups":  func(s setting, c *IdPConfig) (err error) { c.DefaultGroups, err = s.many(); return err },
	}
}

// oidcLines are the OpenID Connect lines of an idp block:
//
//	issuer <url>
//	client_id <id>
//	client_secret <secret>
//	token_auth client_secret_basic|client_secret_post   (as the IdP registered the client; default Basic)
//	scopes <scope>…
//	algorithms <alg>…
//	tenant_id <id> | tenants <tenant-id>…|any   (tenants: with Entra's organizations or common issuer, required there)
//	offline_access
//	clock_skew <duration>
//	allow_unverified_email
//	require_acr <acr>…                  (sent as acr_values; the ID token's acr must be one)
//	hosted_domain <domain>…             (Google Workspace: the ID token's hd must be one)
func oidcLines() map[string]idpLine {
	return map[string]idpLine{
		"issuer":                 func(s setting, c *IdPConfig) (err error) { c.OIDC.Issuer, err = s.one(); return err },
		"client_id":              func(s setting, c *IdPConfig) (err error) { c.OIDC.ClientID, err = s.one(); return err },
		"client_secret":          func(s setting, c *IdPConfig) (err error) { c.OIDC.ClientSecret, err = s.one(); return err },
		"token_auth":             func(s setting, c *IdPConfig) (err error) { c.OIDC.TokenAuth, err = s.one(); return err },
		"scopes":                 func(s setting, c *IdPConfig) (err error) { c.OIDC.Scopes, err = s.many(); return err },
		"algorithms":             func(s setting, c *IdPConfig) (err error) { c.OIDC.Algorithms, err = s.many(); return err },
		"tenant_id":              func(s setting, c *IdPConfig) (err error) { c.OIDC.TenantID, err = s.one(); return err },
		"tenants":                func(s setting, c *IdPConfig) (err error) { c.OIDC.Tenants, err = s.many(); return err },
		"offline_access":         func(s setting, c *IdPConfig) (err error) { c.OIDC.OfflineAccess, err = s.flag(); return err },
		"clock_skew":             func(s setting, c *IdPConfig) (err error) { c.OIDC.ClockSkew, err = s.duration(); return err },
		"require_acr":            func(s setting, c *IdPConfig) (err error) { c.OIDC.RequireACR, err = s.many(); return err },
		"hosted_domain":          func(s setting, c *IdPConfig) (err error) { c.OIDC.HostedDomains, err = s.many(); return err },
		"allow_unverified_email": func(s setting, c *IdPConfig) (err error) { c.OIDC.AllowUnverifiedEmail, err = s.flag(); return err },
	}
}

// samlLines are the SAML lines of an idp block:
//
//	metadata_url <url> | metadata_file <path> | metadata <xml>
//	idp_entity_id <entity ID>
//	entity_id <SP entity ID>
//	sp_cert <cert file> <key file>      (at most twice: current, previous)
//	sign_requests
//	request_binding redirect|post
//	idp_initiated
//	allow_sha1
//	metadata_refresh <duration>
//	max_response_size <size>            (bytes, or 512KiB, 1MiB, …)
//	clock_skew <duration>
//	authn_context <class ref URI>…      (required: one must match exactly)
func samlLines() map[string]idpLine {
	return map[string]idpLine{
		"metadata_url":     func(s setting, c *IdPConfig) (err error) { c.SAML.MetadataURL, err = s.one(); return err },
		"metadata_file":    func(s setting, c *IdPConfig) (err error) { c.SAML.MetadataFile, err = s.one(); return err },
		"metadata":         func(s setting, c *IdPConfig) (err error) { c.SAML.Metadata, err = s.one(); return err },
		"idp_entity_id":    func(s setting, c *IdPConfig) (err error) { c.SAML.IdPEntityID, err = s.one(); return err },
		"entity_id":        func(s setting, c *IdPConfig) (err error) { c.SAML.EntityID, err = s.one(); return err },
		"sign_requests":    func(s setting, c *IdPConfig) (err error) { c.SAML.SignRequests, err = s.flag(); return err },
		"idp_initiated":    func(s setting, c *IdPConfig) (err error) { c.SAML.IdPInitiated, err = s.flag(); return err },
		"allow_sha1":       func(s setting, c *IdPConfig) (err error) { c.SAML.AllowSHA1, err = s.flag(); return err },
		"request_binding":  func(s setting, c *IdPConfig) (err error) { c.SAML.RequestBinding, err = s.one(); return err },
		"metadata_refresh": func(s setting, c *IdPConfig) (err error) { c.SAML.MetadataRefresh, err = s.duration(); return err },
		"clock_skew":       func(s setting, c *IdPConfig) (err error) { c.SAML.ClockSkew, err = s.duration(); return err },
		"sp_cert": func(s setting, c *IdPConfig) error {
			if len(s.args) != 2 {
				return s.errf("expected: sp_cert <certificate file> <key file>")
			}
			c.SAML.SPCerts = append(c.SAML.SPCerts, SPCertConfig{Cert: s.args[0], Key: s.args[1]})
			return nil
		},
		"max_response_size": func(s setting, c *IdPConfig) (err error) { c.SAML.MaxResponseSize, err = s.size(); return err },
		"authn_context":     func(s setting, c *IdPConfig) (err error) { c.SAML.AuthnContext, err = s.many(); return err },
	}
}

// parseHandlerDirective parses
//
//	sso [<idp>…] {
//		idp <name>…
//		default_idp <name>
//		path_prefix /.sso/
//		headers default|oauth2_proxy|none
//		header <field> <Header-Name>|-
//		allow group|domain|user|idp <value>…
//		deny group|domain|user|idp <value>…
//		identity_jwt [header <Header-Name>] [ttl <duration>] [audience <aud>] [key_rotation <duration>]
//		base_url <scheme://host[:port]>
//		mode protect|auth_request|forward_auth
//		pass_access_token [<Header-Name>]
//		pass_id_token [<Header-Name>]
//		set_authorization_header
//		token_refresh_margin <duration>
//	}
func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	hd := new(Handler)
	h.Next() // "sso"
	file, line := h.File(), h.Line()
	given := make(onceEach)
	idps := h.RemainingArgs()
	if len(idps) > 0 {
		given["idp"] = lineOf{file, line}
	}
	for h.NextBlock(0) {
		s := next(h.Dispenser, "sso")
		if s.key == "idp" && len(s.args) == 2 && slices.Contains(protocols, s.args[1]) && cmp.Or(globalApp(h), new(App)).idpsByName()[s.args[1]] == nil { // a definition, in a site (not IdPs named so)
			return nil, s.errf("idp %[1]s %[2]s defines an IdP (no IdP is named %[2]s), which belongs in the global sso option at the top of the Caddyfile, { sso { idp %[1]s %[2]s { … } } }; a site's sso names it: sso %[1]s", s.args[0], s.args[1])
		}
		// Every setting takes one line, except allow and deny (which
		// add rules) and header (one line per identity field).
		once := s.key
		if s.key == "header" && len(s.args) > 0 {
			once = "header " + s.args[0]
		}
		if s.key != "allow" && s.key != "deny" {
			if err := given.once(h.Dispenser, "sso ", once); err != nil {
				return nil, err
			}
		}
		var err error
		switch s.key {
		case "idp":
			idps, err = s.many()
		case "default_idp":
			hd.DefaultIdP, err = s.one()
		case "base_url":
			hd.BaseURL, err = s.checked(func(v string) error { return errOf(gateway.BaseOrigin(v)) })
		case "mode":
			hd.Mode, err = s.checked(func(v string) error { return errOf(gateway.ParseMode(v)) })
		case "headers":
			hd.HeaderSet, err = s.one()
		case "path_prefix":
			hd.PathPrefix, err = s.checked(gateway.CheckPathPrefix)
		case "allow", "deny":
			if len(s.args) < 2 {
				return nil, s.errf("expected: %s group|domain|user|idp <value>…", s.key)
			}
			rule, list := gateway.AccessRule{Kind: s.args[0], Values: s.args[1:]}, &hd.Allow
			if s.key == "deny" {
				list = &hd.Deny
			}
			*list = append(*list, rule)
			err = s.check(rule.Check())
		case "identity_jwt":
			if hd.IdentityJWT, err = parseIdentityJWT(s); err == nil {
				err = s.check(hd.signerConfig().Validate())
			}
		case "header":
			if len(s.args) != 2 || s.args[1] == "" {
				return nil, s.errf("expected: header <field> <Header-Name>|-")
			}
			if hd.Headers == nil {
				hd.Headers = make(map[string]string)
			}
			hd.Headers[s.args[0]] = s.args[1]
		case "pass_access_token", "pass_id_token":
			if len(s.args) > 1 || slices.Contains(s.args, "") {
				return nil, s.errf("%s: expected at most one header name", s.key)
			}
			name, target := gateway.DefaultAccessTokenHeader, &hd.PassAccessToken
			if s.key == "pass_id_token" {
				name, target = gateway.DefaultIDTokenHeader, &hd.PassIDToken
			}
			if len(s.args) == 1 {
				name = s.args[0]
			}
			*target = name
		case "set_authorization_header":
			hd.SetAuthorizationHeader, err = s.flag()
		case "token_refresh_margin":
			hd.TokenRefreshMargin, err = s.duration()
		default:
			err = s.unknown("idp, default_idp, path_prefix, base_url, mode, headers, header, allow, deny, identity_jwt, pass_access_token, pass_id_token, set_authorization_header or token_refresh_margin")
		}
		if err != nil {
			return nil, err
		}
	}
	if len(idps) == 1 {
		hd.IdP = idps[0]
	} else {
		hd.IdPs = idps
	}
	if err := hd.Validate(); err != nil {
		// A header is reported at the line of the setting that names
		// it (the later of two that name one header).
		at := lineOf{file, line}
		var he *gateway.HeaderError
		if errors.As(err, &he) {
			for _, u := range he.At {
				if l, ok := given[u.Key()]; ok && l.line > at.line {
					at = l
				}
			}
		}
		return nil, fmt.Errorf("%w, at %s", err, at)
	}
	// Check the route against the global option's IdPs here, where the
	// line is known, rather than at Provision, where it is not.
	app := globalApp(h)
	if app == nil {
		app = new(App)
	}
	if _, err := app.routeIdPs(hd); err != nil {
		return nil, fmt.Errorf("sso: %w, at %s:%d", err, file, line)
	}
	return hd, nil
}

// parseIdentityJWT parses
//
//	identity_jwt [header <Header-Name>] [ttl <duration>] [audience <aud>] [key_rotation <duration>]
func parseIdentityJWT(s setting) (*IdentityJWT, error) {
	j := new(IdentityJWT)
	if len(s.args)%2 != 0 {
		return nil, s.errf("identity_jwt: expected: identity_jwt [header <Header-Name>] [ttl <duration>] [audience <aud>] [key_rotation <duration>]")
	}
	given := make(onceEach)
	for i := 0; i < len(s.args); i += 2 {
		pair := setting{d: s.d, block: s.block + " identity_jwt", key: s.args[i], args: s.args[i+1 : i+2]}
		if err := given.once(s.d, pair.block+": ", pair.key); err != nil {
			return nil, err
		}
		var err error
		switch pair.key {
		case "header":
			j.Header, err = pair.one()
		case "audience":
			j.Audience, err = pair.one()
		case "ttl":
			j.TTL, err = pair.duration()
		case "key_rotation":
			j.KeyRotation, err = pair.duration()
		default:
			err = pair.errf("unknown setting %q (expected header, ttl, audience or key_rotation)", pair.key)
		}
		if err != nil {
			return nil, err
		}
	}
	return j, nil
}

// idpsByName returns the app's idp blocks by name.
func (a *App) idpsByName() map[string]*IdPConfig {
	out := make(map[string]*IdPConfig, len(a.IdPs))
	for _, c := range a.IdPs {
		out[c.Name] = c
	}
	return out
}

// globalApp returns the sso app the global sso option configures (global
// options are parsed before directives), or nil without one.
func globalApp(h httpcaddyfile.Helper) *App {
	app := new(App)
	if opt, ok := h.Option("sso").(httpcaddyfile.App); !ok || json.Unmarshal(opt.Value, app) != nil {
		return nil
	}
	return app
}
