package scim

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/urlpath"
)

// EndpointIdP is one identity provider a SCIM endpoint provisions, with
// the bearer token its provisioning client presents.
type EndpointIdP struct {
	Name  string
	Token string
}

// Endpoint is one SCIM site as a config describes it: the IdPs it
// provisions, each chosen by its own token, and the settings they share
// (the Config fields of the same names). caddymodule's sso_scim handler is
// one.
type Endpoint struct {
	IdPs         []EndpointIdP
	BasePath     string
	BaseURL      string
	MaxBodyBytes int64
	Origin       func(*http.Request) string // Config.Origin
}

// CheckSettings checks the endpoint as the config writes it, before its
// tokens are resolved: each IdP named once (or twice, with two tokens,
// to rotate one) and given a token, each literal
// token (one that deferred does not report as resolved later, such as a
// placeholder) at least MinTokenLength long and not shared with another
// IdP, and the base path, base URL and body size. It does not require an
// IdP, so that a config parser can run it after each line. The errors name
// the config's settings (base_path, base_url, max_body_size) and never a
// token.
func (e Endpoint) CheckSettings(deferred func(token string) bool) error {
	literal := make(map[string]string)
	listed := make(map[string]int)
	for _, c := range e.IdPs {
		if c.Name == "" {
			return errors.New("an idp has no name")
		}
		// Twice, with two tokens, while its token is rotated (Config.NextToken).
		if listed[c.Name]++; listed[c.Name] > 2 {
			return fmt.Errorf("idp %s is listed more than twice (twice gives it two tokens, to rotate one)", c.Name)
		}
		if c.Token == "" {
			return fmt.Errorf("idp %s has no token", c.Name)
		}
		if deferred(c.Token) {
			continue
		}
		if strings.TrimSpace(c.Token) != c.Token {
			return fmt.Errorf("idp %s: the bearer token starts or ends with white space; remove it (no request can present it)", c.Name)
		}
		if len(c.Token) < MinTokenLength {
			return fmt.Errorf("idp %s: the bearer token must be at least %d characters (generate one with: openssl rand -base64 32)",
				c.Name, MinTokenLength)
		}
		if other, ok := literal[c.Token]; ok {
			if other == c.Name {
				return fmt.Errorf("idp %s is given the same bearer token twice", c.Name)
			}
			return fmt.Errorf("idps %s and %s share a bearer token; each needs its own", other, c.Name)
		}
		literal[c.Token] = c.Name
	}
	if err := CheckBasePath(e.BasePath); err != nil {
		return err
	}
	if e.BaseURL != "" {
		if err := checkBaseURL(e.BaseURL); err != nil {
			return fmt.Errorf("base_url %w", err)
		}
	}
	if e.MaxBodyBytes < 0 || e.MaxBodyBytes > MaxBodyBytesLimit {
		return fmt.Errorf("max_body_size %d bytes must be between 1 byte and %s (default %s)",
			e.MaxBodyBytes, sizeText(MaxBodyBytesLimit), sizeText(DefaultMaxBodyBytes))
	}
	return nil
}

// CheckBasePath is the rule for a base path (Config.BasePath): empty (the
// default), "/" alone (under handle_path, which strips the prefix before
// the handler sees the path), or a path starting with / whose segments
// follow the rule of the sso handler's path_prefix (urlpath.Segments), a
// trailing / allowed. Request paths arrive decoded and cleaned, so a base
// path with a space, ?, %, an empty, . or .. segment would match none.
func CheckBasePath(p string) error {
	if p == "" || p == "/" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || !urlpath.Segments(strings.TrimSuffix(p[1:], "/")) {
		return fmt.Errorf("base_path %q must start with / and be a path such as /scim/v2 (or / alone, under handle_path): "+
			"its segments non-empty, not . or .., and made of letters, digits and -._~!$&'()*+,;=:@ only (no ?, #, %%, spaces or control characters)", p)
	}
	return nil
}

// NormalBasePath is the base path a handler serves for p, a path
// CheckBasePath accepts: DefaultBasePath for "", "/" for the root, else p
// without a trailing /. It is the one place that applies the default, for
// the handler, its metrics and its log alike.
func NormalBasePath(p string) string {
	switch p {
	case "":
		return DefaultBasePath
	case "/":
		return p
	}
	return strings.TrimSuffix(p, "/")
}

// sizeText writes a byte count as the config would: in GiB or MiB when it
// is a whole number of them.
func sizeText(n int64) string {
	switch {
	case n > 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkBaseURL is the rule for a base URL (Config.BaseURL, Endpoint's
// too): the sso handler's base_url rule (idp.CheckURL: https, or plain
// http on a loopback host, a port 1-65535, no fragment or credentials),
// a path allowed. The links are this URL followed by "/Users/<id>", so a
// query would swallow them.
func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if _, err := idp.CheckURL(raw); err != nil {
		return err
	}
	if u.RawQuery != "" || u.ForceQuery {
		return fmt.Errorf("%q must be scheme://host[:port][/path], without a query", raw)
	}
	return nil
}

// Handler builds the handler of each IdP over accounts, with the tokens
// as they are (resolved): that handler itself when there is one IdP, a Mux
// choosing by token when there are several. An IdP listed twice takes the
// second token as its NextToken.
func (e Endpoint) Handler(accounts *account.Service, logger *zap.Logger) (http.Handler, error) {
	var configs []Config
	for _, c := range e.IdPs {
		if i := slices.IndexFunc(configs, func(cfg Config) bool { return cfg.IdP == c.Name }); i >= 0 {
			configs[i].NextToken = c.Token
			continue
		}
		configs = append(configs, Config{IdP: c.Name, Token: c.Token})
	}
	handlers := make([]*Handler, 0, len(configs))
	for _, c := range configs {
		h, err := New(Config{IdP: c.IdP, Token: c.Token, NextToken: c.NextToken, Accounts: accounts, Logger: logger,
			BasePath: e.BasePath, BaseURL: e.BaseURL, MaxBodyBytes: e.MaxBodyBytes, Origin: e.Origin})
		if err != nil {
			return nil, err
		}
		handlers = append(handlers, h)
	}
	if len(handlers) == 1 {
		return handlers[0], nil
	}
	mux, err := NewMux(handlers...)
	if err != nil {
		return nil, err
	}
	return mux, nil
}
