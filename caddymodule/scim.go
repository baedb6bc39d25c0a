package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
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
		if err := app.scimIdP(c.Name); err != nil {
			return fmt.Errorf("sso_scim: idp %s: %w", c.Name, err)
		}
		token := repl.ReplaceKnown(c.Token, "")
		if len(token) < scim.MinTokenLength {
			// Say where the token came from, never what it is (Validate
			// refused a short literal one).
			// An {env.*} set for a reload is the usual empty one: the
			// environment is the one Caddy started with.
			problem, hint := "is shorter than", ""
			if token == "" {
				problem = "is empty (is it set?); it must have at least"
				hint = "; a reload does not change the environment Caddy started with ({env.*}), but reads {file.*} again"
			}
			return fmt.Errorf("sso_scim: idp %s: the bearer token %s %s %d characters (generate one with: openssl rand -base64 32)%s",
				c.Name, placeholderOnly(c.Token), problem, scim.MinTokenLength, hint)
		}
		warnWritten(logger, c.Token, "the SCIM bearer token", "{env.SCIM_TOKEN}", zap.String("idp", c.Name))
		e.IdPs[i].Token = token
		names[i] = c.Name
	}
	h, err := e.Handler(app.Accounts(), logger)
	if err != nil {
		return fmt.Errorf("sso_scim: %w", err)
	}
	s.handler = app.live.Track(app.metrics.SCIM(h, s.BasePath)) // counted in flight: App.retire
	logger.Info("SCIM provisioning enabled", zap.Strings("idps", names), zap.String("base_path", scim.NormalBasePath(s.BasePath)))
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
	if err := s.endpoint().CheckSettings(idp.HasPlaceholder); err != nil {
		return fmt.Errorf("sso_scim: %w", err)
	}
	return nil
}

// endpoint is the handler's configuration as provision/scim takes it.
func (s *SCIMHandler) endpoint() scim.Endpoint {
	e := scim.Endpoint{BasePath: s.BasePath, BaseURL: s.BaseURL, MaxBodyBytes: s.MaxBodySize,
		Origin: func(r *http.Request) string {
			o, _ := gateway.RequestOrigin(r, trustedProxy(r))
			return o.Site.String()
		}}
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
	// "{" first, and the first brace after it the closing one, last:
	// {env.X}-part} would repeat "-part}".
	if strings.HasPrefix(token, "{") && strings.IndexAny(token[1:], "{}") == len(token)-2 && idp.HasPlaceholder(token) {
		return token
	}
	return "(written in the config)"
}

// scimIdP checks that the named IdP's block says SCIM manages it: its
// sign-ins then refuse identities SCIM deleted
// (provision.Rules.SCIMManaged), and that must not depend on whether some
// other block of the config happens to list it.
func (a *App) scimIdP(name string) error {
	switch c := a.idpsByName()[name]; {
	case c == nil:
		return fmt.Errorf("no identity provider named %q in the global sso option (defined: %s)", name, a.idpList())
	case !c.SCIM:
		return fmt.Errorf("identity provider %q is not marked as provisioned by SCIM: add the line `scim` to its idp block", name)
	}
	return nil
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
	sh := new(SCIMHandler)
	h.Next() // "sso_scim"
	if h.NextArg() {
		return nil, h.Err("sso_scim: expected: sso_scim { idp <name> <token> … }")
	}
	app := globalApp(h)
	given := make(onceEach)
	for h.NextBlock(0) {
		s := next(h.Dispenser, "sso_scim")
		if s.key != "idp" {
			if err := given.once(h.Dispenser, "sso_scim ", s.key); err != nil {
				return nil, err
			}
		}
		var err error
		switch s.key {
		case "idp":
			if len(s.args) != 2 {
				return nil, s.errf("expected: idp <name> <token>, the token a placeholder such as {env.SCIM_TOKEN}")
			}
			c := SCIMIdP{Name: s.args[0], Token: s.args[1]}
			if app == nil {
				return nil, h.Errf("sso_scim idp %s: there is no global sso option to define this identity provider in", c.Name)
			}
			if err := app.scimIdP(c.Name); err != nil {
				return nil, h.Errf("sso_scim idp %s: %v", c.Name, err)
			}
			sh.IdPs = append(sh.IdPs, c)
		case "base_path":
			sh.BasePath, err = s.one()
		case "base_url":
			sh.BaseURL, err = s.one()
		case "max_body_size":
			sh.MaxBodySize, err = s.size() // at most 1 GiB: validateSettings, below
		default:
			err = s.unknown("idp, base_path, base_url or max_body_size")
		}
		if err != nil {
			return nil, err
		}
		if err := sh.validateSettings(); err != nil {
			return nil, h.Errf("%v", err)
		}
	}
	if len(sh.IdPs) == 0 {
		return nil, h.Errf("%v", errNoSCIMIdP)
	}
	return sh, nil
}

var (
	_ caddy.Provisioner           = (*SCIMHandler)(nil)
	_ caddy.Validator             = (*SCIMHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*SCIMHandler)(nil)
)
