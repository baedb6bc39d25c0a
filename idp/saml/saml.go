// Package saml is the SAML 2.0 service provider: SP-initiated login over the
// HTTP-Redirect (or HTTP-POST) binding, the assertion consumer service over
// HTTP-POST, SP metadata, IdP metadata from a URL, a file or inline, and
// Single Logout in both directions. It is built on crewjam/saml's
// saml.ServiceProvider, which does the XML signature, encryption and
// condition checks; this package adds what a multi-site gateway needs
// around it:
//
//   - no per-login state in memory: the AuthnRequest ID and the return URL
//     travel in an encrypted flow cookie (idp.FlowCookies) named after the
//     RelayState, so the response must come back to the browser that asked;
//   - every assertion ID is handed back with the assertion
//     (idp.Assertion.SingleUse) for the sign-in transaction to consume, and
//     every IdP LogoutRequest ID is handed to idp.Runtime.Sessions, whose
//     transaction consumes it as it ends the sessions the request names;
//     so a captured message is refused even after a restart or on another
//     instance, and a message whose work failed is not used up (the IdP
//     may send it again);
//   - the body is capped before anything parses it, and documents with a
//     DOCTYPE (and so any entity declaration) are refused before crewjam or
//     etree see them;
//   - crewjam's opt-in hardening is switched on: RejectUnknownConditions,
//     RequireSignedResponseForCBC, LimitRelayStateLength, and
//     RejectSHA1Signatures unless Config.AllowSHA1;
//   - a stricter, configurable clock skew on top of crewjam's fixed one;
//   - a Response with more than one assertion is refused, signed or not;
//   - optionally, a required authentication context (Config.AuthnContext);
//   - IdP-initiated login is off by default, and when on its RelayState is
//     only ever used as a same-origin path;
//   - every failure is an *idp.LoginError with a stable Code.
//
// A ServiceProvider value is built per request from the base URL of the
// site the request arrived on, so one Provider serves any number of sites;
// nothing in it is shared between requests except the read-only keys and
// the current IdP metadata snapshot.
package saml

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
)

// Codes of the *idp.LoginError values this package returns. They are stable:
// metrics, audit events and error pages key on them.
const (
	CodeMetadataUnavailable = "saml_metadata_unavailable" // no IdP metadata could be loaded yet
	CodeBadBase             = "saml_bad_base"             // the caller passed an unusable base URL
	CodeRequestFailed       = "saml_request_failed"       // building or signing a request failed
	CodeFlowSave            = "saml_flow_save_failed"     // the flow cookie could not be set
	CodeMethodNotAllowed    = "saml_method_not_allowed"   // the ACS was not POSTed to
	CodeResponseTooLarge    = "saml_response_too_large"   // body over MaxResponseSize
	CodeResponseMissing     = "saml_response_missing"     // no (or several) SAMLResponse fields
	CodeMalformed           = "saml_malformed"            // bad base64, form or XML
	CodeDoctype             = "saml_doctype"              // DOCTYPE / entity declarations
	CodeUnsolicited         = "saml_unsolicited"          // IdP-initiated while that is off, or InResponseTo without our RelayState
	CodeFlowMissing         = "saml_flow_missing"         // no flow cookie: another browser, or cookies blocked
	CodeFlowExpired         = "saml_flow_expired"         // the user took longer than LoginTimeout
	CodeFlowInvalid         = "saml_flow_invalid"         // flow cookie tampered with or swapped
	CodeACSMismatch         = "saml_acs_mismatch"         // response posted to another site than the login began on
	CodeSignature           = "saml_signature_invalid"    // missing, bad, wrapped or misplaced signature
	CodeUntrustedKey        = "saml_signature_untrusted"  // signed by a key the IdP metadata does not list
	CodeSignatureAlgorithm  = "saml_signature_algorithm"  // SHA-1 (or another refused algorithm)
	CodeEncryptionAlgorithm = "saml_encryption_algorithm" // encrypted with a refused algorithm (rsa-1_5, tripledes-cbc)
	CodeIssuer              = "saml_issuer_mismatch"      // Issuer is not the IdP's entity ID
	CodeStatus              = "saml_status"               // the IdP answered a non-Success status
	CodeDestination         = "saml_destination_mismatch" // Destination or Recipient is not this endpoint
	CodeAudience            = "saml_audience_mismatch"    // missing or foreign AudienceRestriction
	CodeNotYetValid         = "saml_not_yet_valid"        // NotBefore / IssueInstant in the future
	CodeExpired             = "saml_expired"              // NotOnOrAfter or SessionNotOnOrAfter passed, or IssueInstant stale
	CodeInResponseTo        = "saml_in_response_to"       // InResponseTo is not this browser's request
	CodeMultipleAssertions  = "saml_multiple_assertions"  // more than one Assertion or EncryptedAssertion in the Response
	CodeAuthnContext        = "saml_authn_context"        // no AuthnContextClassRef is one of Config.AuthnContext
	CodeReplayed            = "saml_replayed"             // assertion or LogoutRequest ID already used
	CodeReplayCheck         = "saml_replay_check_failed"  // a message ID could not be recorded for single use
	CodeDecryption          = "saml_decryption_failed"    // encrypted assertion not decryptable with our keys
	CodeUnsupported         = "saml_unsupported"          // unknown conditions, wrong version, unsupported feature
	CodeIncomplete          = "saml_incomplete"           // a required element is missing
	CodeInvalid             = "saml_invalid"              // any other refusal by the SAML library
	CodeSLOMessageMissing   = "saml_slo_message_missing"  // the SLO endpoint got neither request nor response
	CodeLogoutFailed        = "saml_logout_failed"        // endSessions failed (see ErrPartialLogout)
)

// ErrNoSLO is returned by Logout when the IdP metadata lists no Single
// Logout endpoint the SP can use (or there is no NameID to log out). Nothing
// has been written to the response: the caller ends the local session and
// redirects on its own.
var ErrNoSLO = errors.New("saml: the identity provider has no single logout endpoint")

// ErrPartialLogout is wrapped by the error HandleSLO returns when the
// endSessions callback failed. The IdP has already been answered (with a
// Responder status, so it reports a partial logout), so the caller must not
// write a response; it should only log and audit the error.
var ErrPartialLogout = errors.New("saml: local sessions could not all be ended")

// Defaults for the zero values of Config.
const (
	DefaultMetadataRefresh = 24 * time.Hour
	// MaxClockSkew is the largest ClockSkew accepted: crewjam/saml applies
	// its own fixed tolerance of saml.MaxClockSkew (3 minutes), a
	// package-level variable this package never modifies, so a larger value
	// here could not take effect.
	MaxClockSkew           = 3 * time.Minute
	DefaultMaxResponseSize = 256 << 10
	// MinResponseSizeCap and MaxResponseSizeCap bound MaxResponseSize: a
	// signed response with its certificate and a long group list needs
	// tens of KiB, and no IdP sends megabytes.
	MinResponseSizeCap = 16 << 10
	MaxResponseSizeCap = 16 << 20
	// MaxSPKeys is how many SP key pairs are accepted: the current one,
	// then the previous one during a rotation.
	MaxSPKeys = 2
	// maxMetadataSize caps IdP metadata documents. Single-IdP metadata is a
	// few tens of kilobytes; federation aggregates are not supported.
	maxMetadataSize = 8 << 20
	// replayKind is the single-use namespace of SAML message IDs.
	replayKind = "saml_id"
	// spKeySecretPrefix names the store secret of a generated SP key pair.
	spKeySecretPrefix = "saml-sp-key/"
	// signatureMethod signs AuthnRequests (when enabled) and every logout
	// message: the single logout profile requires logout messages sent with
	// the HTTP-Redirect and HTTP-POST bindings to be signed.
	signatureMethod = dsig.RSASHA256SignatureMethod
)

// The SP endpoints under an IdP's base URL on a site
// (/.sso/saml/<idp>/<name>): what the IdP registration lists.
const (
	SLOEndpoint      = "slo"
	MetadataEndpoint = "metadata" // also the default SP entity ID
)

// Endpoints are the endpoints ServeEndpoint serves, with what the IdP's
// registration calls each: the one list by which the gateway labels their
// metrics and caddy sso check lists the URLs to register. The ACS,
// idp.SAMLCallbackEndpoint, is Callback's.
func Endpoints() []idp.Endpoint {
	return []idp.Endpoint{
		{Name: SLOEndpoint, Field: "Single Logout URL"},
		{Name: MetadataEndpoint, Field: "SP metadata URL"},
	}
}

// Request bindings for Config.RequestBinding.
const (
	BindingRedirect = "redirect"
	BindingPost     = "post"
)

// Config describes one SAML identity provider and this service provider's
// registration there.
type Config struct {
	// Name is the IdP's configured name; it becomes Assertion.IdP and keeps
	// flows and replay entries of different IdPs apart.
	Name string
	// EntityID is this SP's entity ID. Empty means the metadata URL of the
	// site the request arrived on (base+"metadata"), which differs per site:
	// set it when one registration at the IdP serves several sites.
	EntityID string

	// Exactly one IdP metadata source. MetadataURL must be https, except
	// for loopback hosts (127.0.0.0/8, ::1, localhost) used by local IdPs.
	MetadataURL  string
	MetadataFile string
	MetadataXML  []byte
	// IdPEntityID picks the IdP out of metadata that describes several
	// entities (an EntitiesDescriptor). Optional for single-IdP metadata;
	// when set, the metadata's entity ID must match it.
	IdPEntityID string
	// MetadataRefresh is how often URL and file metadata are reloaded;
	// default 24 hours. Metadata is also reloaded when its validUntil
	// passes. A failed reload keeps the last good copy.
	MetadataRefresh time.Duration

	// SPKeys are the SP's signing and decryption key pairs. The first is
	// current: it signs and is the one IdPs should encrypt to. A second one
	// is still accepted for decryption and still published in the metadata,
	// for key rotation. With none, Start loads the pair generated for this
	// IdP on its first start from the store (idp.Runtime.Secrets), or
	// generates and keeps one, so the certificate an IdP admin uploaded
	// stays valid across restarts, reloads and instances.
	SPKeys []KeyPair

	// SignRequests signs AuthnRequests (with RSA-SHA256). Logout messages
	// are always signed.
	SignRequests bool
	// RequestBinding is how AuthnRequests reach the IdP: "redirect"
	// (default) or "post".
	RequestBinding string
	// NameIDFormat is requested in the AuthnRequest's NameIDPolicy. Empty
	// means unspecified (no Format attribute), which lets the IdP send what
	// it is configured to send; IdPs such as Entra refuse a request for a
	// format they are not configured for.
	NameIDFormat string
	// AuthnContext are the authentication context classes
	// (AuthnContextClassRef URIs) to require, such as a multi-factor one:
	// the AuthnRequest asks for them (RequestedAuthnContext, Comparison
	// exact), and an assertion, an IdP-initiated one too, is accepted only
	// if an AuthnStatement's AuthnContextClassRef is one of them
	// (CodeAuthnContext). Default none: any class is accepted.
	AuthnContext []string

	// AllowIdPInitiated accepts unsolicited responses (no InResponseTo).
	// Default false. When on, their RelayState is used only as a same-origin
	// path (anything else becomes "/"), and the sign-in transaction, which
	// always consumes the assertion ID (Assertion.SingleUse), is what makes
	// each assertion single-use. A response with an InResponseTo answers a
	// login begun here either way: without that login's flow cookie it is
	// refused as when this is off.
	AllowIdPInitiated bool
	// TrustEmail vouches for the email of every assertion from this IdP
	// (idp.Assertion.EmailVerified), which SAML never does by itself: the
	// operator says the IdP's administrators control the attribute the
	// mapping reads as the email, so that link_by_email may link by it
	// (signin's emailVerified: only a mapped email that is present). Never
	// for an IdP where people choose or edit their own address.
	TrustEmail bool
	// AllowSHA1 accepts RSA-SHA1 signatures and SHA-1 digests from the IdP.
	// Default false: SHA-1 is refused.
	AllowSHA1 bool
	// ClockSkew tolerates clock differences with the IdP for NotBefore,
	// NotOnOrAfter and IssueInstant; default idp.DefaultClockSkew (1 minute),
	// at most MaxClockSkew. crewjam/saml additionally refuses responses
	// issued more than 90 seconds ago (saml.MaxIssueDelay).
	ClockSkew time.Duration
	// MaxResponseSize caps the ACS and SLO request bodies before anything is
	// parsed; default 256 KiB.
	MaxResponseSize int64
	// LoginTimeout is how long a user may spend at the IdP; the flow cookie
	// lives this long. Default 10 minutes.
	LoginTimeout time.Duration

	// HTTPClient fetches URL metadata; nil means a client with a 10 s
	// timeout (idp.DefaultHTTPTimeout). Redirects are followed only to
	// https (or loopback http) URLs: see idp.SafeRedirects.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives metadata refresh events and the generation of an SP
	// key pair (Start); nil means no logging. Nothing
	// logged contains assertion content, tokens or keys.
	Logger *zap.Logger
}

// Provider is the service provider for one SAML identity provider. It is
// safe for concurrent use.
type Provider struct {
	cfg    Config
	rt     idp.Runtime // set by Start
	keys   []KeyPair   // configured, or loaded by Start
	client *http.Client
	log    *zap.Logger

	md      atomic.Pointer[idpMetadata]
	fetchMu sync.Mutex // serialises metadata loads
	// lastAttempt and lastForced are guarded by fetchMu: they rate-limit
	// loads triggered by requests (no metadata yet, unknown signing key),
	// so that a flood of forged responses is not a flood of fetches.
	lastAttempt time.Time
	lastErr     error
	lastForced  time.Time
	// loads counts finished loads, so that a request that waited for one
	// takes its outcome (see metadata).
	loads atomic.Uint64
	// minRetry is the least time between request-triggered loads and the
	// shortest refresh delay; tests shorten it.
	minRetry time.Duration

	startOnce sync.Once
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

var _ idp.Provider = (*Provider)(nil)

// New validates cfg and returns a Provider, ready to serve once Start has
// given it the gateway's runtime. Inline and file metadata are loaded here,
// so a broken file fails the configuration. URL metadata is not fetched
// here: Start fetches it in the background and keeps it fresh, and the first
// login fetches it if it is still missing, so Caddy starts while the IdP is
// down.
func New(cfg Config) (*Provider, error) {
	if err := normalize(&cfg); err != nil {
		return nil, fmt.Errorf("saml idp %q: %w", cfg.Name, err)
	}
	p := &Provider{
		cfg:      cfg,
		keys:     cfg.SPKeys,
		log:      cfg.Logger.With(zap.String("idp", cfg.Name)), // every line names the IdP, once
		minRetry: 10 * time.Second,                             // as idp/oidc retries a failed discovery
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	p.client = idp.SafeRedirects(cfg.HTTPClient)
	if cfg.MetadataURL == "" {
		// Metadata past its validUntil is not loaded, but is no
		// configuration error: it was valid when configured, and failing
		// here would keep Caddy (every site) from starting once it
		// expires. Sign-in refuses it with idp.CodeMisconfigured and
		// says why, and a file is reloaded on refresh.
		var expired *expiredMetadataError
		if err := p.loadMetadata(context.Background()); err != nil && !errors.As(err, &expired) {
			return nil, fmt.Errorf("saml idp %q: %w", cfg.Name, err)
		}
	}
	return p, nil
}

// Check holds c, as a configuration writes it, to the rules New applies:
// one IdP metadata source, an https (or loopback http) metadata URL, a
// known request binding, at most MaxSPKeys key pairs, a clock skew of at
// most MaxClockSkew, a response size cap within its bounds, an entity ID
// and authentication contexts without stray spaces, no negative duration.
// Each error names its setting as the Caddyfile writes it (clock_skew,
// max_response_size, request_binding, sp_cert), which is what `caddy
// validate` shows beside the line. It changes nothing and touches no
// network or file: the name and the key pairs' contents are New's to check
// (a configuration names the IdP by its own rule and loads the sp_cert
// files at Provision). deferred reports a value that is resolved later (a
// config placeholder, say): the metadata URL is then checked by New, once
// resolved; nil defers nothing.
func (c Config) Check(deferred func(string) bool) error {
	if c.metadataSources() == 0 {
		return errors.New("saml needs one of metadata_url, metadata_file or metadata")
	}
	if deferred == nil {
		deferred = func(string) bool { return false }
	}
	return c.CheckSettings(deferred)
}

// CheckSettings is Check without the metadata source the configuration as
// a whole must have: each setting given, held to its rule, so that a parser
// can check a block line by line and report a mistake at the line that
// makes it. deferred must not be nil.
func (c Config) CheckSettings(deferred func(string) bool) error {
	if c.metadataSources() > 1 {
		return errors.New("the IdP metadata is already given: use one of metadata_url, metadata_file or metadata")
	}
	if c.MetadataURL != "" && !deferred(c.MetadataURL) {
		if err := checkMetadataURL(c.MetadataURL); err != nil {
			return fmt.Errorf("metadata_url: %w", err)
		}
	}
	if c.RequestBinding != "" && c.RequestBinding != BindingRedirect && c.RequestBinding != BindingPost {
		return fmt.Errorf("unknown request_binding %q (expected one of: %s, %s)", c.RequestBinding, BindingRedirect, BindingPost)
	}
	if len(c.SPKeys) > MaxSPKeys {
		return fmt.Errorf("sp_cert may appear at most %d times (the current key pair, then the previous one)", MaxSPKeys)
	}
	// The IdP compares the entity ID byte for byte with the one it
	// registered, so a space around it, which no one sees in a config,
	// would refuse every sign-in with an audience mismatch.
	if strings.TrimSpace(c.EntityID) != c.EntityID {
		return fmt.Errorf("entity_id %q must not have surrounding spaces", c.EntityID)
	}
	// Each class is a URI, compared byte for byte with the assertion's
	// (and sent as written: a placeholder is never resolved).
	if err := idp.CheckLiteral("authn_context", c.AuthnContext...); err != nil {
		return err
	}
	for _, class := range c.AuthnContext {
		if class == "" || strings.ContainsFunc(class, unicode.IsSpace) {
			return fmt.Errorf("authn_context %q must be a class reference URI, without spaces", class)
		}
	}
	// Of metadata_refresh and LoginTimeout, only the sign: a reload never
	// comes sooner than minRetry after the last, whatever the setting.
	if err := cmp.Or(idp.CheckDuration("clock_skew", c.ClockSkew), negative("metadata_refresh", c.MetadataRefresh),
		negative("login timeout", c.LoginTimeout)); err != nil {
		return err
	}
	if c.ClockSkew > MaxClockSkew {
		return fmt.Errorf("clock_skew %v must be at most %v", c.ClockSkew, MaxClockSkew)
	}
	if n := c.MaxResponseSize; n != 0 && (n < MinResponseSizeCap || n > MaxResponseSizeCap) {
		return fmt.Errorf("max_response_size %d bytes must be between %d KiB and %d MiB", n, MinResponseSizeCap>>10, MaxResponseSizeCap>>20)
	}
	return nil
}

// negative holds a duration to idp.CheckDuration's sign rule only.
func negative(setting string, d time.Duration) error {
	if d < 0 {
		return idp.CheckDuration(setting, d)
	}
	return nil
}

// metadataSources counts the IdP metadata sources given.
func (c Config) metadataSources() (n int) {
	for _, set := range []bool{c.MetadataURL != "", c.MetadataFile != "", len(c.MetadataXML) > 0} {
		if set {
			n++
		}
	}
	return n
}

// normalize checks cfg (Check, and what only New can: a name, the key
// pairs) and fills in the defaults.
func normalize(cfg *Config) error {
	if cfg.Name == "" {
		return errors.New("name is required")
	}
	if err := cfg.Check(nil); err != nil {
		return err
	}
	for i, kp := range cfg.SPKeys {
		if err := kp.validate(); err != nil {
			return fmt.Errorf("SP key pair %d: %w", i+1, err)
		}
	}
	cfg.AuthnContext = slices.Clone(cfg.AuthnContext)
	cfg.SPKeys = append([]KeyPair(nil), cfg.SPKeys...)
	cfg.MetadataXML = append([]byte(nil), cfg.MetadataXML...)
	cfg.RequestBinding = cmp.Or(cfg.RequestBinding, BindingRedirect)
	if cfg.MetadataRefresh == 0 {
		cfg.MetadataRefresh = DefaultMetadataRefresh
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = idp.DefaultClockSkew
	}
	if cfg.MaxResponseSize == 0 {
		cfg.MaxResponseSize = DefaultMaxResponseSize
	}
	if cfg.LoginTimeout == 0 {
		cfg.LoginTimeout = idp.DefaultLoginTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return nil
}

// checkMetadataURL accepts https URLs, and plain http ones only on loopback
// hosts: the metadata names the keys every login is verified with, so
// anyone who can change it in transit can log in as anyone.
func checkMetadataURL(raw string) error {
	_, err := idp.CheckURL(raw)
	return err
}

// Name returns the configured IdP name.
func (p *Provider) Name() string { return p.cfg.Name }

// Protocol returns idp.ProtocolSAML.
func (p *Provider) Protocol() string { return idp.ProtocolSAML }

// Start takes the gateway's runtime, loads (or generates and keeps) the SP
// key pair when none is configured, and starts the metadata refresh. It
// needs rt's Flows and Sessions: the IDs that make messages single-use are
// consumed by the sign-in transaction (Assertion.SingleUse) and by
// Sessions, in the transaction that ends the sessions.
func (p *Provider) Start(ctx context.Context, rt idp.Runtime) error {
	if rt.Flows == nil || rt.Sessions == nil {
		return fmt.Errorf("saml idp %q: flow cookies and session ender are required", p.cfg.Name)
	}
	if len(p.keys) == 0 {
		if rt.Secrets == nil {
			return fmt.Errorf("saml idp %q: no SP key pair configured and no store to keep a generated one", p.cfg.Name)
		}
		kp, err := p.storedKeyPair(ctx, rt.Secrets)
		if err != nil {
			return fmt.Errorf("saml idp %q: SP key pair: %w", p.cfg.Name, err)
		}
		p.keys = []KeyPair{kp}
	}
	p.rt = rt
	p.startRefresh()
	return nil
}

// SPKeySecretName is the store secret that holds the SP key pair generated
// for the named IdP (`caddy sso saml-key` writes it out).
func SPKeySecretName(idpName string) string { return spKeySecretPrefix + idpName }

// storedKeyPair returns the key pair kept in the store for this IdP,
// generating it on the first start.
func (p *Provider) storedKeyPair(ctx context.Context, secrets idp.Secrets) (KeyPair, error) {
	var generated []byte
	data, err := secrets.LoadOrStore(ctx, SPKeySecretName(p.cfg.Name), func() ([]byte, error) {
		kp, err := GenerateKeyPair("caddy-sso SAML SP " + p.cfg.Name)
		if err != nil {
			return nil, err
		}
		generated, err = EncodeKeyPairPEM(kp)
		return generated, err
	})
	if err != nil {
		return KeyPair{}, err
	}
	kp, err := DecodeKeyPairPEM(data)
	if err != nil {
		return KeyPair{}, fmt.Errorf("kept in the store: %w", err)
	}
	// Said only when the pair in use is the one just made (another
	// instance may have stored its own first): on a first start that is
	// expected, but on a store restored from a backup older than this IdP
	// the IdP still holds the lost certificate, and signed requests and
	// encrypted assertions then fail with nothing else to say why
	// (docs/operations.md, "SAML keys and metadata").
	if generated != nil && bytes.Equal(data, generated) {
		// The sites (and so the metadata URLs) are known only per request:
		// the line gives the path under the default path_prefix.
		fields := []zap.Field{zap.String("secret", SPKeySecretName(p.cfg.Name)),
			zap.String("sp_metadata", "https://<site>/.sso/saml/"+p.cfg.Name+"/"+MetadataEndpoint)}
		if p.cfg.EntityID != "" {
			fields = append(fields, zap.String("entity_id", p.cfg.EntityID))
		}
		p.log.Info("generated a new SAML SP key pair and kept it in the store: an IdP that holds another SP certificate "+
			"must be given this SP's metadata again (sp_metadata, under the route's path_prefix if it sets one)", fields...)
	}
	return kp, nil
}

// endpoints are this SP's URLs on one site.
type endpoints struct {
	base, acs, slo, metadata *url.URL
	entityID                 string
}

// siteEndpoints checks base (the absolute URL of this IdP's SP endpoints on
// the current site, ending in "/") and derives the endpoint URLs from it.
func (p *Provider) siteEndpoints(base string) (*endpoints, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, idp.Fail(CodeBadBase, fmt.Errorf("saml idp %q: base URL: %w", p.cfg.Name, err))
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || !strings.HasSuffix(u.Path, "/") {
		return nil, idp.Fail(CodeBadBase, fmt.Errorf("saml idp %q: base URL %q must be absolute, end in '/', and have no query", p.cfg.Name, base))
	}
	e := &endpoints{
		base:     u,
		acs:      u.JoinPath(idp.SAMLCallbackEndpoint),
		slo:      u.JoinPath(SLOEndpoint),
		metadata: u.JoinPath(MetadataEndpoint),
	}
	e.entityID = p.cfg.EntityID
	if e.entityID == "" {
		e.entityID = e.metadata.String()
	}
	return e, nil
}

// serviceProvider builds the crewjam ServiceProvider for one request: the
// site's endpoints, the current IdP metadata, our keys, the hardening
// switches, and a clock fixed at now (so that crewjam's checks and ours
// agree on the time). Its ReplayCache refuses every ID: the ACS and the SLO
// endpoint, which verify the messages crewjam offers IDs of, replace it
// with a singleUseRecorder.
func (p *Provider) serviceProvider(e *endpoints, md *saml.EntityDescriptor, now time.Time) *saml.ServiceProvider {
	sp := &saml.ServiceProvider{
		EntityID:                         e.entityID,
		Key:                              p.keys[0].Key,
		Certificate:                      p.keys[0].Certificate,
		MetadataURL:                      *e.metadata,
		AcsURL:                           *e.acs,
		SloURL:                           *e.slo,
		IDPMetadata:                      md,
		AuthnNameIDFormat:                saml.UnspecifiedNameIDFormat,
		LogoutSignatureMethod:            signatureMethod,
		LogoutBindings:                   []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		RejectUnknownConditions:          true,
		RequireSignedResponseForCBC:      true,
		LimitRelayStateLength:            true,
		RejectSHA1Signatures:             !p.cfg.AllowSHA1,
		ReplayCache:                      unrecorded{},
		Clock:                            dsig.NewFakeClockAt(now),
		// The IdP's keys are trusted because its metadata lists them,
		// not because of their certificates' validity dates: the SAML
		// V2.0 Metadata Interoperability Profile treats a certificate in
		// metadata as a container for the key (as Shibboleth and
		// mod_auth_mellon do), and IdPs do keep signing with a listed
		// certificate past its NotAfter. The metadata's own validUntil
		// bounds that trust (signInMetadata); `caddy sso check` warns of
		// certificates about to expire.
		IgnoreCertificateExpiry: true,
		// The SP metadata carries no validUntil (only cacheDuration,
		// crewjam's DefaultCacheDuration, a day): with one, a copy an
		// IdP imported as a file (Shibboleth, SimpleSAMLphp) would stop
		// being trusted two days after its download, though nothing in
		// it changed, and every fetch would differ. It changes only when
		// the SP keys do (docs/operations.md, "SAML keys and metadata").
		MetadataOmitValidUntil: true,
	}
	if p.cfg.NameIDFormat != "" {
		sp.AuthnNameIDFormat = saml.NameIDFormat(p.cfg.NameIDFormat)
	}
	if p.cfg.SignRequests {
		sp.SignatureMethod = signatureMethod
	}
	if len(p.cfg.AuthnContext) > 0 {
		// crewjam checks every assertion, IdP-initiated ones too.
		sp.RequestedAuthnContext = &saml.RequestedAuthnContext{Comparison: "exact", AuthnContextClassRefs: p.cfg.AuthnContext}
		sp.ValidateAuthnContextClassRef = true
	}
	for _, kp := range p.keys[1:] {
		sp.DecryptionKeys = append(sp.DecryptionKeys, kp.Key)
	}
	return sp
}

// singleUseRecorder stands in for crewjam's replay cache where a message
// is verified: crewjam offers it the message's ID (an assertion's as is, a
// LogoutRequest's prefixed with "LogoutRequest:") once everything else has
// verified, and it records the ID for the transaction that acts on the
// message to consume (the sign-in, or the one that ends the sessions a
// LogoutRequest names), instead of consuming it on its own: a message
// whose work failed is not used up, and the IdP's retry is not refused.
type singleUseRecorder struct {
	prefix string
	got    *idp.SingleUse
}

func (c *singleUseRecorder) Consume(id string, until time.Time) error {
	c.got = &idp.SingleUse{Kind: replayKind, ID: c.prefix + id, Until: until, Code: CodeReplayed}
	return nil
}

// unrecorded is the ReplayCache of a ServiceProvider not built to verify a
// message: none of the crewjam calls made with it offers an ID. Should one
// ever do, it fails (CodeReplayCheck), rather than let the message through
// with nothing to make it single-use.
type unrecorded struct{}

// errUnrecorded is unrecorded's refusal.
var errUnrecorded = errors.New("no single-use record for this message")

func (unrecorded) Consume(string, time.Time) error { return errUnrecorded }

// classify turns an error from crewjam into a *idp.LoginError. The
// InvalidResponseError wrapper is dropped: it carries the whole message
// XML, which must never reach a log line (an untrusted certificate's
// error reads the certificates from it, bounded).
func classify(err error) error {
	var ire *saml.InvalidResponseError
	message := ""
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		err, message = ire.PrivateErr, ire.Response
	}
	var status saml.ErrBadStatus
	var alg xmlenc.ErrAlgorithmNotImplemented
	code := CodeInvalid
	switch {
	case errors.Is(err, errUnrecorded):
		code = CodeReplayCheck
	case errors.Is(err, saml.ErrAssertionReplayed):
		code = CodeReplayed
	case errors.Is(err, saml.ErrUntrustedCertificate):
		return idp.Fail(CodeUntrustedKey, untrustedKey(message, err))
	case errors.Is(err, saml.ErrInvalidSignature) && errors.Is(err, saml.ErrUnsupported):
		code = CodeSignatureAlgorithm
	case errors.Is(err, saml.ErrInvalidSignature):
		code = CodeSignature
	case errors.As(err, &alg):
		// Checked before ErrDecryptionFailed, which crewjam attaches too:
		// the IdP's encryption setting is wrong, not the SP certificate
		// it holds (docs/troubleshooting.md lists both codes).
		return idp.Fail(CodeEncryptionAlgorithm, &encryptionAlgorithmError{alg: string(alg), err: &cappedError{err}})
	case errors.Is(err, saml.ErrDecryptionFailed):
		code = CodeDecryption
	case errors.Is(err, saml.ErrIssuerMismatch):
		code = CodeIssuer
	case errors.As(err, &status):
		code = CodeStatus
	case errors.Is(err, saml.ErrDestinationMismatch):
		code = CodeDestination
	case errors.Is(err, saml.ErrAudienceMismatch):
		code = CodeAudience
	case errors.Is(err, saml.ErrNotYetValid):
		code = CodeNotYetValid
	case errors.Is(err, saml.ErrExpired):
		code = CodeExpired
	case errors.Is(err, saml.ErrRequestIDMismatch):
		code = CodeInResponseTo
	case errors.Is(err, saml.ErrAuthnContextMismatch):
		code = CodeAuthnContext
	case errors.Is(err, saml.ErrUnsupported):
		code = CodeUnsupported
	case errors.Is(err, saml.ErrMissingElement):
		code = CodeIncomplete
	case errors.Is(err, saml.ErrMalformedMessage):
		code = CodeMalformed
	case err != nil && (strings.Contains(err.Error(), "signature element not present") ||
		strings.HasPrefix(err.Error(), "cannot validate signature")):
		// crewjam reports an absent signature where one is required, and
		// certificate lookup failures, without a classification.
		code = CodeSignature
	}
	return idp.Fail(code, &cappedError{err})
}

// encryptionAlgorithmError is an encrypted element (an assertion, a
// NameID, an attribute) that names an algorithm crewjam refuses: RSA
// PKCS#1 v1.5 key transport (rsa-1_5, open to padding-oracle attacks),
// Triple DES, or a digest or mask function it does not know. Its text
// names the algorithm and what is accepted, which is what the IdP's
// administrator must change; the algorithm comes from the message, so it
// is quoted and cut short.
type encryptionAlgorithmError struct {
	alg string
	err error
}

func (e *encryptionAlgorithmError) Error() string {
	return fmt.Sprintf("the IdP encrypted with %.100q, which is refused: configure it to encrypt with AES-128, "+
		"AES-192 or AES-256 (GCM or CBC) and RSA-OAEP key transport (rsa-oaep-mgf1p, or xmlenc11 rsa-oaep)", e.alg)
}

func (e *encryptionAlgorithmError) Unwrap() error { return e.err }

// cappedError keeps crewjam's error in the chain (for errors.Is) but caps
// its text: some of crewjam's parse errors quote the XML tokens they choked
// on, and the text goes to logs, where message content does not belong.
type cappedError struct{ err error }

func (e *cappedError) Error() string {
	const limit = 300
	msg := e.err.Error()
	if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > limit {
		msg = msg[:limit] + "…"
	}
	return msg
}

func (e *cappedError) Unwrap() error { return e.err }

// newRelayState returns a fresh RelayState: 26 characters of crypto/rand
// base32, well under the 80 bytes the bindings allow.
func newRelayState() string { return rand.Text() }

// looksLikeRelayState reports whether s has the shape newRelayState makes,
// so that an IdP-initiated RelayState (a path) is never taken for a flow.
func looksLikeRelayState(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// flowError maps an idp.FlowCookies error to its LoginError.
func flowError(err error) error {
	code := CodeFlowInvalid
	switch {
	case errors.Is(err, idp.ErrFlowMissing):
		code = CodeFlowMissing
	case errors.Is(err, idp.ErrFlowExpired):
		code = CodeFlowExpired
	}
	return idp.Fail(code, err)
}

// readFile is os.ReadFile with a size cap.
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f, limit)
}
