package caddymodule

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/crewjam/saml"
	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	idpsaml "github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/mapping"
)

// Levels of a check result.
const (
	CheckOK    = "ok"
	CheckInfo  = "info"
	CheckWarn  = "warning"
	CheckError = "error"
)

// checkCertWarning is how close to expiry an IdP signing certificate draws
// a warning.
const checkCertWarning = 30 * 24 * time.Hour

// Response size caps of `caddy sso check`.
const (
	checkMaxJSON     = 1 << 20
	checkMaxMetadata = 8 << 20
)

// CheckReport is the result of `caddy sso check`.
type CheckReport struct {
	Config   string        `json:"config"`
	Problems []CheckResult `json:"problems,omitempty"` // configuration-wide
	IdPs     []*IdPCheck   `json:"idps"`
	Errors   int           `json:"errors"`
	Warnings int           `json:"warnings"`
	OK       bool          `json:"ok"`
}

// IdPCheck is what `caddy sso check` found about one IdP.
type IdPCheck struct {
	Name     string        `json:"name"`
	Protocol string        `json:"protocol"`
	Preset   string        `json:"preset"`
	Sites    []string      `json:"sites"`
	Checks   []CheckResult `json:"checks"`
	// Values are what the IdP administrator must enter.
	Values []CheckValue `json:"values"`
	// Claims are the attribute/claim names read per attribute, in order.
	Claims []ClaimNames `json:"claims"`
}

// CheckResult is one finding.
type CheckResult struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// CheckValue is one value for the IdP registration.
type CheckValue struct {
	Field string `json:"field"`
	Site  string `json:"site,omitempty"`
	Value string `json:"value"`
}

// ClaimNames lists the names an attribute is read from.
type ClaimNames struct {
	Attribute string   `json:"attribute"`
	Names     []string `json:"names"`
}

func (c *IdPCheck) add(level, format string, args ...any) {
	c.Checks = append(c.Checks, CheckResult{Level: level, Message: fmt.Sprintf(format, args...)})
}

// checkSite is one site whose routes use the sso handler.
type checkSite struct {
	origin string // scheme://host[:port]
	prefix string // path prefix, /.sso/ by default
}

func newCheckCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Checks each IdP of a config and prints the values to enter at the IdP",
		Long: `Adapts the config (--config, --adapter, as caddy validate), then for each
identity provider fetches the OIDC discovery document and JWKS, or loads and
parses the SAML metadata (warning on signing certificates that expire within
30 days), and prints the values the IdP administrator must enter: redirect
URI or ACS URL, entity ID, metadata URL and the claims to map, per site that
uses the IdP. Exits non-zero when anything is an error.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			config, _ := c.Flags().GetString("config")
			adapter, _ := c.Flags().GetString("adapter")
			timeout, _ := c.Flags().GetDuration("timeout")
			cfg, file, _, err := caddycmd.LoadConfig(config, adapter)
			if err != nil {
				return err
			}
			if len(cfg) == 0 {
				return errors.New("no config: give --config")
			}
			report, err := runCheck(c.Context(), cfg, &http.Client{Timeout: timeout}, time.Now())
			if err != nil {
				return err
			}
			report.Config = file
			if cliJSON(c) {
				err = cliPrintJSON(c, report)
			} else {
				err = printCheckReport(c.OutOrStdout(), report)
			}
			if err != nil {
				return err
			}
			if !report.OK {
				return fmt.Errorf("check found %d error(s)", report.Errors)
			}
			return nil
		},
	}
	cmd.Flags().Duration("timeout", 10*time.Second, "Timeout of each request to an IdP")
	return cmd
}

// checkConfig is the part of an adapted config the check reads.
type checkConfig struct {
	Apps struct {
		SSO *struct {
			IdPs []*IdPConfig `json:"idps"`
		} `json:"sso"`
		HTTP *struct {
			HTTPPort int                     `json:"http_port"`
			Servers  map[string]*checkServer `json:"servers"`
		} `json:"http"`
	} `json:"apps"`
}

type checkServer struct {
	Listen         []string        `json:"listen"`
	Routes         []checkRoute    `json:"routes"`
	TLSPolicies    json.RawMessage `json:"tls_connection_policies"`
	AutomaticHTTPS *struct {
		Disable bool     `json:"disable"`
		Skip    []string `json:"skip"`
	} `json:"automatic_https"`
}

type checkRoute struct {
	Match  []map[string]json.RawMessage `json:"match"`
	Handle []json.RawMessage            `json:"handle"`
}

type checkHandler struct {
	Handler    string       `json:"handler"`
	Routes     []checkRoute `json:"routes"` // subroute
	IdP        string       `json:"idp"`
	IdPs       []string     `json:"idps"`
	DefaultIdP string       `json:"default_idp"`
	PathPrefix string       `json:"path_prefix"`
	BaseURL    string       `json:"base_url"`
}

// runCheck checks every IdP of the adapted config cfg.
func runCheck(ctx context.Context, cfg []byte, client *http.Client, now time.Time) (*CheckReport, error) {
	var cc checkConfig
	if err := json.Unmarshal(cfg, &cc); err != nil {
		return nil, fmt.Errorf("reading adapted config: %w", err)
	}
	r := &CheckReport{IdPs: []*IdPCheck{}}
	if cc.Apps.SSO == nil || len(cc.Apps.SSO.IdPs) == 0 {
		r.Problems = append(r.Problems, CheckResult{CheckError, "the config has no sso app with an identity provider"})
	}
	var idps []*IdPConfig
	if cc.Apps.SSO != nil {
		idps = cc.Apps.SSO.IdPs
	}
	sites := checkCollectSites(&cc, idps, r)
	repl := caddy.NewReplacer()
	for _, c := range idps {
		ic := &IdPCheck{Name: c.Name, Protocol: c.Protocol, Preset: c.Preset}
		if ic.Preset == "" {
			ic.Preset = mapping.PresetGeneric
		}
		for _, s := range sites[c.Name] {
			ic.Sites = append(ic.Sites, s.origin)
		}
		r.IdPs = append(r.IdPs, ic)
		if err := c.validate(); err != nil {
			ic.add(CheckError, "invalid configuration: %v", err)
			continue
		}
		if len(sites[c.Name]) == 0 {
			ic.add(CheckWarn, "no site uses this IdP (no sso directive names it): there is nothing to register at the IdP")
		}
		switch c.Protocol {
		case idp.ProtocolOIDC:
			checkOIDC(ctx, client, c, repl, ic)
		case idp.ProtocolSAML:
			checkSAML(ctx, client, c, repl, ic, now)
		}
		checkValues(c, repl, sites[c.Name], ic)
		if m, err := mapping.New(c.Preset, c.Protocol, c.Map); err == nil {
			for _, attr := range []string{mapping.UniqueUserID, mapping.FirstName, mapping.LastName, mapping.Email, mapping.Groups} {
				ic.Claims = append(ic.Claims, ClaimNames{Attribute: attr, Names: m.Expected(attr)})
			}
		}
	}
	count := func(list []CheckResult) {
		for _, x := range list {
			switch x.Level {
			case CheckError:
				r.Errors++
			case CheckWarn:
				r.Warnings++
			}
		}
	}
	count(r.Problems)
	for _, ic := range r.IdPs {
		count(ic.Checks)
	}
	r.OK = r.Errors == 0
	return r, nil
}

// checkCollectSites walks the HTTP servers' routes (and subroutes) for sso
// handlers and returns, per IdP name, the sites that use it.
func checkCollectSites(cc *checkConfig, idps []*IdPConfig, r *CheckReport) map[string][]checkSite {
	out := map[string][]checkSite{}
	h := cc.Apps.HTTP
	if h == nil {
		return out
	}
	httpPort := h.HTTPPort
	if httpPort == 0 {
		httpPort = caddyhttp.DefaultHTTPPort
	}
	known := map[string]bool{}
	for _, c := range idps {
		known[c.Name] = true
	}
	names := make([]string, 0, len(h.Servers))
	for n := range h.Servers {
		names = append(names, n)
	}
	slices.Sort(names)
	seen := map[string]bool{}
	for _, name := range names {
		srv := h.Servers[name]
		port := checkServerPort(srv.Listen)
		var walk func(routes []checkRoute, hosts []string)
		walk = func(routes []checkRoute, hosts []string) {
			for _, rt := range routes {
				hs := hosts
				var own []string
				for _, m := range rt.Match {
					var list []string
					if raw, ok := m["host"]; ok && json.Unmarshal(raw, &list) == nil {
						own = append(own, list...)
					}
				}
				if len(own) > 0 {
					hs = own
				}
				for _, raw := range rt.Handle {
					var hd checkHandler
					if json.Unmarshal(raw, &hd) != nil {
						continue
					}
					switch hd.Handler {
					case "subroute":
						walk(hd.Routes, hs)
					case "sso":
						use := hd.IdPs
						if hd.IdP != "" {
							use = append([]string{hd.IdP}, use...)
						}
						if len(use) == 0 && len(idps) == 1 {
							use = []string{idps[0].Name}
						}
						prefix := hd.PathPrefix
						if prefix == "" {
							prefix = defaultPathPrefix
						}
						hostList := hs
						if len(hostList) == 0 {
							hostList = []string{""}
						}
						for _, n := range use {
							if !known[n] {
								r.Problems = append(r.Problems, CheckResult{CheckError, fmt.Sprintf("server %s: an sso handler names IdP %q, which is not configured", name, n)})
								continue
							}
							if hd.BaseURL != "" {
								hostList = []string{""}
							}
							for _, host := range hostList {
								origin := checkOrigin(srv, host, port, httpPort)
								if bo, err := baseOrigin(hd.BaseURL); err == nil {
									origin = bo.String()
								} else if host == "" && !seen["nohost/"+name] {
									seen["nohost/"+name] = true
									r.Problems = append(r.Problems, CheckResult{CheckError, fmt.Sprintf("server %s: an sso route matches no host and has no base_url, so it refuses to start sign-ins; give the site its host name or set base_url (values below show <host>)", name)})
								}
								key := n + " " + origin + prefix
								if seen[key] {
									continue
								}
								seen[key] = true
								out[n] = append(out[n], checkSite{origin: origin, prefix: prefix})
							}
						}
					}
				}
			}
		}
		walk(srv.Routes, nil)
	}
	return out
}

// checkServerPort is the port of a server's first listener address.
func checkServerPort(listen []string) int {
	for _, l := range listen {
		na, err := caddy.ParseNetworkAddress(l)
		if err == nil && !na.IsUnixNetwork() {
			return int(na.StartPort)
		}
	}
	return 0
}

// checkOrigin is the origin browsers reach host on through srv.
func checkOrigin(srv *checkServer, host string, port, httpPort int) string {
	scheme := "https"
	switch {
	case host == "":
		host = "<host>"
		scheme = "http"
	case port == httpPort:
		scheme = "http"
	case srv.AutomaticHTTPS != nil && slices.Contains(srv.AutomaticHTTPS.Skip, host):
		scheme = "http"
	case srv.AutomaticHTTPS != nil && srv.AutomaticHTTPS.Disable && len(srv.TLSPolicies) == 0:
		scheme = "http"
	}
	if port != 0 && !(scheme == "https" && port == 443) && !(scheme == "http" && port == 80) {
		host = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return scheme + "://" + host
}

// checkValues fills in what the IdP administrator must enter, per site.
func checkValues(c *IdPConfig, repl *caddy.Replacer, sites []checkSite, ic *IdPCheck) {
	for _, s := range sites {
		base := s.origin + s.prefix + c.Protocol + "/" + c.Name + "/"
		add := func(field, value string) {
			ic.Values = append(ic.Values, CheckValue{Field: field, Site: s.origin, Value: value})
		}
		switch c.Protocol {
		case idp.ProtocolOIDC:
			add("Redirect URI", base+oidc.RedirectEndpoint)
			add("Post-logout redirect URI", s.origin+"/")
		case idp.ProtocolSAML:
			entityID := base + "metadata"
			if c.SAML.EntityID != "" {
				entityID = repl.ReplaceKnown(c.SAML.EntityID, "")
			}
			add("SP entity ID (Identifier / Audience URI)", entityID)
			add("ACS URL (Reply URL / Single sign-on URL)", base+idpsaml.ACSEndpoint)
			add("Single Logout URL", base+"slo")
			add("SP metadata URL", base+"metadata")
		}
	}
}

// checkGet fetches url, at most limit bytes.
func checkGet(ctx context.Context, client *http.Client, url, accept string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// checkDiscovery is the part of an OIDC discovery document the check reads.
type checkDiscovery struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	IDTokenAlgs           []string `json:"id_token_signing_alg_values_supported"`
}

func checkOIDC(ctx context.Context, client *http.Client, c *IdPConfig, repl *caddy.Replacer, ic *IdPCheck) {
	issuer := repl.ReplaceKnown(c.OIDC.Issuer, "")
	if _, err := idp.CheckURL(issuer); err != nil {
		ic.add(CheckError, "issuer: %v", err)
		return
	}
	discURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	data, err := checkGet(ctx, client, discURL, "application/json", checkMaxJSON)
	if err != nil {
		ic.add(CheckError, "discovery document %s unreachable: %v", discURL, err)
		return
	}
	var d checkDiscovery
	if err := json.Unmarshal(data, &d); err != nil {
		ic.add(CheckError, "discovery document %s is not JSON: %v", discURL, err)
		return
	}
	ic.add(CheckOK, "discovery document: %s", discURL)
	if d.Issuer == issuer {
		ic.add(CheckOK, "issuer matches: %s", issuer)
	} else {
		ic.add(CheckError, "issuer mismatch: the IdP says %q, the config says %q (they must be equal)", d.Issuer, issuer)
	}
	for _, ep := range []struct{ name, url string }{
		{"authorization_endpoint", d.AuthorizationEndpoint}, {"token_endpoint", d.TokenEndpoint},
	} {
		if ep.url == "" {
			ic.add(CheckError, "discovery document has no %s", ep.name)
		} else if _, err := idp.CheckURL(ep.url); err != nil {
			ic.add(CheckError, "%s: %v", ep.name, err)
		}
	}
	switch {
	case slices.Contains(d.CodeChallengeMethods, "S256"):
		ic.add(CheckOK, "PKCE S256 supported")
	case len(d.CodeChallengeMethods) == 0:
		ic.add(CheckWarn, "the IdP does not advertise PKCE (code_challenge_methods_supported); sign-in sends S256 anyway")
	default:
		ic.add(CheckError, "PKCE S256 not supported (the IdP offers %s); sign-in requires it", strings.Join(d.CodeChallengeMethods, ", "))
	}
	if len(d.IDTokenAlgs) > 0 {
		algs := c.OIDC.Algorithms
		if len(algs) == 0 {
			algs = []string{"RS256", "ES256", "PS256"}
		}
		if !slices.ContainsFunc(algs, func(a string) bool { return slices.Contains(d.IDTokenAlgs, a) }) {
			ic.add(CheckError, "no accepted ID-token algorithm (%s) among the IdP's (%s)", strings.Join(algs, ", "), strings.Join(d.IDTokenAlgs, ", "))
		}
	}
	if d.EndSessionEndpoint != "" {
		ic.add(CheckInfo, "end_session_endpoint present: signing out also ends the IdP session")
	} else {
		ic.add(CheckInfo, "no end_session_endpoint: signing out ends only the local session")
	}
	if d.JWKSURI == "" {
		ic.add(CheckError, "discovery document has no jwks_uri")
		return
	}
	if _, err := idp.CheckURL(d.JWKSURI); err != nil {
		ic.add(CheckError, "jwks_uri: %v", err)
		return
	}
	data, err = checkGet(ctx, client, d.JWKSURI, "application/json", checkMaxJSON)
	if err != nil {
		ic.add(CheckError, "JWKS %s unreachable: %v", d.JWKSURI, err)
		return
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Use string `json:"use"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		ic.add(CheckError, "JWKS %s is not a JSON key set: %v", d.JWKSURI, err)
		return
	}
	n := 0
	for _, k := range set.Keys {
		if (k.Use == "" || k.Use == "sig") && (k.Kty == "RSA" || k.Kty == "EC") {
			n++
		}
	}
	if n == 0 {
		ic.add(CheckError, "JWKS %s has no RSA or EC signing key", d.JWKSURI)
		return
	}
	ic.add(CheckOK, "JWKS: %d signing key(s) at %s", n, d.JWKSURI)
}

func checkSAML(ctx context.Context, client *http.Client, c *IdPConfig, repl *caddy.Replacer, ic *IdPCheck, now time.Time) {
	s := c.SAML
	var (
		data []byte
		src  string
		err  error
	)
	switch {
	case s.Metadata != "":
		data, src = []byte(s.Metadata), "inline metadata"
	case s.MetadataFile != "":
		src = repl.ReplaceKnown(s.MetadataFile, "")
		data, err = os.ReadFile(src)
		if err == nil && len(data) > checkMaxMetadata {
			err = fmt.Errorf("larger than %d bytes", checkMaxMetadata)
		}
	default:
		src = repl.ReplaceKnown(s.MetadataURL, "")
		if _, err = idp.CheckURL(src); err == nil {
			data, err = checkGet(ctx, client, src, "application/samlmetadata+xml, application/xml, text/xml", checkMaxMetadata)
		}
	}
	if err != nil {
		ic.add(CheckError, "metadata %s: %v", src, err)
		return
	}
	ed, err := idpsaml.ParseMetadata(data, repl.ReplaceKnown(s.IdPEntityID, ""))
	if err != nil {
		ic.add(CheckError, "metadata %s: %v", src, err)
		return
	}
	ic.add(CheckOK, "metadata parsed: %s (IdP entity ID %s)", src, ed.EntityID)
	if !ed.ValidUntil.IsZero() && ed.ValidUntil.Before(now) {
		ic.add(CheckError, "metadata expired at %s (validUntil)", ed.ValidUntil.UTC().Format(time.RFC3339))
	}
	hasSSO, hasSLO, certs := false, false, 0
	for _, d := range ed.IDPSSODescriptors {
		for _, sso := range d.SingleSignOnServices {
			if sso.Binding == saml.HTTPRedirectBinding || sso.Binding == saml.HTTPPostBinding {
				hasSSO = true
			}
		}
		hasSLO = hasSLO || len(d.SingleLogoutServices) > 0
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
				certs++
				checkSigningCert(xc.Data, now, ic)
			}
		}
	}
	if certs == 0 {
		ic.add(CheckError, "metadata lists no signing certificate")
	}
	if hasSSO {
		ic.add(CheckOK, "SingleSignOnService (HTTP-Redirect or HTTP-POST) present")
	} else {
		ic.add(CheckError, "metadata lists no HTTP-Redirect or HTTP-POST SingleSignOnService")
	}
	if hasSLO {
		ic.add(CheckInfo, "SingleLogoutService present: signing out also ends the IdP session")
	} else {
		ic.add(CheckInfo, "no SingleLogoutService: signing out ends only the local session")
	}
}

func checkSigningCert(b64 string, now time.Time, ic *IdPCheck) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		ic.add(CheckError, "signing certificate is not base64: %v", err)
		return
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		ic.add(CheckError, "signing certificate does not parse: %v", err)
		return
	}
	name := cert.Subject.CommonName
	if name == "" {
		name = cert.Subject.String()
	}
	expiry := cert.NotAfter.UTC().Format("2006-01-02")
	left := cert.NotAfter.Sub(now)
	switch {
	case left <= 0:
		ic.add(CheckError, "signing certificate %q expired on %s", name, expiry)
	case left < checkCertWarning:
		ic.add(CheckWarn, "signing certificate %q expires on %s (in %d days): have the IdP publish its next certificate", name, expiry, int(left.Hours()/24))
	default:
		ic.add(CheckOK, "signing certificate %q valid until %s", name, expiry)
	}
	if cert.NotBefore.After(now) {
		ic.add(CheckWarn, "signing certificate %q is not valid before %s", name, cert.NotBefore.UTC().Format(time.RFC3339))
	}
}

// checkSymbols mark each line of the report by level.
var checkSymbols = map[string]string{CheckOK: "✓", CheckInfo: "i", CheckWarn: "!", CheckError: "✗"}

// checkClaimName renders a mapping candidate for people.
func checkClaimName(protocol, name string) string {
	switch name {
	case mapping.Subject:
		if protocol == idp.ProtocolOIDC {
			return "sub"
		}
		return "NameID (persistent)"
	case mapping.NameID:
		return "NameID"
	}
	return name
}

func printCheckReport(w io.Writer, r *CheckReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "caddy-sso check: %s\n", r.Config)
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  %s %s\n", checkSymbols[p.Level], p.Message)
	}
	for _, ic := range r.IdPs {
		fmt.Fprintf(&b, "\nIdP %s (%s, preset %s)\n", ic.Name, ic.Protocol, ic.Preset)
		for _, x := range ic.Checks {
			fmt.Fprintf(&b, "  %s %s\n", checkSymbols[x.Level], x.Message)
		}
		if len(ic.Values) > 0 {
			b.WriteString("  Enter at the IdP:\n")
			tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			for _, v := range ic.Values {
				fmt.Fprintf(tw, "    %s\t%s\n", v.Field, v.Value)
			}
			tw.Flush()
		}
		if len(ic.Claims) > 0 {
			if ic.Protocol == idp.ProtocolSAML {
				b.WriteString("  Attributes to send (the first one present is used):\n")
			} else {
				b.WriteString("  Claims to map (the first one present is used):\n")
			}
			tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			for _, cl := range ic.Claims {
				names := make([]string, len(cl.Names))
				for i, n := range cl.Names {
					names[i] = checkClaimName(ic.Protocol, n)
				}
				fmt.Fprintf(tw, "    %s\t%s\n", cl.Attribute, strings.Join(names, ", "))
			}
			tw.Flush()
		}
	}
	fmt.Fprintf(&b, "\n%d IdP(s): %d error(s), %d warning(s)\n", len(r.IdPs), r.Errors, r.Warnings)
	_, err := io.WriteString(w, b.String())
	return err
}
