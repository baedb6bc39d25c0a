package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/store"
)

// SAMLConfig are the SAML 2.0 service-provider settings of one IdP. Exactly
// one IdP metadata source is required. String fields other than Metadata
// accept Caddy placeholders such as {env.ENTRA_METADATA_URL}.
type SAMLConfig struct {
	// MetadataURL is where the IdP publishes its metadata (https; plain
	// http only for loopback hosts). It is fetched in the background,
	// refreshed every MetadataRefresh and at its validUntil, and the last
	// good copy is kept when a refresh fails.
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
	// ClockSkew tolerates clock differences with the IdP; default 1m, at
	// most 3m.
	ClockSkew caddy.Duration `json:"clock_skew,omitempty"`
	// MetadataRefresh is how often URL and file metadata are reloaded;
	// default 24h.
	MetadataRefresh caddy.Duration `json:"metadata_refresh,omitempty"`
	// MaxResponseSize caps the ACS and SLO request bodies in bytes before
	// anything parses them; default 256 KiB.
	MaxResponseSize int64 `json:"max_response_size,omitempty"`
}

// SPCertConfig is one SP key pair: PEM certificate and private key files
// (they may also be one file holding both).
type SPCertConfig struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// Limits of SAMLConfig values.
const (
	maxSAMLResponseSize = 16 << 20
	minSAMLResponseSize = 16 << 10
	maxSPCerts          = 2
)

var requestBindings = []string{saml.BindingRedirect, saml.BindingPost}

func (c *SAMLConfig) validate() error {
	n := 0
	for _, set := range []bool{c.MetadataURL != "", c.MetadataFile != "", c.Metadata != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("saml needs exactly one of metadata_url, metadata_file or metadata")
	}
	if c.MetadataURL != "" && !strings.Contains(c.MetadataURL, "{") {
		if err := checkMetadataURL(c.MetadataURL); err != nil {
			return err
		}
	}
	if c.RequestBinding != "" {
		if err := oneOf("request_binding", c.RequestBinding, requestBindings); err != nil {
			return err
		}
	}
	if len(c.SPCerts) > maxSPCerts {
		return fmt.Errorf("at most %d sp_cert lines (current and previous)", maxSPCerts)
	}
	for _, sc := range c.SPCerts {
		if sc.Cert == "" || sc.Key == "" {
			return errors.New("sp_cert needs a certificate file and a key file")
		}
	}
	if c.ClockSkew < 0 || time.Duration(c.ClockSkew) > saml.MaxClockSkew {
		return fmt.Errorf("clock_skew must be between 0 and %v", saml.MaxClockSkew)
	}
	if c.MetadataRefresh < 0 {
		return errors.New("metadata_refresh must not be negative")
	}
	if c.MaxResponseSize != 0 && (c.MaxResponseSize < minSAMLResponseSize || c.MaxResponseSize > maxSAMLResponseSize) {
		return fmt.Errorf("max_response_size must be between %d KiB and %d MiB", minSAMLResponseSize>>10, maxSAMLResponseSize>>20)
	}
	return nil
}

// checkMetadataURL is the adapt-time version of idp/saml's rule: https, or
// http on a loopback host.
func checkMetadataURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("metadata_url %q is not an absolute URL", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && idp.IsLoopbackHost(u.Host):
	default:
		return fmt.Errorf("metadata_url %q must be https (plain http only on loopback hosts)", raw)
	}
	return nil
}

// build makes the SAML service provider, with the SP keys configured or
// kept in the store.
func (c *SAMLConfig) build(ctx context.Context, a *App, name string, repl *caddy.Replacer, replay idp.ReplayGuard) (*saml.Provider, error) {
	keys, err := c.spKeys(ctx, a.db, name, repl)
	if err != nil {
		return nil, err
	}
	return saml.New(saml.Config{
		Name:              name,
		EntityID:          repl.ReplaceKnown(c.EntityID, ""),
		MetadataURL:       repl.ReplaceKnown(c.MetadataURL, ""),
		MetadataFile:      repl.ReplaceKnown(c.MetadataFile, ""),
		MetadataXML:       []byte(c.Metadata),
		IdPEntityID:       repl.ReplaceKnown(c.IdPEntityID, ""),
		MetadataRefresh:   time.Duration(c.MetadataRefresh),
		SPKeys:            keys,
		SignRequests:      c.SignRequests,
		RequestBinding:    c.RequestBinding,
		AllowIdPInitiated: c.IdPInitiated,
		AllowSHA1:         c.AllowSHA1,
		ClockSkew:         time.Duration(c.ClockSkew),
		MaxResponseSize:   c.MaxResponseSize,
		Logger:            a.logger.Named("saml").With(zap.String("idp", name)),
	}, a.flows, replay)
}

// spKeySecret names the store record of an IdP's generated SP key pair.
func spKeySecret(idpName string) string { return "saml-sp-key/" + idpName }

// spKeys returns the configured SP key pairs, or else the one generated for
// this IdP on first start and kept in the store (PEM, key and certificate),
// so that the certificate an IdP admin uploaded stays valid across
// restarts and reloads.
func (c *SAMLConfig) spKeys(ctx context.Context, db store.Store, idpName string, repl *caddy.Replacer) ([]saml.KeyPair, error) {
	if len(c.SPCerts) > 0 {
		keys := make([]saml.KeyPair, 0, len(c.SPCerts))
		for _, sc := range c.SPCerts {
			kp, err := loadKeyPair(repl.ReplaceKnown(sc.Cert, ""), repl.ReplaceKnown(sc.Key, ""))
			if err != nil {
				return nil, err
			}
			keys = append(keys, kp)
		}
		return keys, nil
	}
	name := spKeySecret(idpName)
	var data []byte
	err := db.View(ctx, func(tx store.Tx) error {
		var err error
		data, err = tx.LoadOrStoreSecret(name, nil)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		// First start: generate outside the transaction (RSA key
		// generation takes a while), then keep whichever pair reached
		// the store first.
		var kp saml.KeyPair
		if kp, err = saml.GenerateKeyPair("caddy-sso SAML SP " + idpName); err != nil {
			return nil, err
		}
		var pem []byte
		if pem, err = saml.EncodeKeyPairPEM(kp); err != nil {
			return nil, err
		}
		err = db.Update(ctx, func(tx store.Tx) error {
			var err error
			data, err = tx.LoadOrStoreSecret(name, pem)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("SP key pair: %w", err)
	}
	kp, err := saml.DecodeKeyPairPEM(data)
	if err != nil {
		return nil, fmt.Errorf("SP key pair kept in the store: %w", err)
	}
	return []saml.KeyPair{kp}, nil
}

// loadKeyPair reads an SP certificate and key from PEM files.
func loadKeyPair(certFile, keyFile string) (saml.KeyPair, error) {
	var data []byte
	for _, f := range []string{certFile, keyFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			return saml.KeyPair{}, fmt.Errorf("sp_cert: %w", err)
		}
		data = append(append(data, b...), '\n')
		if certFile == keyFile {
			break
		}
	}
	kp, err := saml.DecodeKeyPairPEM(data)
	if err != nil {
		return saml.KeyPair{}, fmt.Errorf("sp_cert %s %s: %w", certFile, keyFile, err)
	}
	return kp, nil
}

// samlProtocol adapts the SAML service provider to loginProtocol: the
// callback is base+"acs"; metadata and slo are its other endpoints.
type samlProtocol struct {
	sp     *saml.Provider
	name   string
	app    *App
	logger *zap.Logger
}

func (s *samlProtocol) Begin(w http.ResponseWriter, r *http.Request, base, returnTo string) error {
	return s.sp.Begin(w, r, base, returnTo)
}

func (s *samlProtocol) Callback(w http.ResponseWriter, r *http.Request, base string) (*idp.Assertion, string, error) {
	return s.sp.Callback(w, r, base)
}

// Logout sends a signed LogoutRequest to the IdP's Single Logout service;
// its LogoutResponse comes back to base+"slo", which redirects to returnTo.
func (s *samlProtocol) Logout(w http.ResponseWriter, r *http.Request, base string, info idp.LogoutInfo, returnTo string) (bool, error) {
	err := s.sp.Logout(w, r, base, info, returnTo)
	if errors.Is(err, saml.ErrNoSLO) {
		return false, nil
	}
	return err == nil, err
}

func (s *samlProtocol) ServeEndpoint(w http.ResponseWriter, r *http.Request, base, name string) error {
	switch name {
	case "metadata":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("sso: SAML metadata takes GET"))
		}
		return s.sp.Metadata(w, r, base)
	case "slo":
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("sso: SAML single logout takes GET or POST"))
		}
		return s.serveSLO(w, r, base)
	}
	return errNoEndpoint
}

func (s *samlProtocol) Start()       { s.sp.Start() }
func (s *samlProtocol) Close() error { return s.sp.Close() }

// serveSLO is the Single Logout endpoint: the IdP's LogoutRequest (ending
// the local sessions it names) or its LogoutResponse to a logout begun at
// /.sso/logout.
func (s *samlProtocol) serveSLO(w http.ResponseWriter, r *http.Request, base string) error {
	err := s.sp.HandleSLO(w, r, base, func(ctx context.Context, nameID, sessionIndex string) error {
		return s.app.endSAMLSessions(ctx, s.name, nameID, sessionIndex)
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, saml.ErrPartialLogout):
		// The IdP has been answered (with a failure status); nothing
		// more may be written.
		s.logger.Error("single logout: local sessions could not all be ended", zap.Error(err))
		return nil
	}
	code := "saml_logout_failed"
	var le *idp.LoginError
	if errors.As(err, &le) {
		code = le.Code
	}
	s.logger.Warn("single logout refused", zap.String("reason", code), zap.Error(err))
	return page{Status: http.StatusBadRequest, Title: "Sign-out failed",
		Message: "The sign-out message from the identity provider could not be accepted. Close the browser to end your session; if this keeps happening, give your administrator the reference below.",
		Code:    code}.write(w)
}

// endSAMLSessions ends the local sessions a SAML LogoutRequest names: those
// that signed in through idpName with nameID and, when sessionIndex is not
// empty, that SessionIndex. It is one transaction, and each ended session
// is audited.
func (a *App) endSAMLSessions(ctx context.Context, idpName, nameID, sessionIndex string) error {
	var ended []*store.Session
	err := a.db.Update(ctx, func(tx store.Tx) error {
		ended = ended[:0]
		sessions, err := tx.SessionsBySubject(idpName, nameID)
		if err != nil {
			return err
		}
		for _, s := range sessions {
			if sessionIndex != "" && s.Logout.SessionID != sessionIndex {
				continue
			}
			if err := tx.DeleteSession(s.Hash); err != nil {
				return err
			}
			ended = append(ended, s)
			if err := tx.Audit(store.Event{Type: store.EventSessionLoggedOut, IdP: idpName, UserID: s.UserID, Reason: "saml_slo"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ending sessions for single logout: %w", err)
	}
	// The sessions are gone from the store; drop exactly those from the
	// cache, so the next request with one of them is signed out.
	for _, s := range ended {
		a.sessions.ForgetSession(s.Hash)
	}
	a.logger.Info("single logout ended local sessions", zap.String("idp", idpName), zap.Int("sessions", len(ended)))
	return nil
}
