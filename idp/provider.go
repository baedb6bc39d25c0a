package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Provider is one configured identity provider as the sso handler drives it,
// whatever its protocol. idp/oidc and idp/saml implement it.
//
// Every request method takes base, the absolute URL under which this IdP's
// endpoints live on the site the request arrived on: origin + path prefix +
// "<protocol>/<name>/" (see docs/architecture.md, "Endpoints"). One Provider
// so serves any number of sites, and the handler never needs to know a
// protocol's endpoint names beyond its callback (CallbackEndpoint).
type Provider interface {
	// Name is the configured name: it appears in endpoint paths and user links.
	Name() string
	// Protocol is ProtocolOIDC or ProtocolSAML; it names the callback
	// endpoint (CallbackEndpoint).
	Protocol() string

	// Begin sends the browser to the IdP to sign in as req asks;
	// req.ReturnTo is handed back by Callback.
	Begin(w http.ResponseWriter, r *http.Request, base string, req SignInRequest) error
	// Callback verifies the IdP's answer at the callback endpoint and returns
	// who signed in and the returnTo saved by Begin. It consumes nothing: the
	// single-use IDs the assertion carries (Assertion.SingleUse) are consumed
	// by the sign-in transaction, together with everything else a sign-in
	// writes. Every error is a *LoginError.
	Callback(w http.ResponseWriter, r *http.Request, base string) (*Assertion, string, error)
	// Logout ends the IdP's session once the local one has ended. It either
	// answers the request (a redirect, or an auto-posting form, to the IdP,
	// which later sends the browser to returnTo) and reports true, or writes
	// nothing and reports false: the IdP offers no logout, or refused to
	// build one (the error says why).
	Logout(w http.ResponseWriter, r *http.Request, base string, info LogoutInfo, returnTo string) (bool, error)
	// LogoutOrigin is the origin (scheme://host) the browser is sent to by
	// Logout, or "" when the IdP has none known yet: the sign-out page must
	// allow its form to lead there (CSP form-action).
	LogoutOrigin(ctx context.Context) string
	// ServeEndpoint serves the protocol's other endpoints under base, those
	// its package's Endpoints lists (SAML: metadata, slo; OIDC:
	// backchannel-logout, frontchannel-logout). It returns ErrNoEndpoint,
	// having written nothing, for a name the protocol does not have; a
	// refused message is a *LoginError (with Logout set for logout
	// messages), also with nothing written, for the caller's page. A message
	// no person sees, from the IdP's server (OIDC back-channel logout), is
	// answered by the provider itself, refusals included.
	ServeEndpoint(w http.ResponseWriter, r *http.Request, base, name string) error

	// Start gives the provider what it needs from the running gateway and
	// begins its background work (SAML metadata refresh). Nothing before
	// Start touches the store, so that validating a configuration has no
	// side effects. Close ends the background work.
	Start(ctx context.Context, rt Runtime) error
	Close() error
}

// The callback endpoints under an IdP's base URL: where the IdP sends the
// browser back with its answer (OIDC's redirect URI, SAML's ACS).
const (
	OIDCCallbackEndpoint = "callback"
	SAMLCallbackEndpoint = "acs"
)

// CallbackEndpoint is protocol's callback endpoint and the one method the
// answer arrives by. It depends on the protocol alone, so the gateway
// knows it for a Provider and for a callback whose IdP it no longer has
// (a reload renamed or removed it) alike.
func CallbackEndpoint(protocol string) (endpoint, method string) {
	switch protocol {
	case ProtocolOIDC:
		return OIDCCallbackEndpoint, http.MethodGet
	case ProtocolSAML:
		return SAMLCallbackEndpoint, http.MethodPost
	}
	return "", ""
}

// Endpoint is one of the endpoints a protocol's Provider.ServeEndpoint
// serves under an IdP's base URL. Each protocol's package lists its own
// (oidc.Endpoints, saml.Endpoints), the one list by which the gateway
// labels their metrics and caddy sso check lists the URLs to register, so
// that an endpoint added to ServeEndpoint and its list is both.
type Endpoint struct {
	// Name is the path under base, and the endpoint's label in the
	// endpoint_duration_seconds metric.
	Name string
	// Field is what the IdP's registration calls the endpoint's URL.
	Field string
}

// SignInRequest is what a sign-in asks of the IdP (Provider.Begin).
type SignInRequest struct {
	// ReturnTo is the same-origin path the sign-in comes back to,
	// validated by the caller.
	ReturnTo string
	// Reauthenticate asks the IdP to authenticate the person again even
	// when it still has a session of its own (OIDC prompt=login and
	// max_age=0, SAML ForceAuthn="true"), for an app about to do
	// something sensitive. The request travels through the browser, which
	// can drop it, and IdPs have been known to ignore it, so the answer is
	// held to it: its authentication time (OIDC auth_time, SAML
	// AuthnInstant) must be known and no earlier than the sign-in began,
	// within the clock skew, else the sign-in is refused with
	// CodeReauthNotFresh (FlowReauth).
	Reauthenticate bool
}

// CodeReauthNotFresh is the reference code of a re-authenticating sign-in
// (SignInRequest.Reauthenticate) whose answer does not show that the
// person authenticated after it began: the IdP signed them in from its
// session regardless, or did not say when they authenticated. Both
// protocols use it.
const CodeReauthNotFresh = "reauth_not_fresh"

// FlowReauth is the part of a sign-in's flow cookie that holds a
// re-authenticating sign-in to its request: when it began, in Unix seconds
// (the precision of OIDC's auth_time), zero for any other sign-in.
// Providers embed it in what their flow cookie carries, next to
// FlowReturn; it adds nothing to an ordinary sign-in's cookie.
type FlowReauth struct {
	Began int64 `json:"t,omitempty"`
}

// NewFlowReauth is the FlowReauth of a sign-in req begun at now.
func NewFlowReauth(req SignInRequest, now time.Time) FlowReauth {
	if !req.Reauthenticate {
		return FlowReauth{}
	}
	return FlowReauth{Began: now.Unix()}
}

// Check refuses, with CodeReauthNotFresh, the answer to a
// re-authenticating sign-in whose authTime (zero when the IdP did not say)
// is unknown or earlier than the sign-in began less skew, the tolerance
// for the IdP's clock. Any other sign-in passes.
func (f FlowReauth) Check(authTime time.Time, skew time.Duration) error {
	if f.Began == 0 {
		return nil
	}
	began := time.Unix(f.Began, 0)
	if authTime.IsZero() {
		return Fail(CodeReauthNotFresh, errors.New("re-authentication asked for, and the IdP did not say when the person authenticated"))
	}
	if authTime.Before(began.Add(-skew)) {
		return Fail(CodeReauthNotFresh, fmt.Errorf("re-authentication asked for at %s, and the IdP says the person last authenticated at %s (skew %v): it signed them in from its session",
			began.UTC().Format(time.RFC3339), authTime.UTC().Format(time.RFC3339), skew))
	}
	return nil
}

// ErrNoEndpoint is ServeEndpoint's answer for an endpoint name the protocol
// does not have.
var ErrNoEndpoint = errors.New("no such endpoint")

// Runtime is what a Provider gets from the running gateway at Start: all of
// it lives in the store, so that every instance sharing a store signs,
// encrypts and remembers alike (docs/cluster.md).
type Runtime struct {
	// Flows binds logins in progress to the browser that began them.
	Flows *FlowCookies
	// Secrets keeps key material the provider generates (a SAML SP key pair).
	Secrets Secrets
	// Sessions ends the local sessions an IdP names in a logout message.
	Sessions SessionEnder
}

// Secrets keeps named secrets in the store.
type Secrets interface {
	// LoadOrStore returns the secret stored under name, or stores the
	// result of generate (called outside any transaction, since key
	// generation is slow) and returns it. When two instances race, the
	// first stored wins and both return it.
	LoadOrStore(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error)
}

// SessionEnder ends local sessions an identity provider names in a logout
// message: every session of idp whose LogoutInfo.Subject is subject and,
// when sessionIDs names any, whose LogoutInfo.SessionID is one of them (a
// SAML LogoutRequest may carry several SessionIndex values; an empty one
// narrows nothing, as if none were given); or, with an empty subject, every
// session whose SessionID is one of sessionIDs. All of them end in one
// transaction, and it returns how many did.
//
// once, when not nil, makes the message single-use in that same
// transaction (an OIDC logout token's jti, a SAML LogoutRequest ID): a
// message seen before ends nothing and is a *LoginError with once.Code and
// Logout set, and a message whose sessions could not be ended is not used
// up, so the IdP's retry still ends them.
type SessionEnder interface {
	EndSessions(ctx context.Context, idp, subject string, sessionIDs []string, once *SingleUse) (int, error)
}
