// Package oidc is the OpenID Connect relying party: the authorization code
// flow with PKCE, over golang.org/x/oauth2 (authorization URL and code
// exchange), github.com/go-jose/go-jose/v4 (JWS parsing with an algorithm
// allow-list, signatures) and github.com/coreos/go-oidc/v3 (its KeySet
// contract, implemented here with a rate-limited refresh).
//
// ID tokens are parsed once and their claims decoded once: go-oidc's
// IDTokenVerifier would parse the token twice with a custom KeySet and
// decode the claims twice, which cost a third more than the verification
// itself (BenchmarkVerifyIDToken), and it checks neither azp, iat nor the
// clock skew this package must honour.
//
// A Provider keeps no per-login state in memory: state, nonce and PKCE
// verifier travel in an encrypted flow cookie (idp.FlowCookies), and the
// state is handed back with the assertion (idp.Assertion.SingleUse) for the
// sign-in transaction to consume, so a callback is accepted once. Every
// check OpenID Connect Core 3.1.3.7 asks of a relying party is made here, and
// each has its own LoginError code so that the audit trail says which failed.
package oidc

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/logbudget"
	"github.com/caddy-sso/caddy-sso/internal/maildomain"
)

// Codes of the *idp.LoginError values this package returns. They are stable:
// metrics, audit events and error pages key on them.
const (
	CodeIdPUnavailable   = "idp_unavailable"   // discovery could not be fetched or read (and no earlier copy), or the JWKS, token or userinfo endpoint failed (5xx, 429, no answer); a document that contradicts the configuration is idp.CodeMisconfigured
	CodeFlowSave         = "flow_save_failed"  // Begin could not set the flow cookie
	CodeStateMissing     = "state_missing"     // callback without state
	CodeFlowMissing      = "flow_missing"      // no flow cookie: another browser, or cookies blocked
	CodeFlowExpired      = "flow_expired"      // the user took longer than LoginTimeout
	CodeFlowInvalid      = "flow_invalid"      // flow cookie tampered with or swapped
	CodeStateReplayed    = "state_replayed"    // this state was already used
	CodeIssuerMismatch   = "iss_mismatch"      // RFC 9207 iss differs from the issuer
	CodeIssuerMissing    = "iss_missing"       // RFC 9207 iss absent though advertised
	CodeIdPError         = "idp_error"         // the IdP answered error=...
	CodeCodeMissing      = "code_missing"      // neither code nor error
	CodeRedirectMismatch = "redirect_mismatch" // callback URL differs from Begin's
	CodeTokenExchange    = "token_exchange_failed"
	CodeIDTokenMissing   = "id_token_missing"
	CodeIDTokenSignature = "id_token_signature" // malformed, alg not allowed, or bad signature
	CodeIDTokenIssuer    = "id_token_issuer"
	CodeIDTokenAudience  = "id_token_audience"
	CodeIDTokenAZP       = "id_token_azp"
	CodeIDTokenExpired   = "id_token_expired"
	CodeIDTokenIssuedAt  = "id_token_iat" // missing, in the future, or older than maxIDTokenAge
	CodeIDTokenNotBefore = "id_token_nbf"
	CodeIDTokenNonce     = "id_token_nonce"
	CodeIDTokenSubject   = "id_token_subject"
	CodeIDTokenAtHash    = "id_token_at_hash" // at_hash does not match the access token, or c_hash the code
	CodeTenantMismatch   = "tenant_mismatch"
	CodeTenantNotAllowed = "tenant_not_allowed" // a multi-tenant issuer's token from a tenant Tenants does not admit
	CodeUserinfo         = "userinfo_failed"
	CodeUserinfoSubject  = "userinfo_subject"
	CodeEmailUnverified  = "email_unverified"  // email_verified false, without AllowUnverifiedEmail
	CodeACRNotSatisfied  = "acr_not_satisfied" // acr is not one of RequireACR
	// CodeDomainNotAllowed: the ID token's hd is missing or not one of
	// HostedDomains. The same reference as provision's allowed_domains
	// refusal: to the person and the administrator it is one refusal.
	CodeDomainNotAllowed = "domain_not_allowed"
	// CodeSigningKeyPending: an ID or logout token under a kid the JWKS
	// fetched last lacks, refused only because the JWKS was fetched too
	// recently to fetch again (keysPendingError): possibly the IdP's new
	// key, so not refused as forged; trying again shortly may succeed.
	CodeSigningKeyPending = "signing_key_pending"
)

// Defaults for the zero values of Config.
var (
	defaultScopes     = []string{"openid", "profile", "email"}
	defaultAlgorithms = []string{"RS256", "ES256", "PS256"}
)

const (
	defaultJWKSRefresh = 30 * time.Second
	// replayKind is the single-use namespace of OIDC states.
	replayKind = "oidc_state"
	// scopeOfflineAccess asks for a refresh token (OpenID Connect Core 11).
	scopeOfflineAccess = "offline_access"
)

// knownAlgs are the JWS algorithms a configuration may list. "none" is
// absent on purpose.
var knownAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"}

// reservedParams are set by this package; AuthParams may not replace them.
// max_age is among them: this package sends max_age=0 on a
// re-authenticating sign-in (idp.SignInRequest.Reauthenticate) and holds
// its auth_time to it, and a configured one would need an auth_time check
// of its own that nothing here makes. prompt is not: a re-authenticating
// sign-in adds login to a configured one (authParams).
var reservedParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method", "response_mode", "request", "request_uri", "max_age"}

// MaxClockSkew bounds ClockSkew: the tolerance is how long past its exp an
// ID token or logout token is still accepted, and clocks kept by NTP differ
// by far less than this.
const MaxClockSkew = 5 * time.Minute

// maxIDTokenAge, with the clock skew, bounds how long before the callback
// a sign-in's ID token may have been issued (mod_auth_openidc's
// OIDCIDTokenIatSlack is 600 s too): the token endpoint issues it at the
// code exchange, moments earlier, so an older iat is an IdP clock far
// behind or a token kept from some earlier exchange. Refreshed ID tokens
// are not held to it (verifyRefreshedIDToken).
const maxIDTokenAge = 10 * time.Minute

// Config describes one OpenID provider and this client's registration there.
type Config struct {
	// Name is the IdP's configured name; it becomes Assertion.IdP and keeps
	// flows of different IdPs apart.
	Name string
	// Issuer is the exact issuer identifier (discovery lives under it). It
	// must be https, except on loopback hosts for local IdPs.
	Issuer string
	// ClientID and ClientSecret are this client's registration. An empty
	// secret makes a public client (PKCE only).
	ClientID, ClientSecret string
	// Scopes requested; default openid profile email. Must include openid.
	Scopes []string
	// TokenAuth is how the client authenticates at the token endpoint:
	// "client_secret_basic" or "client_secret_post" (TokenAuthMethods);
	// "" takes Basic unless discovery lists only Post. For IdPs that
	// register one method per client and refuse the other (Auth0, PingOne).
	TokenAuth string
	// Algorithms is the ID token signature allow-list; default RS256, ES256,
	// PS256. "none" is never allowed; HS* only when listed (keyed with the
	// client secret, as OpenID Connect Core 10.1 specifies).
	Algorithms []string
	// TenantID pins Microsoft Entra's "tid" claim: when set, tokens from
	// any other tenant are refused (multi-tenant app registrations would
	// otherwise let every Entra tenant in).
	TenantID string
	// Tenants admits, for Microsoft Entra ID's multi-tenant issuers
	// (MultiTenantIssuer: …/organizations/v2.0, …/common/v2.0), the
	// tenant IDs (tid) whose users may sign in, or AnyTenant alone for
	// every tenant. Required with such an issuer, refused with any other.
	// Their discovery document names the issuer template
	// …/{tenantid}/v2.0: every token's iss must be it filled with the
	// token's own tid, a tid Tenants admits (else CodeTenantNotAllowed),
	// and the tenant of a session's refreshed ID tokens may not change.
	// The assertion's Subject (and Logout.Subject) and the claims named
	// by TenantKeyClaims become "<tid>/<value>", so that the same oid or
	// sub in two tenants is two users, and EmailVerified is always false:
	// any tenant's administrator can give a user any address, which must
	// never link to or take over another's account.
	Tenants []string
	// TenantKeyClaims are the claims a user may be keyed by (the
	// mapping's uniqueUserId candidates), namespaced by tenant with
	// Tenants; unused otherwise.
	TenantKeyClaims []string
	// ClockSkew tolerates clock differences with the IdP for exp, iat and
	// nbf; default idp.DefaultClockSkew (1 minute), at most MaxClockSkew.
	ClockSkew time.Duration
	// LoginTimeout is how long a user may spend at the IdP; the flow cookie
	// and the state's replay entry live this long. Default
	// idp.DefaultLoginTimeout (10 minutes).
	LoginTimeout time.Duration
	// AuthParams are extra authorization request parameters (prompt,
	// login_hint, domain_hint…). Protocol parameters set by this package
	// cannot be replaced. They are requests: nothing checks that the IdP
	// honoured them, and the browser, which carries them, can drop them.
	// acr_values here is such a request; RequireACR enforces one.
	AuthParams map[string]string
	// RequireACR, when set, is sent as acr_values, and a sign-in whose ID
	// token's acr is not one of its values is refused
	// (CodeACRNotSatisfied): the browser can strip acr_values from the
	// authorization request, and IdPs may treat them as voluntary. It
	// excludes acr_values in AuthParams.
	RequireACR []string
	// HostedDomains, when set, admits only sign-ins whose ID token's hd
	// claim is one of them (compared as allowed_domains compares: case,
	// a leading "@", the root's dot and the xn--/Unicode spelling aside;
	// internal/maildomain), and refuses the rest
	// (CodeDomainNotAllowed), an hd missing too: Google Workspace
	// names the account's Workspace domain there, and a personal Google
	// account can hold a verified address on that domain without being
	// one of the Workspace's (Google's advice is to check hd, not the
	// email's domain). With one domain it is also sent as hd, which has
	// Google's account chooser offer only that domain's accounts: a
	// request the browser can drop, the check is what holds.
	HostedDomains []string
	// AllowUnverifiedEmail signs in a person whose ID token (or userinfo)
	// says email_verified false, as an unverified email
	// (idp.Assertion.EmailVerified false, which is never linked by).
	// Without it such a sign-in is refused (CodeEmailUnverified), as
	// oauth2-proxy does: where people choose their own address
	// (self-registration), an unverified one would pass email domain and
	// address rules. An absent email_verified (Entra sends none) is not
	// refused, nor a false one with no email claim (Keycloak sends it for
	// a user without an address): there is no address to distrust, and
	// the mapping and `optional email` decide about a missing one.
	AllowUnverifiedEmail bool
	// TrustEmail counts an absent email_verified (Entra sends none) as
	// true: the operator says the IdP's administrators control the email
	// claim, so that link_by_email may link by it. The IdP's own word
	// wins: a false one is refused, or unverified with
	// AllowUnverifiedEmail. It vouches for the email claim alone, as
	// email_verified does (signin's emailVerified). Refused with Tenants:
	// any tenant's administrator can give a user any address.
	TrustEmail bool
	// JWKSRefreshInterval is the least time between two JWKS fetches, which
	// an unknown key ID triggers; default 30 seconds. It stops a flood of
	// forged tokens from turning into a flood of requests to the IdP.
	JWKSRefreshInterval time.Duration
	// OfflineAccess asks for the offline_access scope, which makes IdPs
	// issue a refresh token (Okta, Entra and PingOne issue none without
	// it), so that the tokens routes pass upstream can be renewed.
	OfflineAccess bool
	// HTTPClient talks to the IdP; nil means a client with a 10 s timeout.
	// New uses copies of it whose redirects must go to https (or loopback
	// http) URLs, and none on the token endpoint (idp.SafeRedirects,
	// idp.NoRedirects); its own CheckRedirect still applies to the rest.
	HTTPClient *http.Client
	// Logger receives what the logout endpoints refuse or do (their
	// requests come from the IdP, not from a person who could see a page),
	// a userinfo endpoint's refusal of the access token, which sign-in
	// goes on without, and the background refreshes of the discovery
	// document and JWKS that failed; nil: no logs.
	Logger *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Provider is the relying party for one OpenID provider. It is safe for
// concurrent use.
type Provider struct {
	cfg    Config
	rt     idp.Runtime  // set by Start
	client *http.Client // follows redirects only as idp.SafeRedirects allows
	// tokenClient calls the token endpoint (code exchange and refresh),
	// which RFC 6749 gives no redirects: it follows none, so the code and
	// the client secret are sent to the token_endpoint discovery named,
	// and nowhere else; and reads each answer whole (wholeAnswers).
	tokenClient *http.Client
	keys        *keySet
	disc        *discovery
	// template is the issuer template of a multi-tenant issuer
	// (Config.Tenants), "" otherwise.
	template string
	refusals logbudget.Budget // back-channel logout refusals
	// userinfoRefusals: userinfo endpoints refusing the access token
	// (mergeUserinfo), keyed by status.
	userinfoRefusals logbudget.Budget
}

var _ idp.Provider = (*Provider)(nil)

// flow is what the flow cookie carries between Begin and Callback. Field
// names are short because the cookie is size-limited.
type flow struct {
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	idp.FlowReturn
	idp.FlowReauth
	RedirectURL string `json:"u"`
}

// New validates cfg and returns a Provider, ready to serve once Start has
// given it the gateway's flow cookies. It makes no network request:
// discovery happens on first use and is retried after failures, so Caddy can
// start while the IdP is down.
func New(cfg Config) (*Provider, error) {
	if err := normalize(&cfg); err != nil {
		return nil, fmt.Errorf("oidc idp %q: %w", cfg.Name, err)
	}
	// Discovery, JWKS and userinfo URLs are held to checkURL; the client
	// holds the redirects they answer with to the same rule, or an https
	// jwks_uri redirected to plain http would let whoever answers that leg
	// supply the signing keys.
	client := idp.SafeRedirects(cfg.HTTPClient)
	algs := make([]jose.SignatureAlgorithm, len(cfg.Algorithms))
	for i, a := range cfg.Algorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	refreshes := &refreshLog{log: cfg.Logger, idp: cfg.Name, now: cfg.Now}
	ks := &keySet{client: client, now: cfg.Now, algs: algs, minRefresh: cfg.JWKSRefreshInterval, log: refreshes}
	if slices.ContainsFunc(cfg.Algorithms, func(a string) bool { return strings.HasPrefix(a, "HS") }) {
		ks.secret = []byte(cfg.ClientSecret)
	}
	p := &Provider{
		cfg:         cfg,
		client:      client,
		tokenClient: wholeAnswers(idp.NoRedirects(cfg.HTTPClient)),
		keys:        ks,
	}
	p.disc = &discovery{issuer: cfg.Issuer, client: client, now: cfg.Now, onUpdate: ks.setURL, log: refreshes}
	if len(cfg.Tenants) > 0 {
		p.template = tenantTemplate(cfg.Issuer)
	}
	return p, nil
}

// Check holds c, as a configuration writes it, to the rules New applies:
// a name, an https issuer without query or fragment, a client ID, openid
// among the scopes, known signature algorithms (never "none"), a client
// secret long enough for the HMAC ones, no protocol parameter among
// AuthParams, no negative duration. It changes nothing and touches no
// network. deferred reports a value that is resolved later (a config
// placeholder, say): the issuer and the client secret are then checked by
// New, once resolved; nil defers nothing.
func (c Config) Check(deferred func(string) bool) error {
	if deferred == nil {
		deferred = func(string) bool { return false }
	}
	if c.Name == "" {
		return errors.New("name is required")
	}
	var missing []string
	if c.Issuer == "" {
		missing = append(missing, "issuer")
	}
	if c.ClientID == "" {
		missing = append(missing, "client_id")
	}
	if len(missing) > 0 {
		return fmt.Errorf("an oidc IdP needs %s", strings.Join(missing, " and "))
	}
	// Without a secret the client is public and token_auth is dropped
	// (oauth2Config): a lost client_secret line would fail every sign-in
	// at the token endpoint (invalid_client), not here.
	if c.TokenAuth != "" && c.ClientSecret == "" {
		return fmt.Errorf("token_auth %s sends the client secret: add client_secret (or drop token_auth for a public client)", c.TokenAuth)
	}
	if err := c.CheckSettings(deferred); err != nil || deferred(c.Issuer) {
		return err
	}
	return c.checkMultiTenant()
}

// CheckSettings is Check without what the configuration as a whole must
// have (a name, an issuer, a client ID): each setting given, held to its
// rule, so that a parser can check a block line by line and report a
// mistake at the line that makes it. An unset issuer is not checked;
// deferred reporting "" defers the client secret's length too (not given
// yet), deferred must not be nil.
func (c Config) CheckSettings(deferred func(string) bool) error {
	if c.Issuer != "" && !deferred(c.Issuer) {
		if err := checkURL(c.Issuer, false); err != nil {
			return fmt.Errorf("issuer: %w", err)
		}
	}
	if err := cmp.Or(c.checkTenants(c.Issuer != "" && !deferred(c.Issuer)), c.checkTenantID(deferred)); err != nil {
		return err
	}
	if c.TrustEmail && (len(c.Tenants) > 0 || MultiTenantIssuer(c.Issuer)) {
		return errors.New("trust_email is refused with a multi-tenant issuer (tenants): any tenant's administrator can give a user any address, which must never link to another's account")
	}
	if c.TokenAuth != "" && !slices.Contains(TokenAuthMethods, c.TokenAuth) {
		return fmt.Errorf("token_auth %q: expected %s", c.TokenAuth, strings.Join(TokenAuthMethods, " or "))
	}
	// An empty scope would reach the request as a stray space.
	if slices.ContainsFunc(c.Scopes, idp.Blank) {
		return errors.New("scopes must not hold an empty or blank scope")
	}
	// Sent and compared as written: a placeholder is never resolved.
	if err := cmp.Or(idp.CheckLiteral("scopes", c.Scopes...), idp.CheckLiteral("require_acr", c.RequireACR...)); err != nil {
		return err
	}
	if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, "openid") {
		return fmt.Errorf(`scopes must include "openid" (scopes %s)`, strings.Join(c.Scopes, " "))
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(knownAlgs, a) {
			return fmt.Errorf("signature algorithm %q is not supported (expected some of: %s)", a, strings.Join(knownAlgs, ", "))
		}
		// RFC 7518 3.2: an HMAC key must be at least as long as the hash.
		if bits, _ := strconv.Atoi(strings.TrimPrefix(a, "HS")); strings.HasPrefix(a, "HS") && !deferred(c.ClientSecret) && len(c.ClientSecret)*8 < bits {
			return fmt.Errorf("signature algorithm %s needs a client secret of at least %d bytes", a, bits/8)
		}
	}
	for k := range c.AuthParams {
		if slices.Contains(reservedParams, k) {
			return fmt.Errorf("auth parameter %q is set by the protocol and cannot be configured", k)
		}
	}
	if _, set := c.AuthParams["acr_values"]; set && len(c.RequireACR) > 0 {
		return errors.New("auth parameter acr_values is set by require_acr")
	}
	if _, set := c.AuthParams["hd"]; set && len(c.HostedDomains) > 0 {
		return errors.New("auth parameter hd is set by hosted_domain")
	}
	for _, d := range c.HostedDomains {
		// The email domain rule allowed_domains and the routes' domain
		// rules follow: a pattern, an address, a URL or a comma list
		// would match no hd and refuse everyone.
		if err := maildomain.Check(d); err != nil {
			return fmt.Errorf("hosted domain (hosted_domain) %w", err)
		}
	}
	for _, v := range c.RequireACR {
		switch {
		case v == "":
			// It would admit a token without acr.
			return errors.New("require_acr values must not be empty")
		case strings.ContainsFunc(v, unicode.IsSpace):
			// acr_values is a space-separated list (OpenID Connect Core
			// 3.1.2.1): the IdP would read two values, or a blank one,
			// and no token's acr could ever equal this one.
			return fmt.Errorf("require_acr value %q must not hold spaces: acr_values separates values with them", v)
		}
	}
	for _, d := range []time.Duration{c.ClockSkew, c.LoginTimeout, c.JWKSRefreshInterval} {
		if d < 0 {
			return errors.New("durations must not be negative")
		}
	}
	if err := idp.CheckDuration("clock_skew", c.ClockSkew); err != nil {
		return err
	}
	if c.ClockSkew > MaxClockSkew {
		return fmt.Errorf("clock_skew %v must be at most %v: an ID token or logout token is accepted for that long past its exp", c.ClockSkew, MaxClockSkew)
	}
	return nil
}

// normalize checks cfg (Check) and fills in the defaults.
func normalize(cfg *Config) error {
	if err := cfg.Check(nil); err != nil {
		return err
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = defaultScopes
	}
	if cfg.OfflineAccess && !slices.Contains(cfg.Scopes, scopeOfflineAccess) {
		cfg.Scopes = append(slices.Clip(cfg.Scopes), scopeOfflineAccess)
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = defaultAlgorithms
	}
	cfg.Scopes = slices.Clone(cfg.Scopes)
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = idp.DefaultClockSkew
	}
	if cfg.LoginTimeout == 0 {
		cfg.LoginTimeout = idp.DefaultLoginTimeout
	}
	if cfg.JWKSRefreshInterval == 0 {
		cfg.JWKSRefreshInterval = defaultJWKSRefresh
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return nil
}

// checkURL accepts https URLs, and plain http ones only on loopback hosts
// (local IdPs in demos and tests): anywhere else an attacker on the path
// could substitute keys or read codes.
// Endpoints (endpoint true) may carry a query, as Azure AD B2C's do; an
// issuer may not.
func checkURL(raw string, endpoint bool) error {
	u, err := idp.CheckURL(raw)
	if err != nil {
		return err
	}
	if (u.RawQuery != "" || u.ForceQuery) && !endpoint {
		return fmt.Errorf("%q: an issuer has no query", raw)
	}
	return nil
}

// Name returns the configured IdP name.
func (p *Provider) Name() string { return p.cfg.Name }

// Protocol returns idp.ProtocolOIDC.
func (p *Provider) Protocol() string { return idp.ProtocolOIDC }

// Start takes the gateway's flow cookies. Discovery stays lazy.
func (p *Provider) Start(_ context.Context, rt idp.Runtime) error {
	if rt.Flows == nil {
		return fmt.Errorf("oidc idp %q: flow cookies are required", p.cfg.Name)
	}
	p.rt = rt
	return nil
}

// Close ends the background refreshes of the discovery document and the
// JWKS, waiting for a running one.
func (p *Provider) Close() error {
	p.disc.bg.close()
	p.keys.bg.close()
	return nil
}

// RefreshHealth is what an operator alerts on while the IdP's discovery
// document or keys cannot be fetched again: when the copies in use were
// fetched. Each is fetched again on use once a day old (discoveryTTL,
// keysMaxAge), keeping the last good copy when that fails, so an old time
// on an IdP people sign in through means refreshes fail (the SAML side's
// MetadataHealth.Loaded). A zero time is none fetched yet.
type RefreshHealth struct {
	DiscoveryLoaded, KeysLoaded time.Time
}

// RefreshHealth reports on the discovery document and keys in use.
func (p *Provider) RefreshHealth() RefreshHealth {
	_, _, keys := p.keys.snapshot()
	return RefreshHealth{DiscoveryLoaded: p.disc.loaded(), KeysLoaded: keys}
}

// Discover fetches the discovery document now. Calling it is optional (Begin
// does it lazily); Caddy may call it at start to warn early that the IdP is
// unreachable.
func (p *Provider) Discover(ctx context.Context) error {
	if _, err := p.disc.get(ctx); err != nil {
		return discoveryFailed(err)
	}
	return nil
}

func (p *Provider) flowID(state string) string {
	return idp.SignInFlowID(idp.ProtocolOIDC, p.cfg.Name, state)
}

// TokenAuthMethods are the values of Config.TokenAuth.
var TokenAuthMethods = []string{"client_secret_basic", "client_secret_post"}

func (p *Provider) oauth2Config(md *metadata, redirectURL string) *oauth2.Config {
	style := oauth2.AuthStyleInHeader // client_secret_basic, the default of RFC 8414
	switch p.cfg.TokenAuth {
	case "client_secret_post":
		style = oauth2.AuthStyleInParams
	case "":
		if len(md.TokenAuthMethods) > 0 && !slices.Contains(md.TokenAuthMethods, "client_secret_basic") &&
			slices.Contains(md.TokenAuthMethods, "client_secret_post") {
			style = oauth2.AuthStyleInParams
		}
	}
	if p.cfg.ClientSecret == "" {
		style = oauth2.AuthStyleInParams // public client: client_id in the body
	}
	return &oauth2.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: style},
		RedirectURL:  redirectURL,
		Scopes:       p.cfg.Scopes,
	}
}

// Begin starts a login: it saves state, nonce and PKCE verifier in a flow
// cookie of their own (so several tabs can log in at once) and redirects the
// browser to the authorization endpoint. The redirect URI is base +
// "callback"; returnTo is handed back by Callback and must already be
// validated as a same-origin path by the caller. A re-authenticating
// sign-in also asks for prompt=login and max_age=0, and its flow cookie
// records when it began, for Callback to hold the ID token's auth_time to.
func (p *Provider) Begin(w http.ResponseWriter, r *http.Request, base string, req idp.SignInRequest) error {
	redirectURL := base + idp.OIDCCallbackEndpoint
	md, err := p.disc.get(r.Context())
	if err != nil {
		return discoveryFailed(err)
	}
	state := rand.Text()
	fl := flow{Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier(), FlowReturn: idp.FlowReturn{ReturnTo: req.ReturnTo},
		FlowReauth: idp.NewFlowReauth(req, p.cfg.Now()), RedirectURL: redirectURL}
	if err := p.rt.Flows.Save(w, r, p.flowID(state), &fl, p.cfg.LoginTimeout, http.SameSiteLaxMode); err != nil {
		return idp.Fail(CodeFlowSave, fmt.Errorf("oidc idp %q: %w", p.cfg.Name, err))
	}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(fl.Nonce), oauth2.S256ChallengeOption(fl.Verifier)}
	for k, v := range p.authParams(req.Reauthenticate) {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	if len(p.cfg.RequireACR) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(p.cfg.RequireACR, " ")))
	}
	if len(p.cfg.HostedDomains) == 1 {
		// As the operator wrote it, less what only this setting's syntax
		// allows (a leading "@", the root's dot): not a domain as an IdP
		// would read it.
		opts = append(opts, oauth2.SetAuthURLParam("hd", maildomain.Bare(p.cfg.HostedDomains[0])))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.oauth2Config(md, redirectURL).AuthCodeURL(state, opts...), http.StatusFound)
	return nil
}

// authParams are the configured AuthParams, and for a re-authenticating
// sign-in prompt=login and max_age=0 (OpenID Connect Core 3.1.2.1: the
// IdP must then authenticate the person again, and put auth_time in the ID
// token). A configured prompt keeps its other values (consent,
// select_account), but not none, which contradicts login.
func (p *Provider) authParams(reauth bool) map[string]string {
	if !reauth {
		return p.cfg.AuthParams
	}
	params := maps.Clone(p.cfg.AuthParams)
	if params == nil {
		params = map[string]string{}
	}
	prompt := []string{"login"}
	for _, v := range strings.Fields(params["prompt"]) {
		if v != "none" && !slices.Contains(prompt, v) {
			prompt = append(prompt, v)
		}
	}
	params["prompt"] = strings.Join(prompt, " ")
	params["max_age"] = "0"
	return params
}

// Callback finishes a login at base + "callback": it takes the flow cookie,
// checks the authorization response, exchanges the code with the PKCE
// verifier, verifies the ID token and, when profile claims are missing,
// merges userinfo. It returns the assertion, whose SingleUse names the state
// for the sign-in transaction to consume, and the returnTo given to Begin.
// Every error is an *idp.LoginError with one of the Code* constants, Bound
// once the flow cookie has been verified.
func (p *Provider) Callback(w http.ResponseWriter, r *http.Request, base string) (*idp.Assertion, string, error) {
	redirectURL := base + idp.OIDCCallbackEndpoint
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		return nil, "", idp.Fail(CodeStateMissing, errors.New("authorization response without state"))
	}
	var fl flow
	if err := p.rt.Flows.Take(w, r, p.flowID(state), &fl); err != nil {
		code := CodeFlowInvalid
		switch {
		case errors.Is(err, idp.ErrFlowMissing):
			code = CodeFlowMissing
		case errors.Is(err, idp.ErrFlowExpired):
			code = CodeFlowExpired
		}
		return nil, "", idp.Fail(code, err)
	}
	// From here on the browser did begin this login: its failures are
	// worth an audit event (idp.LoginError.Bound).
	a, err := p.finish(ctx, q, &fl, redirectURL)
	if err != nil {
		var le *idp.LoginError
		if errors.As(err, &le) {
			le.Bound = true
		}
		return nil, "", err
	}
	// The cookie is cleared, but a copy of it is still valid until it
	// expires: the state, consumed with the sign-in, is what makes the
	// callback single-use.
	a.SingleUse = []idp.SingleUse{{Kind: replayKind, ID: p.cfg.Name + "/" + state,
		Until: p.cfg.Now().Add(p.cfg.LoginTimeout), Code: CodeStateReplayed}}
	return a, fl.ReturnTo, nil
}

// finish is Callback after the flow cookie: the authorization response,
// the code exchange and the ID token.
func (p *Provider) finish(ctx context.Context, q url.Values, fl *flow, redirectURL string) (*idp.Assertion, error) {
	md, err := p.disc.get(ctx)
	if err != nil {
		return nil, discoveryFailed(err)
	}
	// RFC 9207 applies to error responses too: check iss before trusting
	// anything else in the response (mix-up attacks).
	respIss, present := q["iss"]
	if present && p.template != "" {
		// Multi-tenant: the iss of the user's tenant, which the ID
		// token must name too (below).
		tid, ok := "", len(respIss) == 1
		if ok {
			tid, ok = p.tenantOfIssuer(respIss[0])
		}
		if !ok {
			return nil, idp.Fail(CodeIssuerMismatch, fmt.Errorf("authorization response iss %.200q (%d values) is not the issuer template %q filled with a tenant", strings.Join(respIss, " "), len(respIss), p.template))
		}
		if !p.tenantAllowed(tid) {
			return nil, idp.Fail(CodeTenantNotAllowed, fmt.Errorf("authorization response iss: tenant %s is not one the tenants setting admits", tid))
		}
	} else if iss := respIss; present {
		if len(iss) != 1 || iss[0] != p.cfg.Issuer {
			first := ""
			if len(iss) > 0 {
				first = iss[0]
			}
			// The request's text, capped: anyone can send it, and the
			// refusal is logged.
			return nil, idp.Fail(CodeIssuerMismatch, fmt.Errorf("authorization response iss %.200q (%d values), want %q", first, len(iss), p.cfg.Issuer))
		}
	} else if md.IssParameterSupported {
		return nil, idp.Fail(CodeIssuerMissing, errors.New("authorization response lacks iss, which the IdP advertises"))
	}
	if e := q.Get("error"); e != "" {
		return nil, idp.Fail(CodeIdPError, fmt.Errorf("identity provider returned error %.200q: %.200q", e, q.Get("error_description")))
	}
	code := q.Get("code")
	if code == "" {
		return nil, idp.Fail(CodeCodeMissing, errors.New("authorization response has neither code nor error"))
	}
	if redirectURL != fl.RedirectURL {
		return nil, idp.Fail(CodeRedirectMismatch, fmt.Errorf("callback at %q, login began for %q", redirectURL, fl.RedirectURL))
	}

	tok, err := p.oauth2Config(md, redirectURL).Exchange(context.WithValue(ctx, oauth2.HTTPClient, p.tokenClient),
		code, oauth2.VerifierOption(fl.Verifier))
	if err != nil {
		// An outage (a 5xx, 429, no answer) is not a refusal of the code
		// or the client's credentials: the 502 page, trying again helps;
		// nor is a certificate this host does not trust (fetchFailed).
		return nil, fetchFailed(tokenFailure(err), CodeTokenExchange)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return nil, idp.Fail(CodeIDTokenMissing, errors.New("token response has no id_token"))
	}
	claims, sub, err := p.verifyIDToken(ctx, rawID, fl.Nonce, tok.AccessToken, code)
	if err != nil {
		return nil, err
	}
	// The ID token's auth_time, before userinfo is merged: it is what the
	// IdP signed for this sign-in.
	var authTime time.Time
	if t, ok := numericDate(claims["auth_time"]); ok {
		authTime = t
	}
	if err := fl.Check(authTime, p.cfg.ClockSkew); err != nil {
		return nil, err
	}
	if iss, _ := claims["iss"].(string); present && p.template != "" && iss != respIss[0] {
		return nil, idp.Fail(CodeIssuerMismatch, fmt.Errorf("authorization response iss %q, the ID token's %q: another tenant", respIss[0], iss))
	}
	// The ID token's acr, not userinfo's: it is what the IdP signed for
	// this sign-in.
	if acr, _ := claims["acr"].(string); len(p.cfg.RequireACR) > 0 && !slices.Contains(p.cfg.RequireACR, acr) {
		return nil, idp.Fail(CodeACRNotSatisfied, fmt.Errorf("acr %.200q is not one of %q", acr, p.cfg.RequireACR))
	}
	// The ID token's hd, not userinfo's: it is what Google signed.
	if err := p.checkHostedDomain(claims); err != nil {
		return nil, err
	}
	if missing := missingProfileClaims(claims); len(missing) > 0 && md.UserinfoEndpoint != "" {
		if err := p.mergeUserinfo(ctx, md.UserinfoEndpoint, tok.AccessToken, sub, claims, missing); err != nil {
			return nil, err
		}
	}
	// After the merge: email_verified counts from userinfo when the ID
	// token has none and userinfo's email is the one kept (mergeClaims).
	// It speaks of the email claim alone (signin's emailVerified), so
	// without one there is nothing it refuses.
	if v, present := claims["email_verified"]; present && isFalse(v) && !p.cfg.AllowUnverifiedEmail {
		if email := emailClaim(claims); email != "" {
			return nil, idp.Fail(CodeEmailUnverified, fmt.Errorf("the IdP has not verified the email %.200q (email_verified false)", email))
		}
	}
	// The session remembers sid, which back- and front-channel logout
	// name it by.
	sid, _ := claims["sid"].(string)
	ev := claims["email_verified"] // absent or null: the IdP says nothing
	attrs, verified := flatten(claims), isTrue(ev) || p.cfg.TrustEmail && ev == nil
	if p.template != "" {
		// Multi-tenant (Config.Tenants): keys namespaced by the tenant
		// verifyIDToken checked, and no address vouched for.
		tid, _ := claims["tid"].(string)
		sub, verified = tenantKey(tid, sub), false
		p.namespaceKeys(attrs, tid)
	}
	return &idp.Assertion{
		IdP:           p.cfg.Name,
		Protocol:      idp.ProtocolOIDC,
		Subject:       sub,
		Attributes:    attrs,
		EmailVerified: verified,
		Logout:        idp.LogoutInfo{Subject: sub, SessionID: sid},
		Tokens:        &idp.Tokens{IDToken: rawID, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: p.expiry(tok)},
		AuthTime:      authTime,
	}, nil
}

// checkHostedDomain refuses an ID token whose hd is missing or not one
// of HostedDomains (when set): the email's domain alone does not tell a
// Workspace account from a personal one with an address on that domain.
func (p *Provider) checkHostedDomain(claims map[string]any) error {
	if len(p.cfg.HostedDomains) == 0 {
		return nil
	}
	hd, _ := claims["hd"].(string)
	// Compared as allowed_domains compares: "Bücher.example" is the hd
	// "xn--bcher-kva.example", "@example.com" and "example.com." are
	// "example.com".
	if hd != "" && slices.ContainsFunc(p.cfg.HostedDomains, func(d string) bool {
		return maildomain.Canon(maildomain.Bare(d)) == maildomain.Canon(hd)
	}) {
		return nil
	}
	if hd == "" {
		return idp.Fail(CodeDomainNotAllowed, errors.New("the ID token has no hd (hosted domain): not an account of a hosted_domain"))
	}
	return idp.Fail(CodeDomainNotAllowed, fmt.Errorf("the ID token's hd %.200q is not one of hosted_domain %q", hd, p.cfg.HostedDomains))
}

// tokenFailure describes a failed token request without the answer's
// body (not re.Error(), which quotes it, and it might echo credentials):
// the token endpoint's URL and status, the OAuth error (RFC 6749 5.2) when
// the IdP sent one, and the Content-Type of an answer that is not JSON,
// as an egress proxy's block page is (403, or even 200, text/html), which
// would otherwise read as the IdP refusing the client secret. The result
// unwraps to err, for idpUnavailable.
func tokenFailure(err error) error {
	if te := (*tokenError)(nil); errors.As(err, &te) && te.err == nil {
		return te // a success that was no token answer (wholeAnswers)
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return err
	}
	endpoint := "(unknown URL)"
	if req := re.Response.Request; req != nil && req.URL != nil {
		endpoint = req.URL.Redacted()
	}
	if ct := re.Response.Header.Get("Content-Type"); re.ErrorCode == "" && ct != "" && !jsonOrForm(ct) {
		return &tokenError{msg: notJSON(endpoint, re.Response.Status, ct), err: err}
	}
	msg := "POST " + endpoint + ": token endpoint answered " + re.Response.Status
	if re.ErrorCode != "" {
		msg += fmt.Sprintf(": %.100q", re.ErrorCode)
	}
	if re.ErrorDescription != "" {
		msg += fmt.Sprintf(" %.200q", re.ErrorDescription)
	}
	return &tokenError{msg: msg, err: err}
}

// mergeUserinfo merges the userinfo claims into claims, the ID token's
// (mergeClaims), when userinfo answers; it is asked only for profile
// claims the ID token lacks (missing, from missingProfileClaims), none of
// which sign-in needs to trust who the person is.
//
// A 401 or 403 is the access token refused for good, not this sign-in's
// fault: Entra ID's userinfo (Microsoft Graph) refuses an access token
// issued for the application's own API (an api:// scope among scopes),
// and failing would keep every user whose ID token lacks one of those
// claims out for as long as the configuration stands. The sign-in goes on
// with the ID token's claims, and a WARN (one a minute per IdP and
// status) says so. An IdP that fails rather than refuses (5xx, 429, no
// answer) is CodeIdPUnavailable; anything else, an answer this package
// cannot read or one about another subject, fails the sign-in.
func (p *Provider) mergeUserinfo(ctx context.Context, endpoint, accessToken, sub string, claims map[string]any, missing []string) error {
	wantIss := p.cfg.Issuer
	if p.template != "" {
		wantIss, _ = claims["iss"].(string) // checked against its tid
	}
	ui, err := p.userinfo(ctx, endpoint, accessToken, wantIss)
	var se *statusError
	switch {
	case errors.As(err, &se) && (se.code == http.StatusUnauthorized || se.code == http.StatusForbidden):
		p.userinfoRefusals.Warn(p.cfg.Logger, se.status, p.cfg.Now(), "userinfo refused the access token: signing in with the ID token's claims alone, "+
			"so the claims it lacks stay empty; the access token is not one the userinfo endpoint accepts "+
			"(with Entra ID, an api:// scope among scopes makes it a token for that API): have the IdP put the claims in the ID token",
			zap.String("idp", p.cfg.Name), zap.String("status", se.status), zap.Strings("missing_claims", missing),
			zap.String("www_authenticate", se.challenge))
		return nil
	case err != nil:
		return fetchFailed(err, CodeUserinfo)
	}
	if s, _ := ui["sub"].(string); s != sub {
		return idp.Fail(CodeUserinfoSubject, errors.New("userinfo sub differs from the ID token's"))
	}
	mergeClaims(claims, ui)
	return nil
}

// emailClaim is the email claim's first non-blank value (as mapping reads
// it, whatever its JSON type), or "".
func emailClaim(claims map[string]any) string {
	if v := claims["email"]; v != nil {
		for _, e := range flattenValue(v) {
			if strings.TrimSpace(e) != "" {
				return e
			}
		}
	}
	return ""
}

// LogoutRequest returns the IdP's end_session_endpoint and the parameters
// of an RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0, 2):
// client_id, id_token_hint when the session kept an ID token, and
// post_logout_redirect_uri; or "" when the IdP has no end_session_endpoint.
// The endpoint keeps any query of its own; the parameters are sent apart
// from it (see Logout).
func (p *Provider) LogoutRequest(ctx context.Context, info idp.LogoutInfo, postLogoutRedirect string) (string, url.Values, error) {
	md, err := p.disc.get(ctx)
	if err != nil {
		return "", nil, discoveryFailed(err)
	}
	if md.EndSessionEndpoint == "" {
		return "", nil, nil
	}
	if _, err := url.Parse(md.EndSessionEndpoint); err != nil {
		return "", nil, fmt.Errorf("oidc idp %q: end_session_endpoint: %w", p.cfg.Name, err)
	}
	v := url.Values{"client_id": {p.cfg.ClientID}}
	if info.IDToken != "" {
		v.Set("id_token_hint", info.IDToken)
	}
	if postLogoutRedirect != "" {
		v.Set("post_logout_redirect_uri", postLogoutRedirect)
	}
	return md.EndSessionEndpoint, v, nil
}

// Logout sends the browser to the IdP's end_session_endpoint, which
// returns it to returnTo on this site (registered there as a post-logout
// redirect URI).
//
// With an ID token to hint, the request is an auto-submitting POST form
// (the OP must accept POST, RP-Initiated Logout 1.0, 2): the hint is a
// signed, unexpired ID token (email, names, groups, sid), and in a
// redirect's query it would land in the access log (which records the
// Location header), the browser's history and Referer headers. Without
// one the query holds only client_id and the post-logout URI, nothing
// secret, and a redirect stays: a top-level GET carries the IdP's
// SameSite=Lax session cookie, which a cross-site POST does not, and the
// IdP then has nothing else to find its session by.
func (p *Provider) Logout(w http.ResponseWriter, r *http.Request, base string, info idp.LogoutInfo, returnTo string) (bool, error) {
	u, err := url.Parse(base)
	if err != nil {
		return false, err
	}
	endpoint, params, err := p.LogoutRequest(r.Context(), info, u.Scheme+"://"+u.Host+returnTo)
	if err != nil || endpoint == "" {
		return false, err
	}
	if params.Has("id_token_hint") {
		fields := make([]idp.FormField, 0, len(params))
		for _, k := range slices.Sorted(maps.Keys(params)) {
			fields = append(fields, idp.FormField{Name: k, Value: params.Get(k)})
		}
		idp.WritePostForm(w, idp.PostForm(endpoint, fields...))
		return true, nil
	}
	to, _ := url.Parse(endpoint) // parsed by LogoutRequest
	q := to.Query()
	for k := range params {
		q.Set(k, params.Get(k))
	}
	to.RawQuery = q.Encode()
	http.Redirect(w, r, to.String(), http.StatusSeeOther)
	return true, nil
}

// LogoutOrigin is the origin of the end_session_endpoint, once discovery
// has found one.
func (p *Provider) LogoutOrigin(ctx context.Context) string {
	md, err := p.disc.get(ctx)
	if err != nil || md.EndSessionEndpoint == "" {
		return ""
	}
	u, err := url.Parse(md.EndSessionEndpoint)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
