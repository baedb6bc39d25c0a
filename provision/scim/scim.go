// Package scim serves SCIM 2.0 (RFC 7643, RFC 7644) provisioning for one
// identity provider configuration, over the same store JIT provisioning
// writes (docs/scim.md): /Users, /Groups, /ServiceProviderConfig,
// /ResourceTypes and /Schemas under a base path, application/scim+json,
// a bearer token per IdP (two while it is rotated) compared in constant
// time, errors in SCIM form.
//
// It is a plain http.Handler with no Caddy import; caddymodule wraps it as
// http.handlers.sso_scim. New builds the handler of one IdP; NewMux serves
// several from one site, choosing by token.
//
// What it accepts is what Microsoft Entra ID and Okta send, which is not
// always RFC 7644: "Replace" and "Add" in any case, "True"/"False" strings
// for booleans, path-less PATCH values whose keys are paths
// ("name.givenName", "urn:…:enterprise:2.0:User:department"), Okta's
// {"op":"replace","value":{"active":false}}, a value-filter path such as
// emails[type eq "work"].value on a user who has no such email (it creates
// one), Entra's legacy member removal by value list, and filters of the
// form emails[type eq "work"].value eq "…".
//
// Scope: a handler sees the users and groups whose IdP is its own (the
// users its SCIM client created, and the users JIT created through that
// IdP, which carry externalId = subject so that the IdP's matching adopts
// them). userName and email are unique across the store, so a value
// held by another IdP's user is a 409 here too, whose detail says that
// another identity provider holds it (the log says which). A create whose
// externalId a JIT or admin user of this IdP holds adopts that user.
//
// Filters are answered from indexes only: userName, externalId, id and
// emails.value with eq (and for groups displayName, externalId, id and
// members.value), combined with "and" (any indexed side narrows) or "or"
// (both sides indexed); the rest of the filter is checked on the few
// candidates. Any other filter is refused with 400 invalidFilter rather
// than answered by a scan that a million users would make slow. Without a
// filter, listing pages through an index in ID order. meta.created and
// meta.lastModified compare as instants.
//
// A resource's meta.version is its ETag (RFC 7644 3.14): If-Match on a
// PUT, PATCH or DELETE is checked in the write transaction (412), and
// If-None-Match on a GET may answer 304.
package scim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/earlydata"
	"github.com/caddy-sso/caddy-sso/internal/logbudget"
	"github.com/caddy-sso/caddy-sso/internal/urlpath"
	"github.com/caddy-sso/caddy-sso/store"
)

// Defaults for zero Config fields.
const (
	DefaultBasePath     = "/scim/v2"
	DefaultMaxBodyBytes = 1 << 20
	// MaxBodyBytesLimit is the largest MaxBodyBytes: SCIM bodies are read
	// whole into memory, and no SCIM request of one resource comes near it.
	MaxBodyBytesLimit = 1 << 30
	// MinTokenLength is the shortest bearer token New accepts. Entra and
	// Okta store whatever the admin pastes; a short token is guessable,
	// and the token is all that stands between the internet and
	// provisioning users into the gateway.
	MinTokenLength = 16
	// MaxResults caps count on list requests (ServiceProviderConfig
	// filter.maxResults); DefaultCount applies when count is absent.
	MaxResults   = 1000
	DefaultCount = 100
)

// Config configures the SCIM endpoint of one IdP configuration.
type Config struct {
	// IdP is the name of the IdP configuration (the `idp <name>` block)
	// whose users this endpoint provisions.
	IdP string
	// Token is the bearer token the IdP's provisioning client presents;
	// at least MinTokenLength bytes.
	Token string
	// NextToken, when set, is accepted as well: the token an IdP is being
	// moved to, so that a rotation has no gap in which the IdP gets 401s
	// (Entra quarantines a provisioning job that keeps failing). The same
	// rules as Token's.
	NextToken string
	// Accounts is the store the users and groups live in, with the
	// operations SCIM shares with the admin API (deactivation, activation,
	// deletion and its tombstones), which also tell the session cache what
	// changed. Its SCIMManaged must count IdP as managed: a user SCIM
	// deletes must stay out of JIT (see package account).
	Accounts *account.Service
	Logger   *zap.Logger      // nil: no logs
	Now      func() time.Time // nil: time.Now
	// BasePath is where the endpoint is mounted, default DefaultBasePath
	// (see CheckBasePath, NormalBasePath), matched as Caddy's path
	// matcher does (urlpath.Under: any letter case, merged slashes);
	// requests outside it get a SCIM 404. Use "/" when the route strips
	// the prefix (handle_path) and set BaseURL for the links.
	BasePath string
	// BaseURL, when set, is the absolute URL of BasePath used in Location
	// headers and meta.location (for a site behind a proxy that rewrites
	// the host). Default: Origin's, else the request's scheme and Host.
	BaseURL string
	// Origin, when set and BaseURL is not, is the scheme and host
	// ("https://scim.example.com") the client reached the site at, as
	// the server decides it: caddymodule believes X-Forwarded-Proto and
	// -Host from Caddy's trusted proxies, as the sso handler does, so that
	// behind a TLS-terminating balancer Location is not
	// http://<internal host>.
	Origin func(*http.Request) string
	// MaxBodyBytes caps request bodies; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Handler serves SCIM for one IdP configuration. It is safe for
// concurrent use and holds no per-request state.
type Handler struct {
	cfg    Config
	store  store.Store
	acc    *account.Service
	tokens [][sha256.Size]byte // Token's and NextToken's digests
	users  *resourceType
	groups *resourceType
	log    *zap.Logger // with the IdP's name
	root   *zap.Logger // without it, for NewMux's refusals
	// refusals keeps requests without the token, which anyone can send,
	// to one WARN line a minute (NewMux's use the first handler's).
	refusals logbudget.Budget
}

// New validates cfg and returns the handler.
func New(cfg Config) (*Handler, error) {
	if cfg.IdP == "" {
		return nil, errors.New("scim: IdP name is required")
	}
	tokens := []string{cfg.Token}
	if cfg.NextToken != "" {
		if cfg.NextToken == cfg.Token {
			return nil, fmt.Errorf("scim: IdP %s: its two bearer tokens are the same", cfg.IdP)
		}
		tokens = append(tokens, cfg.NextToken)
	}
	for _, tok := range tokens {
		if len(tok) < MinTokenLength {
			return nil, fmt.Errorf("scim: bearer token for IdP %s must be at least %d characters", cfg.IdP, MinTokenLength)
		}
		if strings.TrimSpace(tok) != tok {
			// The presented token is trimmed (bearerDigest) and an HTTP
			// header cannot end in white space, so no request could ever
			// match this one: a CR left by a CRLF env file, or a quoted
			// trailing space.
			return nil, fmt.Errorf("scim: IdP %s: the bearer token starts or ends with white space (a CR from a file with CRLF line ends?); remove it", cfg.IdP)
		}
	}
	if cfg.Accounts == nil || cfg.Accounts.Store == nil {
		return nil, fmt.Errorf("scim: IdP %s: the account service and its store are required", cfg.IdP)
	}
	if cfg.Accounts.SCIMManaged != nil && !cfg.Accounts.SCIMManaged(cfg.IdP) {
		return nil, fmt.Errorf("scim: IdP %s is not marked as managed by SCIM, so its deleted users would come back through JIT", cfg.IdP)
	}
	if err := CheckBasePath(cfg.BasePath); err != nil {
		return nil, fmt.Errorf("scim: IdP %s: %w", cfg.IdP, err)
	}
	// Without a trailing /, so that the root is "" and links are the base
	// URL plus "/Users/…".
	cfg.BasePath = strings.TrimSuffix(NormalBasePath(cfg.BasePath), "/")
	if cfg.BaseURL != "" {
		if err := checkBaseURL(cfg.BaseURL); err != nil {
			return nil, fmt.Errorf("scim: IdP %s: base URL %w", cfg.IdP, err)
		}
		cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	h := &Handler{
		cfg:   cfg,
		store: cfg.Accounts.Store,
		acc:   cfg.Accounts,
		users: &resourceType{Name: "User", Endpoint: "/Users", Core: userSchema(),
			Extensions: []*schema{enterpriseUserSchema()}},
		groups: &resourceType{Name: "Group", Endpoint: "/Groups", Core: groupSchema()},
		log:    log.With(zap.String("idp", cfg.IdP)),
		root:   log,
	}
	for _, tok := range tokens {
		h.tokens = append(h.tokens, sha256.Sum256([]byte(tok)))
	}
	h.cfg.Token, h.cfg.NextToken = "", "" // only the digests are kept
	return h, nil
}

// accepts returns which of h's tokens sum is the digest of: 1 for the
// first the configuration lists (Config.Token), 2 for the second
// (NextToken), 0 for none. It compares with each in constant time,
// without stopping at a match; the tokens differ (New), so one matches at
// most.
func (h *Handler) accepts(sum *[sha256.Size]byte) int {
	match := 0
	for i := range h.tokens {
		match = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(sum[:], h.tokens[i][:]), i+1, match)
	}
	return match
}

// IdP returns the name of the IdP configuration the handler serves.
func (h *Handler) IdP() string { return h.cfg.IdP }

// ServeHTTP authenticates the request, then serves it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handle(w, r, nil) }

// handle is ServeHTTP telling obs, when not nil, what it answered.
func (h *Handler) handle(w http.ResponseWriter, r *http.Request, obs Observer) {
	sum, ok := bearerDigest(r)
	token := h.accepts(&sum)
	if token == 0 || !ok {
		h.unauthorized(h.log, w, r, ok, obs)
		return
	}
	h.admitted(w, r, token, obs)
}

// Outcome is what became of one SCIM request, as an Observer learns it.
// Only the handler knows who a request came from: the IdP whose token
// admitted it, and which of that IdP's tokens, so that an operator can
// tell which IdP's client is failing on a site that serves several, and,
// while a token is rotated, when the IdP has stopped presenting the old
// one (docs/scim.md).
type Outcome struct {
	// IdP is the IdP whose token admitted the request, "" when no token
	// did (401).
	IdP string
	// Token is which of the IdP's tokens the request presented, by its
	// place in the configuration (never derived from the secret): 1 for
	// the first line of the IdP (Config.Token), 2 for the second
	// (NextToken); 0 when refused.
	Token int
	// Status is the status code answered.
	Status int
}

// Observer is told of each request a handler answered (Handler.Observed,
// Mux.Observed): metrics count them.
type Observer func(*http.Request, Outcome)

// Observed returns h telling obs of each request it answers.
func (h *Handler) Observed(obs Observer) http.Handler { return observed{h.handle, obs} }

// observed is a Handler's or a Mux's handle, with its Observer.
type observed struct {
	handle func(http.ResponseWriter, *http.Request, Observer)
	obs    Observer
}

func (o observed) ServeHTTP(w http.ResponseWriter, r *http.Request) { o.handle(w, r, o.obs) }

// admitted serves r, which presented h's token number token, and tells
// obs, when not nil, what it answered.
func (h *Handler) admitted(w http.ResponseWriter, r *http.Request, token int, obs Observer) {
	if obs == nil {
		h.serve(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	h.serve(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	obs(r, Outcome{IdP: h.cfg.IdP, Token: token, Status: rec.status})
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first status code, the one the client receives,
// and passes it on.
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// bearerDigest returns the SHA-256 of the request's bearer token. Tokens
// are compared by digest so that the comparison takes the same time
// whatever the presented token's length.
func bearerDigest(r *http.Request) ([sha256.Size]byte, bool) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256([]byte(tok)), true
}

// unauthorized refuses r, logging it to log within h's budget (a Mux
// logs without an IdP's name: the request matched none), and tells obs,
// when not nil.
func (h *Handler) unauthorized(log *zap.Logger, w http.ResponseWriter, r *http.Request, presented bool, obs Observer) {
	// The token itself is never logged, not even in part. Method, path
	// and User-Agent are whatever an unauthenticated client sent (Go's
	// server takes a path of up to the 1 MB header limit), so they are
	// capped (clientText): enough to recognize the request, not a line as
	// large as the client likes. The User-Agent is what tells the IdPs'
	// clients apart when the token matched none (Entra's
	// "Microsoft.Identity.Provisioning", Okta's "Okta SCIM Client …").
	h.refusals.Warn(log, "unauthorized", h.cfg.Now(), "scim request refused: missing or wrong bearer token",
		zap.Bool("token_presented", presented), zap.String("remote", r.RemoteAddr),
		zap.String("method", clientText(r.Method, 20)), zap.String("path", clientText(r.URL.Path, 200)),
		zap.String("user_agent", clientText(r.UserAgent(), 100)))
	w.Header().Set("WWW-Authenticate", `Bearer realm="SCIM"`)
	writeError(w, &Error{Status: http.StatusUnauthorized, Detail: "a valid bearer token is required"})
	if obs != nil {
		obs(r, Outcome{Status: http.StatusUnauthorized})
	}
}

// clientText is text a client sent, as a log line quotes it: at most n
// bytes, cut at a rune boundary, without control characters (C0, DEL,
// C1, bidi controls), which a terminal showing the log would obey, nor
// bytes that are not UTF-8.
func clientText(s string, n int) string {
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, s)
}

// Mux serves the SCIM endpoints of several IdPs from one site, choosing
// the handler by bearer token: each IdP's token provisions into that IdP
// only.
type Mux struct{ handlers []*Handler }

// NewMux combines handlers with distinct IdPs and tokens.
func NewMux(handlers ...*Handler) (*Mux, error) {
	if len(handlers) == 0 {
		return nil, errors.New("scim: no IdP to serve")
	}
	for i, a := range handlers {
		for _, b := range handlers[:i] {
			if a.cfg.IdP == b.cfg.IdP {
				return nil, fmt.Errorf("scim: IdP %s configured twice", a.cfg.IdP)
			}
			for _, ta := range a.tokens {
				if slices.Contains(b.tokens, ta) {
					return nil, fmt.Errorf("scim: IdPs %s and %s share a bearer token; each needs its own", b.cfg.IdP, a.cfg.IdP)
				}
			}
		}
	}
	return &Mux{handlers: handlers}, nil
}

// ServeHTTP compares the token with every IdP's, without stopping at a
// match, so that timing tells nothing about which or whether one matched.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.handle(w, r, nil) }

// Observed returns m telling obs of each request it answers.
func (m *Mux) Observed(obs Observer) http.Handler { return observed{m.handle, obs} }

// handle is ServeHTTP telling obs, when not nil, what it answered.
func (m *Mux) handle(w http.ResponseWriter, r *http.Request, obs Observer) {
	sum, ok := bearerDigest(r)
	var match *Handler
	token := 0
	for _, h := range m.handlers {
		if t := h.accepts(&sum); t != 0 && ok {
			match, token = h, t
		}
	}
	if match == nil {
		m.handlers[0].unauthorized(m.handlers[0].root, w, r, ok, obs)
		return
	}
	match.admitted(w, r, token, obs)
}

// Error is a SCIM error response (RFC 7644 3.12).
type Error struct {
	Status int
	Type   string // scimType: uniqueness, invalidFilter, invalidValue, ...
	Detail string
}

func (e *Error) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("scim %d %s: %s", e.Status, e.Type, e.Detail)
	}
	return fmt.Sprintf("scim %d: %s", e.Status, e.Detail)
}

func errorf(status int, scimType, format string, args ...any) *Error {
	return &Error{Status: status, Type: scimType, Detail: fmt.Sprintf(format, args...)}
}

func notFound(kind, id string) *Error {
	return errorf(http.StatusNotFound, "", "%s %q not found", kind, id)
}

const contentType = "application/scim+json"

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"schemas":["` + urnError + `"],"status":"500","detail":"internal error"}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeError writes e in SCIM form; status is a string, as RFC 7644 has it
// and as Entra and Okta parse it.
func writeError(w http.ResponseWriter, e *Error) {
	body := map[string]any{"schemas": []string{urnError}, "status": fmt.Sprint(e.Status), "detail": e.Detail}
	if e.Type != "" {
		body["scimType"] = e.Type
	}
	writeJSON(w, e.Status, body)
}

// fail writes err: a *Error as it is, anything else as a 500 that reveals
// nothing, with the cause in the log.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *Error
	if errors.As(err, &se) {
		writeError(w, se)
		return
	}
	if errors.Is(err, context.Canceled) {
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Detail: "request cancelled"})
		return
	}
	// Values the store refuses to index (checkKeys catches them first, with
	// the attribute's name): the client's to fix, never a 500.
	if errors.Is(err, store.ErrValueTooLong) || errors.Is(err, store.ErrInvalidValue) {
		writeError(w, invalidValue("a value is too long or contains control characters (at most %d bytes)", store.MaxKeyBytes))
		return
	}
	h.log.Error("scim request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	writeError(w, &Error{Status: http.StatusInternalServerError, Detail: "internal error"})
}

// serve routes an authenticated request.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	if earlydata.Refuse(r) {
		// Whoever is on the path can replay early data: a replayed PATCH
		// active=true would enable again a user the IdP has deactivated
		// since. The client sends it again after the handshake.
		writeError(w, errorf(http.StatusTooEarly, "", "%s in TLS early data: send it again", r.Method))
		return
	}
	// Under the base path as Caddy's path matcher took it (urlpath.Under,
	// the sso handler's path_prefix rule): `handle /scim/v2/*` sends
	// /SCIM/v2/Users and //scim/v2/Users here too, and this handler
	// serves them rather than answer 404 for the route Caddy chose.
	p, ok := urlpath.Under(r.URL.Path, h.cfg.BasePath+"/")
	if !ok {
		writeError(w, errorf(http.StatusNotFound, "", "no SCIM resource at %s", r.URL.Path))
		return
	}
	segs := strings.Split(strings.Trim(p[len(h.cfg.BasePath):], "/"), "/")
	if len(segs) > 2 || segs[0] == "" {
		writeError(w, errorf(http.StatusNotFound, "", "no SCIM resource at %s", r.URL.Path))
		return
	}
	id := ""
	if len(segs) == 2 {
		id = segs[1]
	}
	switch {
	case strings.EqualFold(segs[0], "Users"):
		h.resource(w, r, id, h.userOps())
	case strings.EqualFold(segs[0], "Groups"):
		h.resource(w, r, id, h.groupOps())
	case strings.EqualFold(segs[0], "ServiceProviderConfig") && id == "":
		h.onlyGet(w, r, func() (any, error) { return h.serviceProviderConfig(r), nil })
	case strings.EqualFold(segs[0], "ResourceTypes"):
		h.onlyGet(w, r, func() (any, error) { return h.resourceTypes(r, id) })
	case strings.EqualFold(segs[0], "Schemas"):
		h.onlyGet(w, r, func() (any, error) { return h.schemas(r, id) })
	case strings.EqualFold(segs[0], "Bulk") || strings.EqualFold(segs[0], "Me"):
		writeError(w, errorf(http.StatusNotImplemented, "", "/%s is not supported", segs[0]))
	default:
		writeError(w, errorf(http.StatusNotFound, "", "no SCIM resource at %s", r.URL.Path))
	}
}

func (h *Handler) onlyGet(w http.ResponseWriter, r *http.Request, fn func() (any, error)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		writeError(w, errorf(http.StatusMethodNotAllowed, "", "method %s not allowed here", r.Method))
		return
	}
	if r.URL.Query().Has("filter") {
		// RFC 7644 4: answered in full, a filter would let the client
		// believe every entry matched it.
		writeError(w, errorf(http.StatusForbidden, "", "filtering is not supported on discovery endpoints"))
		return
	}
	v, err := fn()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// ops is what a resource endpoint does; Users and Groups fill it in.
// get, create, replace and patch return the whole resource: resource
// takes its version (the ETag) before it shapes the answer by the
// request's attributes and excludedAttributes.
type ops struct {
	kind    string // "User", "Group"
	rt      *resourceType
	list    func(*http.Request) (any, error)
	get     func(*http.Request, string) (any, error)
	create  func(*http.Request, map[string]any) (doc map[string]any, id string, err error)
	replace func(*http.Request, string, map[string]any) (any, error)
	// patch returns nil for 204 No Content.
	patch  func(*http.Request, string, []patchOp) (any, error)
	remove func(*http.Request, string) error
}

func (h *Handler) resource(w http.ResponseWriter, r *http.Request, id string, o ops) {
	var (
		v   any
		err error
	)
	status := http.StatusOK
	switch {
	case id == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		v, err = o.list(r)
	case id == "" && r.Method == http.MethodPost:
		var body map[string]any
		if body, err = h.readBody(r); err == nil {
			var doc map[string]any
			var newID string
			if doc, newID, err = o.create(r, body); err == nil {
				w.Header().Set("Location", h.location(r, o.kind, newID))
				v, status = doc, http.StatusCreated
			}
		}
	case id == "":
		w.Header().Set("Allow", "GET, POST")
		err = errorf(http.StatusMethodNotAllowed, "", "method %s not allowed on a collection", r.Method)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		v, err = o.get(r, id)
	case r.Method == http.MethodPut:
		var body map[string]any
		if body, err = h.readBody(r); err == nil {
			v, err = o.replace(r, id, body)
		}
	case r.Method == http.MethodPatch:
		var body map[string]any
		if body, err = h.readBody(r); err == nil {
			var p []patchOp
			if p, err = parsePatch(body); err == nil {
				v, err = o.patch(r, id, p)
			}
		}
	case r.Method == http.MethodDelete:
		if err = o.remove(r, id); err == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	default:
		w.Header().Set("Allow", "GET, PUT, PATCH, DELETE")
		err = errorf(http.StatusMethodNotAllowed, "", "method %s not allowed on a resource", r.Method)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if doc, ok := v.(map[string]any); ok && (id != "" || status == http.StatusCreated) {
		// One resource: its version is the ETag (RFC 7643 3.1), and a
		// GET whose If-None-Match holds it is answered 304 (RFC 7644
		// 3.14).
		meta, _ := doc["meta"].(map[string]any)
		if ver, _ := meta["version"].(string); ver != "" {
			w.Header().Set("ETag", ver)
			if (r.Method == http.MethodGet || r.Method == http.MethodHead) && etagListed(r.Header.Get("If-None-Match"), ver) {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		q := r.URL.Query()
		v = project(o.rt, doc, q.Get("attributes"), q.Get("excludedAttributes"))
	}
	writeJSON(w, status, v)
}

// etagListed reports whether an If-Match or If-None-Match header value
// names the version current: "*", or a list holding it. Comparison is
// weak (RFC 9110 8.8.3.2): the versions are weak ETags, and the W/ prefix
// a client may drop or keep says nothing about the version.
func etagListed(header, current string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || tag != "" && strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(current, "W/") {
			return true
		}
	}
	return false
}

// checkIfMatch refuses a write to a resource whose version is current when
// the request's If-Match names another (412, RFC 7644 3.14). Writes call
// it in their transaction, after reading the resource, which the store
// then holds until the commit: no other write comes between the check and
// this one (package store).
func checkIfMatch(r *http.Request, current string) error {
	if h := r.Header.Get("If-Match"); h != "" && !etagListed(h, current) {
		return errorf(http.StatusPreconditionFailed, "", "the resource has changed: its version is %s, not what If-Match names", current)
	}
	return nil
}

// readBody decodes a JSON object body of at most MaxBodyBytes. Numbers
// stay json.Number so that attributes SCIM stores verbatim round-trip.
func (h *Handler) readBody(r *http.Request) (map[string]any, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || mt == contentType || strings.HasSuffix(mt, "+json")) {
			return nil, errorf(http.StatusUnsupportedMediaType, "", "content type %q is not JSON", ct)
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(body)) > h.cfg.MaxBodyBytes {
		// No scimType: RFC 7644 Table 9 has none for a body too large, and
		// the status says it all.
		return nil, errorf(http.StatusRequestEntityTooLarge, "", "request body exceeds %d bytes", h.cfg.MaxBodyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errorf(http.StatusBadRequest, "invalidSyntax", "request body is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errorf(http.StatusBadRequest, "invalidSyntax", "request body has data after the JSON object")
	}
	return m, nil
}

// baseURL is the absolute URL of the base path.
func (h *Handler) baseURL(r *http.Request) string {
	if h.cfg.BaseURL != "" {
		return h.cfg.BaseURL
	}
	if h.cfg.Origin != nil {
		return h.cfg.Origin(r) + h.cfg.BasePath
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + h.cfg.BasePath
}

func (h *Handler) location(r *http.Request, kind, id string) string {
	return h.baseURL(r) + "/" + kind + "s/" + url.PathEscape(id)
}
