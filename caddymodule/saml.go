package caddymodule

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// SAMLConfig are the SAML 2.0 service-provider settings of one IdP. Exactly
// one IdP metadata source is required. String fields other than Metadata
// accept Caddy placeholders such as {env.ENTRA_METADATA_URL}.
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

var requestBindings = []string{saml.BindingRedirect, saml.BindingPost}

// check holds the settings to the rules of idp/saml; complete, it also
// requires a metadata source, which the Caddyfile parser, checking each
// line as it reads it, asks for only at the end of the block.
func (c *SAMLConfig) check(complete bool) error {
	n := len(slices.DeleteFunc([]string{c.MetadataURL, c.MetadataFile, c.Metadata}, func(v string) bool { return v == "" }))
	switch {
	case n > 1:
		return errors.New("the IdP metadata is already given: use one of metadata_url, metadata_file or metadata")
	case n == 0 && complete:
		return errors.New("saml needs one of metadata_url, metadata_file or metadata")
	}
	if c.MetadataURL != "" && !hasPlaceholder(c.MetadataURL) {
		if _, err := idp.CheckURL(c.MetadataURL); err != nil {
			return fmt.Errorf("metadata_url: %w", err)
		}
	}
	if c.Metadata != "" && !strings.Contains(c.Metadata, "<") {
		return errors.New("metadata takes the IdP metadata XML itself (for a file, use metadata_file)")
	}
	if err := oneOf("request_binding", cmp.Or(c.RequestBinding, saml.BindingRedirect), requestBindings); err != nil {
		return err
	}
	if len(c.SPCerts) > saml.MaxSPKeys {
		return fmt.Errorf("sp_cert may appear at most %d times (the current key pair, then the previous one)", saml.MaxSPKeys)
	}
	for _, sc := range c.SPCerts {
		if sc.Cert == "" || sc.Key == "" {
			return errors.New("sp_cert needs a certificate file and a key file")
		}
	}
	if err := cmp.Or(idp.CheckDuration("clock_skew", time.Duration(c.ClockSkew)),
		idp.CheckDuration("metadata_refresh", time.Duration(c.MetadataRefresh)), saml.CheckEntityID(c.EntityID), saml.CheckAuthnContext(c.AuthnContext)); err != nil {
		return err
	}
	if time.Duration(c.ClockSkew) > saml.MaxClockSkew {
		return fmt.Errorf("clock_skew %v must be at most %v", time.Duration(c.ClockSkew), saml.MaxClockSkew)
	}
	if err := saml.CheckMaxResponseSize(c.MaxResponseSize); err != nil {
		return fmt.Errorf("max_response_size %d bytes %w", c.MaxResponseSize, err)
	}
	return nil
}

// build makes the SAML service provider from the configuration alone: SP key
// pairs from files, or, with none, the one its Start loads from the store.
func (c *SAMLConfig) build(name string, repl *caddy.Replacer, logger *zap.Logger) (*saml.Provider, error) {
	var keys []saml.KeyPair
	for _, sc := range c.SPCerts {
		kp, err := saml.LoadKeyPair(repl.ReplaceKnown(sc.Cert, ""), repl.ReplaceKnown(sc.Key, ""))
		if err != nil {
			return nil, err
		}
		keys = append(keys, kp)
	}
	entityID, err := resolve(repl, "entity_id", c.EntityID, false)
	idpEntityID, idpErr := resolve(repl, "idp_entity_id", c.IdPEntityID, false)
	if err = cmp.Or(err, idpErr); err != nil {
		return nil, err
	}
	cfg := saml.Config{
		Name:              name,
		EntityID:          entityID,
		MetadataXML:       []byte(c.Metadata),
		IdPEntityID:       idpEntityID,
		MetadataRefresh:   time.Duration(c.MetadataRefresh),
		SPKeys:            keys,
		SignRequests:      c.SignRequests,
		RequestBinding:    c.RequestBinding,
		AllowIdPInitiated: c.IdPInitiated,
		AllowSHA1:         c.AllowSHA1,
		ClockSkew:         time.Duration(c.ClockSkew),
		MaxResponseSize:   c.MaxResponseSize,
		AuthnContext:      c.AuthnContext,
		Logger:            logger,
	}
	switch {
	case c.MetadataURL != "":
		cfg.MetadataURL, err = resolve(repl, "metadata_url", c.MetadataURL, true)
	case c.MetadataFile != "":
		cfg.MetadataFile, err = resolve(repl, "metadata_file", c.MetadataFile, true)
	}
	if err != nil {
		return nil, err
	}
	return saml.New(cfg)
}
