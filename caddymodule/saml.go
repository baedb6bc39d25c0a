package caddymodule

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// SAMLConfig are the SAML 2.0 service-provider settings of one IdP. Exactly
// one IdP metadata source is required. The metadata URL and file, entity IDs and
// sp_cert files take placeholders ({env.ENTRA_METADATA_URL}); the rest are literal.
type SAMLConfig struct {
	// MetadataURL is where the IdP publishes its metadata (https; http only
	// for loopback hosts), fetched in the background, refreshed every
	// MetadataRefresh and at its validUntil; a failed refresh keeps the last good copy.
	MetadataURL string `json:"metadata_url,omitempty"`
	// MetadataFile is a file holding the IdP metadata, reloaded like a URL.
	MetadataFile string `json:"metadata_file,omitempty"`
	// Metadata is the IdP metadata XML itself.
	Metadata string `json:"metadata,omitempty"`
	// IdPEntityID picks the IdP out of metadata that describes several.
	IdPEntityID string `json:"idp_entity_id,omitempty"`

	// EntityID is this SP's entity ID (Entra's "Identifier", Okta's
	// "Audience URI", PingOne's "Entity ID"). Default: the SP metadata URL
	// of the site, https://<site>/.sso/saml/<idp>/metadata, which differs
	// per site: set it when one IdP registration serves several sites.
	EntityID string `json:"entity_id,omitempty"`
	// SPCerts are the SP's key pairs as files, current first; a second one
	// is still published and accepted for decryption, for rotation. When
	// none is configured, a key pair is generated on first start and kept
	// in the store, so the SP certificate survives restarts.
	SPCerts []SPCertConfig `json:"sp_certs,omitempty"`

	// SignRequests signs AuthnRequests (RSA-SHA256).
	SignRequests bool `json:"sign_requests,omitempty"`
	// RequestBinding is "redirect" (default) or "post".
	RequestBinding string `json:"request_binding,omitempty"`
	// IdPInitiated accepts IdP-initiated (unsolicited) sign-ins; their
	// RelayState is only ever used as a path on the site.
	IdPInitiated bool `json:"idp_initiated,omitempty"`
	// AllowSHA1 accepts RSA-SHA1 signatures and SHA-1 digests.
	AllowSHA1 bool `json:"allow_sha1,omitempty"`
	// ClockSkew tolerates clock differences with the IdP; default 1m, max 3m.
	ClockSkew caddy.Duration `json:"clock_skew,omitempty"`
	// MetadataRefresh is how often URL and file metadata reload; default 24h.
	MetadataRefresh caddy.Duration `json:"metadata_refresh,omitempty"`
	// MaxResponseSize caps ACS and SLO bodies before parsing; default 256 KiB.
	MaxResponseSize int64 `json:"max_response_size,omitempty"`
	// AuthnContext are the AuthnContextClassRefs to request and require, an
	// MFA one say; an assertion with none of them is refused (saml.Config).
	AuthnContext []string `json:"authn_context,omitempty"`
}

// SPCertConfig is one SP key pair: PEM certificate and key files (or one file).
type SPCertConfig struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// check holds the settings to saml.Config's rules, placeholders left for
// Provision, and to their Caddyfile spelling; complete, it also requires a
// metadata source (Check), which the Caddyfile parser, checking each line
// as it reads it, asks for only at the end of the block (CheckSettings).
func (c *SAMLConfig) check(complete bool) error {
	if c.Metadata != "" && !strings.Contains(c.Metadata, "<") {
		return errors.New("metadata takes the IdP metadata XML itself (for a file, use metadata_file)")
	}
	if slices.ContainsFunc(c.SPCerts, func(sc SPCertConfig) bool { return sc.Cert == "" || sc.Key == "" }) {
		return errors.New("sp_cert needs a certificate file and a key file")
	}
	// The key pairs are counted here; their files are read by build.
	cfg := c.config("", make([]saml.KeyPair, len(c.SPCerts)))
	check := cfg.CheckSettings
	if complete {
		check = cfg.Check
	}
	// The 1s floor of config durations keeps out a JSON bare number (nanoseconds); saml takes any refresh.
	return cmp.Or(check(idp.HasPlaceholder), idp.CheckDuration("metadata_refresh", cfg.MetadataRefresh))
}

// config is the service provider's configuration as written, placeholders
// unresolved, with keys for the sp_cert pairs: check holds it to
// saml.Config.Check, build resolves it.
func (c *SAMLConfig) config(name string, keys []saml.KeyPair) saml.Config {
	return saml.Config{Name: name, EntityID: c.EntityID, MetadataURL: c.MetadataURL, MetadataFile: c.MetadataFile, MetadataXML: []byte(c.Metadata),
		IdPEntityID: c.IdPEntityID, MetadataRefresh: time.Duration(c.MetadataRefresh), SPKeys: keys, SignRequests: c.SignRequests,
		RequestBinding: c.RequestBinding, AllowIdPInitiated: c.IdPInitiated, AllowSHA1: c.AllowSHA1, ClockSkew: time.Duration(c.ClockSkew),
		MaxResponseSize: c.MaxResponseSize, AuthnContext: c.AuthnContext}
}

// build makes the SAML service provider from the configuration alone: SP key
// pairs from files, or, with none, the one its Start loads from the store;
// trustEmail is the IdP block's trust_email.
func (c *SAMLConfig) build(name string, trustEmail bool, repl *caddy.Replacer, logger *zap.Logger) (*saml.Provider, error) {
	var keys []saml.KeyPair
	for _, sc := range c.SPCerts {
		cert, err := resolve(repl, "sp_cert", sc.Cert, true) // an unset placeholder named, as metadata_file's
		key, keyErr := resolve(repl, "sp_cert", sc.Key, true)
		if err = cmp.Or(err, keyErr); err != nil {
			return nil, err
		}
		kp, err := saml.LoadKeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		keys = append(keys, kp)
	}
	cfg := c.config(name, keys)
	cfg.Logger, cfg.TrustEmail = logger, trustEmail
	var errs [4]error // a metadata source is not needed here: check required one
	cfg.EntityID, errs[0] = resolve(repl, "entity_id", c.EntityID, false)
	cfg.IdPEntityID, errs[1] = resolve(repl, "idp_entity_id", c.IdPEntityID, false)
	cfg.MetadataURL, errs[2] = resolve(repl, "metadata_url", c.MetadataURL, false)
	cfg.MetadataFile, errs[3] = resolve(repl, "metadata_file", c.MetadataFile, false)
	if err := cmp.Or(errs[:]...); err != nil {
		return nil, err
	}
	return saml.New(cfg)
}
