package oidc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/caddy-sso/caddy-sso/idp"
)

const (
	// discoveryRetry spaces out attempts while the IdP is down, so that a
	// burst of visitors does not become a burst of requests to it.
	discoveryRetry = 10 * time.Second
	// discoveryTTL is how long a discovery document is used before it is
	// fetched again; the last good copy is kept when that fails.
	discoveryTTL = 24 * time.Hour
	// maxBody caps every response read from the IdP.
	maxBody = 1 << 20
)

// metadata is the part of the discovery document this package uses.
type metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	UserinfoEndpoint      string   `json:"userinfo_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	IDTokenAlgs           []string `json:"id_token_signing_alg_values_supported"`
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	// IssParameterSupported (RFC 9207): when true, every authorization
	// response must carry iss.
	IssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
	// The logout channels the IdP says it offers (OpenID Connect
	// Back-Channel and Front-Channel Logout 1.0); `caddy sso check` only
	// reports them.
	BackChannelLogout  bool `json:"backchannel_logout_supported"`
	FrontChannelLogout bool `json:"frontchannel_logout_supported"`
}

// discovery fetches and caches the discovery document lazily.
type discovery struct {
	issuer   string
	client   *http.Client
	now      func() time.Time
	onUpdate func(jwksURI string)
	log      *refreshLog // the background refreshes that failed

	fetchMu sync.Mutex // one fetch at a time; others wait for its result
	bg      background // the refresh of a document past discoveryTTL

	mu      sync.Mutex // guards the fields below
	md      *metadata
	fetched time.Time
	lastErr error
	retryAt time.Time
}

// get returns the discovery document. Only a caller that finds no copy at
// all waits for a fetch. A copy older than discoveryTTL is still served at
// once, while refreshLater fetches it again in the background: a sign-in
// start, a callback or a token refresh must not wait up to the client's
// timeout for an IdP that hangs, with a good document in hand (the SAML
// side keeps its last good metadata the same way). A failed fetch is not
// tried again for discoveryRetry, with or without a copy.
func (d *discovery) get(ctx context.Context) (*metadata, error) {
	md, err, done := d.cached()
	if done {
		return md, err
	}
	if md != nil {
		d.refreshLater()
		return md, nil
	}
	d.fetchMu.Lock()
	defer d.fetchMu.Unlock()
	if md, err, done := d.cached(); done || md != nil { // another caller fetched meanwhile
		return md, err
	}
	// The fetch outlives a cancelled request: its result serves everyone
	// waiting, and the client's timeout still bounds it.
	return d.fetchLocked(context.WithoutCancel(ctx))
}

// refreshLater fetches the document again in the background, one fetch at
// a time (d.bg), unless another caller's fetch made it fresh meanwhile. A
// failure is recorded for the next callers, whom the copy they have still
// serves, and logged: nothing else would show it.
func (d *discovery) refreshLater() {
	d.bg.run(func(ctx context.Context) {
		d.fetchMu.Lock()
		defer d.fetchMu.Unlock()
		if _, _, done := d.cached(); !done {
			md, err := d.fetch(ctx)
			d.record(md, err) //nolint:errcheck // err is logged here, and the last good copy kept
			if err != nil {
				d.log.failed(ctx, "oidc discovery refresh failed; keeping the last good copy", err)
			}
		}
	})
}

// fetchLocked fetches the document and records the outcome (record). The
// caller holds fetchMu.
func (d *discovery) fetchLocked(ctx context.Context) (*metadata, error) {
	return d.record(d.fetch(ctx))
}

// record records the outcome of a fetch: the new copy, or the failure and
// when to try again (keeping the last good copy, which is returned).
func (d *discovery) record(md *metadata, err error) (*metadata, error) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.lastErr, d.retryAt = err, now.Add(discoveryRetry)
		if d.md != nil {
			return d.md, nil
		}
		return nil, err
	}
	d.md, d.fetched, d.lastErr, d.retryAt = md, now, nil, time.Time{}
	d.onUpdate(md.JWKSURI)
	return md, nil
}

// cached reports done when get need not fetch: a fresh document, or a
// recent failure (with the stale document if there is one). Otherwise it
// returns the stale document, if any, for get to serve while it refreshes.
func (d *discovery) cached() (*metadata, error, bool) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.md != nil && now.Sub(d.fetched) < discoveryTTL {
		return d.md, nil, true
	}
	if now.Before(d.retryAt) {
		if d.md != nil {
			return d.md, nil, true
		}
		return nil, d.lastErr, true
	}
	return d.md, nil, false
}

// loaded is when the document in use was fetched (zero: none yet).
func (d *discovery) loaded() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fetched
}

func (d *discovery) fetch(ctx context.Context) (*metadata, error) {
	md, err := fetchMetadata(ctx, d.client, d.issuer)
	if err != nil {
		return nil, err
	}
	for _, check := range []func() error{
		func() error { return md.checkIssuer(d.issuer) },
		func() error { return md.checkEndpoints(d.issuer) },
		md.checkPKCE,
	} {
		if err := check(); err != nil {
			return nil, &misconfiguredError{fmt.Errorf("discovery: %w", err)}
		}
	}
	return md, nil
}

// misconfiguredError is a discovery document that contradicts the
// configuration (another issuer, no PKCE S256, a missing or plain-http
// endpoint): fetching it again does not help until an administrator acts.
type misconfiguredError struct{ err error }

func (e *misconfiguredError) Error() string { return e.err.Error() }
func (e *misconfiguredError) Unwrap() error { return e.err }

// discoveryFailed is the sign-in error of a discovery that failed:
// idp.CodeMisconfigured for a document sign-in refuses, CodeIdPUnavailable
// for one it could not fetch or read.
func discoveryFailed(err error) error {
	var m *misconfiguredError
	if errors.As(err, &m) {
		return idp.Fail(idp.CodeMisconfigured, err)
	}
	return fetchFailed(err, CodeIdPUnavailable)
}

// fetchFailed is the sign-in error of a request to the IdP that failed:
// idp.CodeMisconfigured when its TLS certificate is not trusted here
// (idp.UntrustedCertificate, worded with the fix), CodeIdPUnavailable for
// an outage (idpUnavailable), else code.
func fetchFailed(err error, code string) error {
	if u := idp.UntrustedCertificate(err); u != nil {
		return idp.Fail(idp.CodeMisconfigured, u)
	}
	if idpUnavailable(err) {
		code = CodeIdPUnavailable
	}
	return idp.Fail(code, err)
}

// wellKnown is where an issuer's discovery document lives.
func wellKnown(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

func fetchMetadata(ctx context.Context, client *http.Client, issuer string) (*metadata, error) {
	var md metadata
	if err := getJSON(ctx, client, wellKnown(issuer), &md); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	return &md, nil
}

// checkIssuer: the document must name the issuer it was fetched for
// (OpenID Connect Discovery 4.3), or tokens it vouches for would be
// checked against the wrong issuer.
//
// Entra ID's multi-tenant endpoints (.../common/v2.0, .../organizations/v2.0)
// name the issuer ".../{tenantid}/v2.0", a template each token fills with
// the user's tenant: accepted for those endpoints alone (MultiTenantIssuer,
// which Config.Tenants is required for), on their own origin, and then
// each token is held to the template filled with its tid (tokenTenant).
func (md *metadata) checkIssuer(issuer string) error {
	if MultiTenantIssuer(issuer) {
		if want := tenantTemplate(issuer); md.Issuer != want {
			return fmt.Errorf("document is for issuer %q, want the multi-tenant issuer template %q", md.Issuer, want)
		}
		return nil
	}
	if md.Issuer == issuer {
		return nil
	}
	if strings.Contains(md.Issuer, tenantPlaceholder) {
		return fmt.Errorf("document is for issuer %q, a multi-tenant Microsoft Entra ID template: "+
			"set issuer to https://login.microsoftonline.com/<tenant-id>/v2.0 (one tenant), or to "+
			"https://login.microsoftonline.com/organizations/v2.0 (or /common/v2.0) with tenants", md.Issuer)
	}
	return fmt.Errorf("document is for issuer %q, want %q", md.Issuer, issuer)
}

// checkEndpoints: the endpoints sign-in uses are present, and every
// endpoint is one checkEndpointURL accepts.
func (md *metadata) checkEndpoints(issuer string) error {
	for _, e := range []struct{ name, url string }{
		{"authorization_endpoint", md.AuthorizationEndpoint},
		{"token_endpoint", md.TokenEndpoint},
		{"jwks_uri", md.JWKSURI},
		{"userinfo_endpoint", md.UserinfoEndpoint},
		{"end_session_endpoint", md.EndSessionEndpoint},
	} {
		if e.url == "" && e.name != "userinfo_endpoint" && e.name != "end_session_endpoint" {
			return fmt.Errorf("%s missing", e.name)
		}
		if e.url != "" {
			if err := checkEndpointURL(e.url, issuer); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
		}
	}
	return nil
}

// checkEndpointURL holds an endpoint the discovery document names to the
// URL rule of checkURL, and allows plain http only as idp.PlainHTTPFrom
// the issuer does, the rule idp.SafeRedirects keeps for redirects: a remote https IdP, or whoever answers for it, must not name
// the gateway's own loopback (Caddy's admin API on :2019, say) as its
// token endpoint, which would be sent the code and the client secret.
func checkEndpointURL(raw, issuer string) error {
	if err := checkURL(raw, true); err != nil {
		return err
	}
	u, _ := neturl.Parse(raw) // checkURL parsed it
	if iss, err := neturl.Parse(issuer); u.Scheme == "http" && (err != nil || !idp.PlainHTTPFrom(iss)) {
		return fmt.Errorf("%q is plain http, and the issuer is not plain http on loopback", raw)
	}
	return nil
}

// checkPKCE: PKCE is always sent; an IdP that announces methods without
// S256 would ignore it, leaving codes unprotected.
func (md *metadata) checkPKCE() error {
	if len(md.CodeChallengeMethods) > 0 && !slices.Contains(md.CodeChallengeMethods, "S256") {
		return fmt.Errorf("IdP does not support PKCE S256 (supports %q)", md.CodeChallengeMethods)
	}
	return nil
}

// getJSON GETs url and decodes a JSON body of at most maxBody bytes.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	// The content type is not checked: IdPs label JWKS and discovery
	// documents inconsistently, and decoding is the real test.
	body, _, err := get(ctx, client, url, "")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decoding: %w", url, err)
	}
	return nil
}

// utf8BOM is the byte order mark get skips.
const utf8BOM = "\xef\xbb\xbf"

// statusError is an answer other than 200 OK. Its body is not kept: it
// might echo credentials.
type statusError struct {
	url, status string
	code        int
	// challenge is the WWW-Authenticate header, capped: why a bearer
	// token was refused (RFC 6750 3).
	challenge string
}

func (e *statusError) Error() string { return fmt.Sprintf("GET %s: %s", e.url, e.status) }

// idpUnavailable reports an error that is the IdP, or the way to it,
// failing rather than refusing: no whole answer (no connection, a
// timeout, a body cut short), or an answer of 429 Too Many Requests or a
// 5xx, which say to try again later. Such a sign-in gets
// CodeIdPUnavailable, the "Sign-in is unavailable" page that says trying
// again may help (docs/architecture.md). A redirect the client refused is
// not one: it is how the IdP is set up.
func idpUnavailable(err error) bool {
	var se *statusError
	var re *oauth2.RetrieveError
	var ue *neturl.Error
	switch {
	case errors.As(err, &se):
		return se.code == http.StatusTooManyRequests || se.code >= 500
	case errors.As(err, &re) && re.Response != nil:
		return re.Response.StatusCode == http.StatusTooManyRequests || re.Response.StatusCode >= 500
	case errors.As(err, &ue):
		return !errors.Is(err, idp.ErrRedirectRefused) && !errors.Is(err, errRedirect)
	}
	return false
}

// errRedirect marks a redirect that get's client refused to follow
// (idp.SafeRedirects), so that idpUnavailable does not take it for a
// transport failure.
var errRedirect = errors.New("redirect refused")

// get fetches url (with a bearer token when given) and returns the body and
// its content type. Bodies of failed requests are not reported: they might
// echo credentials.
//
// A leading UTF-8 byte order mark is skipped: some servers (IIS-hosted
// ones, for example) save documents with one, which JSON forbids (RFC 8259
// 8.1) but allows a parser to ignore, and encoding/json does not. Here it
// is skipped for every reader alike: discovery, JWKS and userinfo.
func get(ctx context.Context, client *http.Client, url, bearer string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		if resp != nil { // only a refused redirect comes with a response
			return nil, "", fmt.Errorf("%w: %w", errRedirect, err)
		}
		return nil, "", err // *url.Error already names the method and URL
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		// A *url.Error, as a failed connection is: the answer was cut short.
		return nil, "", &neturl.Error{Op: "GET", URL: url, Err: fmt.Errorf("reading: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		ch := resp.Header.Get("WWW-Authenticate")
		return nil, "", &statusError{url: url, status: resp.Status, code: resp.StatusCode, challenge: ch[:min(len(ch), 300)]}
	}
	if len(body) > maxBody {
		return nil, "", errors.New("GET " + url + ": response larger than 1 MiB")
	}
	return bytes.TrimPrefix(body, []byte(utf8BOM)), resp.Header.Get("Content-Type"), nil
}

// wholeAnswers sets the transport of c (changed in place: pass a copy, as
// idp.NoRedirects returns) to one that reads each answer's body before
// Client.Do returns, for the token endpoint's client.
// golang.org/x/oauth2 reads the body of a token answer itself and reports
// a failed read as text alone, its type lost: an answer cut short (a reset,
// the client's timeout while reading) would be token_exchange_failed, a
// refusal ("check the client secret"), where it is an outage. Read here,
// the failure comes out of Client.Do as a *url.Error, which idpUnavailable
// takes for one (docs/architecture.md, "misconfigured vs unreachable
// IdPs"). c's Timeout and CheckRedirect are the Client's and stay: the
// timeout covers this read too (it cancels the request's context).
func wholeAnswers(c *http.Client) *http.Client {
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = wholeBody{next}
	return c
}

// wholeBody is the transport of wholeAnswers.
type wholeBody struct{ next http.RoundTripper }

func (t wholeBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	// oauth2 reads at most 1 MiB (maxBody) of a token answer and ignores
	// the rest: an answer longer than that is handed on with its rest
	// unread, as oauth2 met it before, so the cap makes no new failure.
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("reading the answer (%s): %w", resp.Status, err)
	}
	// A success that is no token answer (an egress proxy's or captive
	// portal's HTML page) is named here, where its Content-Type is known:
	// oauth2 would report only that it "cannot parse json". An answer
	// oauth2 can read (JSON whatever its label, a form) passes.
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode/100 == 2 && len(buf) < maxBody &&
		!jsonOrForm(ct) && !json.Valid(buf) {
		_ = resp.Body.Close()
		return nil, &tokenError{msg: notJSON(req.URL.Redacted(), resp.Status, ct)}
	}
	rest := resp.Body
	if len(buf) < maxBody {
		_ = rest.Close() // read to its end: the connection can be reused
		resp.Body = io.NopCloser(bytes.NewReader(buf))
		return resp, nil
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), rest), rest}
	return resp, nil
}

// tokenError is a failed token request described without the answer's
// body, which might echo credentials (tokenFailure); it unwraps to the
// error it describes, so that idpUnavailable still classes that.
type tokenError struct {
	msg string
	err error
}

func (e *tokenError) Error() string { return e.msg }
func (e *tokenError) Unwrap() error { return e.err }

// notJSON describes a token endpoint's answer of another Content-Type
// than JSON: a proxy's or firewall's page, not the IdP refusing the client.
func notJSON(url, status, contentType string) string {
	if contentType == "" {
		contentType = "no Content-Type"
	}
	return fmt.Sprintf("POST %s: the token endpoint answered %s with %.100s, not JSON: a proxy or firewall between this host and the IdP?",
		url, status, contentType)
}

// jsonOrForm reports a Content-Type whose answer oauth2 reads: JSON
// (application/json, or any +json type), or a form (application/x-www-
// form-urlencoded, or text/plain, as GitHub answers).
func jsonOrForm(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		mt == "application/x-www-form-urlencoded" || mt == "text/plain"
}
