package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml"
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
	if existing != nil {
		return nil, d.Err("sso: the global option may appear only once")
	}
	app := new(App)
	d.Next() // "sso"
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	given := make(onceEach)
	idpAt := make(map[string]lineOf)
	for d.NextBlock(0) {
		if key := d.Val(); key != "idp" && key != "session" {
			if err := given.once(d, "sso ", key); err != nil {
				return nil, err
			}
		}
		switch d.Val() {
		case "store":
			c, err := parseStore(d)
			if err != nil {
				return nil, err
			}
			app.StoreConfig = c
		case "session":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if app.SessionConfig == nil {
				app.SessionConfig = new(SessionConfig)
			}
			for d.NextBlock(1) {
				if err := given.once(d, "sso session ", d.Val()); err != nil {
					return nil, err
				}
				var target *caddy.Duration
				switch d.Val() {
				case "lifetime":
					target = &app.SessionConfig.Lifetime
				case "idle_timeout":
					target = &app.SessionConfig.IdleTimeout
				case "max_sessions_per_user":
					v, err := singleArg(d)
					if err != nil {
						return nil, err
					}
					n, err := strconv.Atoi(v)
					if err != nil || n < 1 {
						return nil, d.Errf("sso session max_sessions_per_user: %q is not a positive number", v)
					}
					app.SessionConfig.MaxPerUser = n
					continue
				default:
					return nil, d.Errf("sso session: unknown setting %q (expected lifetime, idle_timeout or max_sessions_per_user)", d.Val())
				}
				if err := parseDuration(d, target); err != nil {
					return nil, err
				}
			}
		case "audit_retention":
			v, err := singleArg(d)
			if err != nil {
				return nil, err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < 0 {
				return nil, d.Errf("sso audit_retention: %q is not a duration (0 keeps every event)", v)
			}
			keep := caddy.Duration(dur)
			app.AuditRetention = &keep
		case "pages_dir":
			var err error
			if app.PagesDir, err = singleArg(d); err != nil {
				return nil, err
			}
		case "idp":
			// The idp line, not the block's closing brace, is where a
			// second definition is reported.
			at := lineOf{d.File(), d.Line()}
			c, err := parseIdP(d)
			if err != nil {
				return nil, err
			}
			if first, ok := idpAt[c.Name]; ok {
				return nil, fmt.Errorf("sso idp: %q is defined twice, at %s (first at %s)", c.Name, at, first)
			}
			idpAt[c.Name] = at
			app.IdPs = append(app.IdPs, c)
		default:
			return nil, d.Errf("sso: unknown setting %q (expected store, session, audit_retention, pages_dir or idp)", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "sso", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseStore parses
//
//	store bolt <path>
//	store postgres <dsn> {
//		pool_size <n>
//		statement_timeout <duration>
//	}
func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	args := d.RemainingArgs()
	if len(args) != 2 || (args[0] != backend.Bolt && args[0] != backend.Postgres) {
		return nil, d.Err("sso store: expected: store bolt <path>, or store postgres <dsn> (a placeholder such as {env.SSO_DATABASE_URL})")
	}
	c := &StoreConfig{Backend: args[0]}
	// The settings are checked as they are read, by the rules App.Validate
	// applies to JSON configs too, so that an error has its line.
	check := func() error {
		if err := c.validate(); err != nil {
			return d.Errf("sso store %s: %v", c.Backend, err)
		}
		return nil
	}
	if c.Backend == backend.Bolt {
		c.Path = args[1]
		if d.NextBlock(1) {
			return nil, d.Err("sso store bolt: takes no block")
		}
		return c, nil
	}
	c.DSN = args[1]
	if err := check(); err != nil {
		return nil, err
	}
	given := make(onceEach)
	for d.NextBlock(1) {
		if err := given.once(d, "sso store postgres ", d.Val()); err != nil {
			return nil, err
		}
		switch d.Val() {
		case "pool_size":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 || d.NextArg() {
				return nil, d.Errf("sso store postgres pool_size: %q is not a positive number", d.Val())
			}
			c.PoolSize = n
		case "statement_timeout":
			if err := parseDuration(d, &c.StatementTimeout); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("sso store postgres: unknown setting %q (expected pool_size or statement_timeout)", d.Val())
		}
		if err := check(); err != nil {
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

func parseDuration(d *caddyfile.Dispenser, target *caddy.Duration) error {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return d.Errf("sso %s: %q is not a positive duration", name, v)
	}
	*target = caddy.Duration(dur)
	return nil
}

// singleArg returns the one argument of the line.
func singleArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

// parseIdP parses one "idp <name> <protocol> { … }" block. Shared lines:
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
//	clock_skew <duration>
//
// oidc adds issuer, client_id, client_secret, scopes, algorithms,
// tenant_id and offline_access; saml adds the lines parseSAMLSetting documents.
func parseIdP(d *caddyfile.Dispenser) (*IdPConfig, error) {
	file, line := d.File(), d.Line()
	args := d.RemainingArgs()
	if len(args) != 2 {
		return nil, d.Err("sso idp: expected: idp <name> oidc|saml { … }")
	}
	c := &IdPConfig{Name: args[0], Protocol: args[1]}
	if err := oneOf("protocol", c.Protocol, protocols); err != nil {
		return nil, d.Errf("sso idp %s: %v", c.Name, err)
	}
	switch c.Protocol {
	case idp.ProtocolOIDC:
		c.OIDC = new(OIDCConfig)
	case idp.ProtocolSAML:
		c.SAML = new(SAMLConfig)
	}
	errf := func(format string, a ...any) error {
		return d.Errf("sso idp %s: "+format, append([]any{c.Name}, a...)...)
	}
	one := func() (string, error) {
		key := d.Val()
		if !d.NextArg() {
			return "", errf("%s needs a value", key)
		}
		v := d.Val()
		if d.NextArg() {
			return "", errf("%s takes one value", key)
		}
		return v, nil
	}
	many := func() ([]string, error) {
		key := d.Val()
		v := d.RemainingArgs()
		if len(v) == 0 {
			return nil, errf("%s needs at least one value", key)
		}
		return v, nil
	}
	flag := func() (bool, error) {
		key := d.Val()
		if d.NextArg() {
			return false, errf("%s takes no value", key)
		}
		return true, nil
	}
	oidcOnly := func() error {
		if c.OIDC == nil {
			return errf("%s is an oidc setting", d.Val())
		}
		return nil
	}
	samlOnly := func() error {
		if c.SAML == nil {
			return errf("%s is a saml setting", d.Val())
		}
		return nil
	}

	given := make(onceEach)
	for d.NextBlock(1) {
		var err error
		// Every setting takes one line, except sp_cert (a key pair, then
		// the previous one) and map (one line per attribute).
		if key := d.Val(); key != "sp_cert" && key != "map" {
			if err := given.once(d, "sso idp "+c.Name+": ", key); err != nil {
				return nil, err
			}
		}
		switch key := d.Val(); key {
		case "preset":
			if c.Preset, err = one(); err == nil && !slices.Contains(mapping.Presets(), c.Preset) {
				err = errf("unknown preset %q (expected one of: %s)", c.Preset, strings.Join(mapping.Presets(), ", "))
			}
		case "map":
			var v []string
			if v, err = many(); err == nil {
				if len(v) < 2 {
					err = errf("expected: map <attribute> <name>…")
				} else if err = given.once(d, "sso idp "+c.Name+": ", "map "+v[0]); err == nil {
					if c.Map == nil {
						c.Map = make(map[string][]string)
					}
					c.Map[v[0]] = v[1:]
				}
			}
		case "jit":
			c.JIT, err = flag()
		case "link_by_email":
			c.LinkByEmail, err = flag()
		case "scim":
			c.SCIM, err = flag()
		case "update":
			if c.Update, err = one(); err == nil {
				err = wrapOneOf(errf, "update", c.Update, updateModes)
			}
		case "create_as":
			if c.CreateAs, err = one(); err == nil {
				err = wrapOneOf(errf, "create_as", c.CreateAs, createModes)
			}
		case "optional":
			if c.Optional, err = many(); err == nil {
				for _, o := range c.Optional {
					if err = wrapOneOf(errf, "optional attribute", o, optionalAttrs); err != nil {
						break
					}
				}
			}
		case "allowed_domains":
			c.AllowedDomains, err = many()
		case "default_groups":
			c.DefaultGroups, err = many()
		case "issuer":
			if err = oidcOnly(); err == nil {
				c.OIDC.Issuer, err = one()
			}
		case "client_id":
			if err = oidcOnly(); err == nil {
				c.OIDC.ClientID, err = one()
			}
		case "client_secret":
			if err = oidcOnly(); err == nil {
				c.OIDC.ClientSecret, err = one()
			}
		case "scopes":
			if err = oidcOnly(); err == nil {
				c.OIDC.Scopes, err = many()
			}
		case "algorithms":
			if err = oidcOnly(); err == nil {
				c.OIDC.Algorithms, err = many()
			}
		case "tenant_id":
			if err = oidcOnly(); err == nil {
				c.OIDC.TenantID, err = one()
			}
		case "offline_access":
			if err = oidcOnly(); err == nil {
				c.OIDC.OfflineAccess, err = flag()
			}
		case "clock_skew":
			if c.SAML != nil {
				err = parseDuration(d, &c.SAML.ClockSkew)
				if err == nil && time.Duration(c.SAML.ClockSkew) > saml.MaxClockSkew {
					err = errf("clock_skew %v exceeds the maximum of %v", time.Duration(c.SAML.ClockSkew), saml.MaxClockSkew)
				}
			} else {
				err = parseDuration(d, &c.OIDC.ClockSkew)
			}
		case "metadata_url", "metadata_file", "metadata", "idp_entity_id", "entity_id", "sp_cert",
			"sign_requests", "request_binding", "idp_initiated", "allow_sha1", "metadata_refresh", "max_response_size":
			if err = samlOnly(); err == nil {
				err = parseSAMLSetting(d, c.SAML, errf, one, flag)
			}
		default:
			err = errf("unknown setting %q (expected one of: %s)", key, strings.Join(idpSettings(c.Protocol), ", "))
		}
		if err != nil {
			return nil, err
		}
	}
	// What the block as a whole lacks is reported at its first line, not
	// at the closing brace.
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("sso idp %s: %w, at %s:%d", c.Name, err, file, line)
	}
	return c, nil
}

// idpSettings lists the settings of an idp block of the protocol, for
// error messages.
func idpSettings(protocol string) []string {
	shared := []string{"preset", "map", "jit", "update", "optional", "allowed_domains", "default_groups",
		"create_as", "link_by_email", "scim", "clock_skew"}
	if protocol == idp.ProtocolOIDC {
		return append(shared, "issuer", "client_id", "client_secret", "scopes", "algorithms", "tenant_id", "offline_access")
	}
	return append(shared, "metadata_url", "metadata_file", "metadata", "idp_entity_id", "entity_id", "sp_cert",
		"sign_requests", "request_binding", "idp_initiated", "allow_sha1", "metadata_refresh", "max_response_size")
}

// parseSAMLSetting parses one SAML line of an idp block:
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
func parseSAMLSetting(d *caddyfile.Dispenser, c *SAMLConfig, errf func(string, ...any) error,
	one func() (string, error), flag func() (bool, error)) error {
	var err error
	switch key := d.Val(); key {
	case "metadata_url", "metadata_file", "metadata":
		var v string
		if v, err = one(); err != nil {
			return err
		}
		if c.MetadataURL != "" || c.MetadataFile != "" || c.Metadata != "" {
			return errf("%s: the IdP metadata is already given (use one of metadata_url, metadata_file, metadata)", key)
		}
		switch key {
		case "metadata_url":
			c.MetadataURL = v
			if !hasPlaceholder(v) {
				if _, err := idp.CheckURL(v); err != nil {
					return errf("metadata_url: %v", err)
				}
			}
		case "metadata_file":
			c.MetadataFile = v
		default:
			if !strings.Contains(v, "<") {
				return errf("metadata takes the IdP metadata XML itself (for a file, use metadata_file)")
			}
			c.Metadata = v
		}
	case "idp_entity_id":
		c.IdPEntityID, err = one()
	case "entity_id":
		c.EntityID, err = one()
	case "sp_cert":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return errf("expected: sp_cert <certificate file> <key file>")
		}
		if len(c.SPCerts) == saml.MaxSPKeys {
			return errf("sp_cert may appear at most %d times (the current key pair, then the previous one)", saml.MaxSPKeys)
		}
		c.SPCerts = append(c.SPCerts, SPCertConfig{Cert: args[0], Key: args[1]})
	case "sign_requests":
		c.SignRequests, err = flag()
	case "idp_initiated":
		c.IdPInitiated, err = flag()
	case "allow_sha1":
		c.AllowSHA1, err = flag()
	case "request_binding":
		if c.RequestBinding, err = one(); err == nil {
			err = wrapOneOf(errf, "request_binding", c.RequestBinding, requestBindings)
		}
	case "metadata_refresh":
		err = parseDuration(d, &c.MetadataRefresh)
	case "max_response_size":
		var v string
		if v, err = one(); err != nil {
			return err
		}
		n, perr := humanize.ParseBytes(v)
		if perr != nil || n == 0 || n > math.MaxInt64 {
			return errf("max_response_size %q must be a size, such as 1MiB", v)
		}
		if err := saml.CheckMaxResponseSize(int64(n)); err != nil {
			return errf("max_response_size %q %v", v, err)
		}
		c.MaxResponseSize = int64(n)
	}
	return err
}

func wrapOneOf(errf func(string, ...any) error, what, v string, allowed []string) error {
	if err := oneOf(what, v, allowed); err != nil {
		return errf("%v", err)
	}
	return nil
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
	setIdPs := func(names []string) {
		hd.IdP, hd.IdPs = "", nil
		if len(names) == 1 {
			hd.IdP = names[0]
		} else {
			hd.IdPs = names
		}
	}
	given := make(onceEach)
	if args := h.RemainingArgs(); len(args) > 0 {
		setIdPs(args)
		given["idp"] = lineOf{file, line}
	}
	// The settings that take one value, with what that value is.
	single := map[string]struct {
		target *string
		want   string
	}{
		"default_idp": {&hd.DefaultIdP, "one IdP name"},
		"path_prefix": {&hd.PathPrefix, "one path"},
		"base_url":    {&hd.BaseURL, "one URL, such as https://app.example.com"},
		"mode":        {&hd.Mode, "protect, auth_request or forward_auth"},
		"headers":     {&hd.HeaderSet, "default, oauth2_proxy or none"},
	}
	for h.NextBlock(0) {
		key := h.Val()
		args := h.RemainingArgs()
		// Every setting takes one line, except allow and deny (which
		// add rules) and header (one line per identity field).
		once := key
		if key == "header" && len(args) > 0 {
			once = "header " + args[0]
		}
		if key != "allow" && key != "deny" {
			if err := given.once(h.Dispenser, "sso ", once); err != nil {
				return nil, err
			}
		}
		if one, ok := single[key]; ok {
			if len(args) != 1 {
				return nil, h.Errf("sso %s: expected %s", key, one.want)
			}
			*one.target = args[0]
			if key == "path_prefix" {
				if err := gateway.CheckPathPrefix(args[0]); err != nil {
					return nil, h.Errf("sso %v", err)
				}
			}
			continue
		}
		switch key {
		case "idp":
			if len(args) == 0 {
				return nil, h.Err("sso idp: expected one or more IdP names")
			}
			setIdPs(args)
		case "allow", "deny":
			if len(args) < 2 {
				return nil, h.Errf("sso %s: expected: %s group|domain|user|idp <value>…", key, key)
			}
			rule := gateway.AccessRule{Kind: args[0], Values: args[1:]}
			if key == "allow" {
				hd.Allow = append(hd.Allow, rule)
			} else {
				hd.Deny = append(hd.Deny, rule)
			}
		case "identity_jwt":
			j := new(IdentityJWT)
			if len(args)%2 != 0 {
				return nil, h.Err("sso identity_jwt: expected: identity_jwt [header <Header-Name>] [ttl <duration>] [audience <aud>] [key_rotation <duration>]")
			}
			for i := 0; i < len(args); i += 2 {
				switch v := args[i+1]; args[i] {
				case "header":
					j.Header = v
				case "audience":
					j.Audience = v
				case "ttl", "key_rotation":
					dur, err := caddy.ParseDuration(v)
					if err != nil || dur <= 0 {
						return nil, h.Errf("sso identity_jwt %s: %q is not a positive duration", args[i], v)
					}
					if args[i] == "ttl" {
						j.TTL = caddy.Duration(dur)
					} else {
						j.KeyRotation = caddy.Duration(dur)
					}
				default:
					return nil, h.Errf("sso identity_jwt: unknown setting %q (expected header, ttl, audience or key_rotation)", args[i])
				}
			}
			hd.IdentityJWT = j
			if err := hd.signerConfig().Validate(); err != nil {
				return nil, h.Errf("sso %v", err)
			}
		case "header":
			if len(args) != 2 {
				return nil, h.Err("sso header: expected: header <field> <Header-Name>|-")
			}
			if hd.Headers == nil {
				hd.Headers = make(map[string]string)
			}
			hd.Headers[args[0]] = args[1]
		case "pass_access_token", "pass_id_token":
			if len(args) > 1 {
				return nil, h.Errf("sso %s: expected at most one header name", key)
			}
			name := gateway.DefaultAccessTokenHeader
			if key == "pass_id_token" {
				name = gateway.DefaultIDTokenHeader
			}
			if len(args) == 1 {
				name = args[0]
			}
			if key == "pass_access_token" {
				hd.PassAccessToken = name
			} else {
				hd.PassIDToken = name
			}
		case "set_authorization_header":
			if len(args) != 0 {
				return nil, h.Err("sso set_authorization_header: takes no value")
			}
			hd.SetAuthorizationHeader = true
		case "token_refresh_margin":
			dur, err := caddy.ParseDuration(strings.Join(args, " "))
			if len(args) != 1 || err != nil || dur <= 0 {
				return nil, h.Errf("sso token_refresh_margin: %q is not a positive duration", strings.Join(args, " "))
			}
			hd.TokenRefreshMargin = caddy.Duration(dur)
		default:
			return nil, h.Errf("sso: unknown setting %q (expected idp, default_idp, path_prefix, base_url, mode, headers, header, allow, deny, identity_jwt, pass_access_token, pass_id_token, set_authorization_header or token_refresh_margin)", key)
		}
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
	// Name unknown IdPs here, where the line is known, rather than at
	// Provision, where it is not.
	app, ok := globalApp(h)
	if !ok || len(app.IdPs) == 0 {
		return nil, fmt.Errorf("sso: no identity provider is configured: define one in the global sso option (sso { idp <name> oidc|saml { … } }), at %s:%d", file, line)
	}
	defined := app.idpsByName()
	for _, name := range append(hd.idpNames(), hd.DefaultIdP) {
		if name != "" && defined[name] == nil {
			return nil, fmt.Errorf("sso: no identity provider named %q in the global sso option (defined: %s), at %s:%d",
				name, strings.Join(slices.Sorted(maps.Keys(defined)), ", "), file, line)
		}
	}
	route := hd.idpNames()
	if len(route) == 0 {
		// The rule Provision applies: without a name, the only IdP.
		name, err := app.defaultIdP()
		if err != nil {
			return nil, fmt.Errorf("sso: %w (sso <idp>…, or idp <name>… in the block), at %s:%d", err, file, line)
		}
		route = []string{name}
	}
	p, _ := gateway.NewAccessPolicy(hd.Allow, hd.Deny) // checked by Validate
	if err := p.CheckIdPs(route); err != nil {
		return nil, fmt.Errorf("sso: %w, at %s:%d", err, file, line)
	}
	for _, name := range route {
		if c := defined[name]; c != nil && c.Protocol != idp.ProtocolOIDC && hd.tokenConfig().Passes() {
			return nil, fmt.Errorf("sso: IdP %q is %s: only OpenID Connect IdPs issue tokens to pass upstream, at %s:%d", name, c.Protocol, file, line)
		}
	}
	return hd, nil
}

// globalIdPs returns the idp blocks of the global sso option by name, and
// whether there is such an option, so that directives can check the IdPs
// they name at a line of the Caddyfile (global options are parsed first).
func globalIdPs(h httpcaddyfile.Helper) (map[string]*IdPConfig, bool) {
	app, ok := globalApp(h)
	if !ok {
		return nil, false
	}
	return app.idpsByName(), true
}

// idpsByName returns the app's idp blocks by name.
func (a *App) idpsByName() map[string]*IdPConfig {
	out := make(map[string]*IdPConfig, len(a.IdPs))
	for _, c := range a.IdPs {
		out[c.Name] = c
	}
	return out
}

// globalApp returns the sso app the global sso option configures, and
// whether there is such an option.
func globalApp(h httpcaddyfile.Helper) (*App, bool) {
	opt, ok := h.Option("sso").(httpcaddyfile.App)
	if !ok {
		return nil, false
	}
	app := new(App)
	if err := json.Unmarshal(opt.Value, app); err != nil {
		return nil, false
	}
	return app, true
}
