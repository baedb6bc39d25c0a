package caddymodule

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/provision/scim"
)

func init() {
	caddy.RegisterModule(new(SCIMHandler))
	httpcaddyfile.RegisterHandlerDirective("sso_scim", parseSCIMDirective)
	// sso_scim answers every request that reaches it (it never calls the
	// next handler), so it sits with the handlers that respond: after
	// respond, so that a `respond /healthz 200` beside it still answers,
	// and before reverse_proxy and file_server. A site with nothing but
	// sso_scim serves SCIM at /scim/v2; to share a site with the sso
	// handler, give each its own handle block (see SCIMHandler).
	httpcaddyfile.RegisterDirectiveOrder("sso_scim", httpcaddyfile.After, "respond")
}

// SCIMHandler serves SCIM 2.0 provisioning (RFC 7643, RFC 7644) for one
// or more identity providers of the sso app, into the store their
// sign-ins use: module http.handlers.sso_scim, directive sso_scim.
//
//	scim.example.com {
//		sso_scim {
//			idp entra {env.SCIM_TOKEN_ENTRA}
//			idp okta {env.SCIM_TOKEN_OKTA}
//		}
//	}
//
// Each IdP has its own bearer token, which decides the IdP a request
// provisions into. Listing an IdP here also tells its sign-ins that SCIM
// manages it: a user SCIM deleted is refused at sign-in instead of being
// re-created by JIT.
//
// The handler is terminal: every request it gets is answered in SCIM form
// (paths outside base_path with a SCIM 404, after authentication). On a
// site that also runs the sso handler, route SCIM first:
//
//	app.example.com {
//		handle /scim/v2/* {
//			sso_scim {
//				idp entra {env.SCIM_TOKEN_ENTRA}
//			}
//		}
//		handle {
//			sso entra
//			reverse_proxy 127.0.0.1:8080
//		}
//	}
type SCIMHandler struct {
	// IdPs are the identity providers provisioned through this endpoint,
	// each with the bearer token its provisioning client presents.
	IdPs []SCIMIdP `json:"idps"`
	// BasePath is where SCIM is served. Default: /scim/v2. Use "/" under
	// handle_path (which strips the prefix), with BaseURL for the links.
	BasePath string `json:"base_path,omitempty"`
	// BaseURL is the absolute URL of BasePath for Location headers and
	// meta.location, when the request's own scheme and host are not what
	// the client sees (a proxy in front rewrites them). Default: the
	// request's.
	BaseURL string `json:"base_url,omitempty"`
	// MaxBodySize caps request bodies, in bytes. Default: 1 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	handler http.Handler // with its metrics
}

// SCIMIdP is one identity provider of a SCIM endpoint.
type SCIMIdP struct {
	// Name is the name of an idp block in the global sso option.
	Name string `json:"name"`
	// Token is the bearer token, at least 16 characters once placeholders
	// are replaced. Write a placeholder such as {env.SCIM_TOKEN_ENTRA}:
	// a literal token can be read back from the config (admin API,
	// autosave).
	Token string `json:"token"`
}

// CaddyModule returns the Caddy module information.
func (*SCIMHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sso_scim",
		New: func() caddy.Module { return new(SCIMHandler) },
	}
}

// Provision resolves the tokens and builds one SCIM handler per IdP over
// the sso app's store and session manager.
func (s *SCIMHandler) Provision(ctx caddy.Context) error {
	logger := ctx.Logger()
	if err := s.Validate(); err != nil {
		return err
	}
	appIface, err := ctx.AppIfConfigured("sso")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return fmt.Errorf("sso_scim: the sso app is not configured: define idp %s in the global sso option", s.IdPs[0].Name)
	}
	if err != nil {
		return fmt.Errorf("sso_scim: loading the sso app: %w", err)
	}
	app := appIface.(*App)

	repl := caddy.NewReplacer()
	e := s.endpoint()
	names := make([]string, len(s.IdPs))
	for i, c := range s.IdPs {
		if _, err := app.scimProvider(c.Name); err != nil {
			return fmt.Errorf("sso_scim: idp %s: %w in the global sso option", c.Name, err)
		}
		token := repl.ReplaceKnown(c.Token, "")
		if len(token) < scim.MinTokenLength {
			// Say where the token came from, never what it is.
			// (Validate already refused a short literal token, which is
			// never repeated in an error.)
			problem := "is shorter than"
			if token == "" {
				problem = "is empty (is it set?); it must have at least"
			}
			return fmt.Errorf("sso_scim: idp %s: the bearer token %s %s %d characters (generate one with: openssl rand -base64 32)",
				c.Name, placeholderOnly(c.Token), problem, scim.MinTokenLength)
		}
		if !hasPlaceholder(c.Token) {
			logger.Warn("the SCIM bearer token is written into the config, where the admin API and autosaved configs show it; use a placeholder such as {env.SCIM_TOKEN}",
				zap.String("idp", c.Name))
		}
		e.IdPs[i].Token = token
		names[i] = c.Name
	}
	h, err := e.Handler(app.Accounts(), logger)
	if err != nil {
		return fmt.Errorf("sso_scim: %w", err)
	}
	s.handler = app.metrics.SCIM(h, s.BasePath)
	basePath := s.BasePath
	if basePath == "" {
		basePath = scim.DefaultBasePath
	}
	logger.Info("SCIM provisioning enabled", zap.Strings("idps", names), zap.String("base_path", basePath))
	return nil
}

// Validate checks what can be checked without the sso app: the IdP list,
// literal tokens, the base path and URL.
func (s *SCIMHandler) Validate() error {
	if len(s.IdPs) == 0 {
		return errNoSCIMIdP
	}
	return s.validateSettings()
}

var errNoSCIMIdP = errors.New("sso_scim: at least one idp <name> <token> is required")

// validateSettings is Validate without the requirement of an IdP, so that
// the Caddyfile parser can check each line as it reads it. The rules are
// provision/scim's (Endpoint.CheckSettings); a token with a placeholder is
// checked once Provision has resolved it.
func (s *SCIMHandler) validateSettings() error {
	if err := s.endpoint().CheckSettings(hasPlaceholder); err != nil {
		return fmt.Errorf("sso_scim: %w", err)
	}
	if s.MaxBodySize > maxSCIMBodySize {
		return fmt.Errorf("sso_scim: max_body_size %d bytes is more than %s: it must be a size between 1 byte and 1 GiB (default 1 MiB)",
			s.MaxBodySize, humanize.IBytes(maxSCIMBodySize))
	}
	return nil
}

// maxSCIMBodySize is the largest max_body_size: SCIM bodies are read
// whole into memory, and no SCIM request of one resource comes near it.
const maxSCIMBodySize = 1 << 30

// endpoint is the handler's configuration as provision/scim takes it.
func (s *SCIMHandler) endpoint() scim.Endpoint {
	e := scim.Endpoint{BasePath: s.BasePath, BaseURL: s.BaseURL, MaxBodyBytes: s.MaxBodySize}
	for _, c := range s.IdPs {
		e.IdPs = append(e.IdPs, scim.EndpointIdP(c))
	}
	return e
}

// ServeHTTP answers the request; it never calls next.
func (s *SCIMHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	s.handler.ServeHTTP(w, r)
	return nil
}

// placeholderOnly is how an error names a token: by its placeholder when
// it is one, else not at all.
func placeholderOnly(token string) string {
	if hasPlaceholder(token) && strings.HasPrefix(token, "{") && strings.HasSuffix(token, "}") && strings.Count(token, "{") == 1 {
		return token
	}
	return "(written in the config)"
}

// scimProvider returns the named IdP, which must say in its own block that
// SCIM manages it: its sign-ins then refuse identities SCIM deleted
// (provision.Rules.SCIMManaged), and that must not depend on whether some
// other block of the config happens to list it.
func (a *App) scimProvider(name string) (*gateway.IdP, error) {
	p, err := a.provider(name)
	if err != nil {
		return nil, err
	}
	if !p.SignIn.Rules.SCIMManaged {
		return nil, fmt.Errorf("identity provider %q is not marked as provisioned by SCIM: add the line `scim` to its idp block", name)
	}
	return p, nil
}

// parseSCIMDirective parses
//
//	sso_scim [<matcher>] {
//		idp <name> <token>          (once per IdP; the token a placeholder)
//		base_path <path>            (default /scim/v2)
//		base_url <url>              (for Location behind a rewriting proxy)
//		max_body_size <size>        (default 1MiB)
//	}
//
// Each named IdP must be defined in the global sso option.
func parseSCIMDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(SCIMHandler)
	h.Next() // "sso_scim"
	if h.NextArg() {
		return nil, h.Err("sso_scim: expected: sso_scim { idp <name> <token> … }")
	}
	defined, haveGlobal := globalIdPs(h)
	given := make(onceEach)
	for h.NextBlock(0) {
		key := h.Val()
		args := h.RemainingArgs()
		if key != "idp" {
			if err := given.once(h.Dispenser, "sso_scim ", key); err != nil {
				return nil, err
			}
		}
		switch key {
		case "idp":
			if len(args) != 2 {
				return nil, h.Err("sso_scim idp: expected: idp <name> <token>, the token a placeholder such as {env.SCIM_TOKEN}")
			}
			c := SCIMIdP{Name: args[0], Token: args[1]}
			switch {
			case !haveGlobal:
				return nil, h.Errf("sso_scim idp %s: there is no global sso option to define this identity provider in", c.Name)
			case defined[c.Name] == nil:
				return nil, h.Errf("sso_scim idp %s: no identity provider by that name in the global sso option (defined: %s)",
					c.Name, strings.Join(slices.Sorted(maps.Keys(defined)), ", "))
			case !defined[c.Name].SCIM:
				return nil, h.Errf("sso_scim idp %s: the identity provider's block in the global sso option must say that SCIM provisions it: add the line `scim` to it", c.Name)
			}
			s.IdPs = append(s.IdPs, c)
		case "base_path":
			if len(args) != 1 {
				return nil, h.Err("sso_scim base_path: expected one path")
			}
			s.BasePath = args[0]
		case "base_url":
			if len(args) != 1 {
				return nil, h.Err("sso_scim base_url: expected one URL")
			}
			s.BaseURL = args[0]
		case "max_body_size":
			if len(args) != 1 {
				return nil, h.Err("sso_scim max_body_size: expected one size")
			}
			n, err := humanize.ParseBytes(args[0])
			if err != nil || n == 0 || n > math.MaxInt64 {
				return nil, h.Errf("sso_scim max_body_size: %q is not a size between 1 byte and 1 GiB", args[0])
			}
			s.MaxBodySize = int64(n) // at most 1 GiB: validateSettings, below

		default:
			return nil, h.Errf("sso_scim: unknown setting %q (expected idp, base_path, base_url or max_body_size)", key)
		}
		if err := s.validateSettings(); err != nil {
			return nil, h.Errf("%v", err)
		}
	}
	if len(s.IdPs) == 0 {
		return nil, h.Errf("%v", errNoSCIMIdP)
	}
	return s, nil
}

var (
	_ caddy.Provisioner           = (*SCIMHandler)(nil)
	_ caddy.Validator             = (*SCIMHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*SCIMHandler)(nil)
)
