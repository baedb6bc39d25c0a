package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/caddy-sso/caddy-sso/session"
)

// identityField is one value the sso handler can hand to the upstream.
type identityField struct {
	name  string // as written in the Caddyfile's header directive
	field session.Field
}

var identityFields = []identityField{
	{"user", session.FieldUserID},
	{"email", session.FieldEmail},
	{"preferred_username", session.FieldEmail},
	{"groups", session.FieldGroups},
	{"first_name", session.FieldFirstName},
	{"last_name", session.FieldLastName},
	{"idp", session.FieldIdP},
}

// headerSets are the named sets of identity headers. "default" is
// oauth2-proxy's set plus names; "oauth2_proxy" is exactly what oauth2-proxy
// sends, for apps written against it.
var headerSets = map[string]map[string]string{
	"default": {
		"user":               "X-Forwarded-User",
		"email":              "X-Forwarded-Email",
		"preferred_username": "X-Forwarded-Preferred-Username",
		"groups":             "X-Forwarded-Groups",
		"first_name":         "X-Forwarded-First-Name",
		"last_name":          "X-Forwarded-Last-Name",
		"idp":                "X-Forwarded-Idp",
	},
	"oauth2_proxy": {
		"user":               "X-Forwarded-User",
		"email":              "X-Forwarded-Email",
		"preferred_username": "X-Forwarded-Preferred-Username",
		"groups":             "X-Forwarded-Groups",
	},
	"none": {},
}

// alwaysStripped are identity headers that some app might trust even when
// this route does not set them, because the gateway it was written for (or
// migrated from) sets them: every set above; the token headers
// (X-Forwarded-Access-Token, as oauth2-proxy names it, and
// X-Forwarded-Id-Token); oauth2-proxy's X-Auth-Request-*; Authelia's (and
// tinyauth's) Remote-*; authentik's X-Authentik-*; Grafana's auth proxy
// X-Webauth-*; and the generic Remote-User spellings. A client must never
// be able to send them. docs/security.md lists them for operators.
var alwaysStripped = []string{
	// caddy-sso and oauth2-proxy
	"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username",
	"X-Forwarded-Groups", "X-Forwarded-First-Name", "X-Forwarded-Last-Name",
	"X-Forwarded-Idp", DefaultAccessTokenHeader, DefaultIDTokenHeader, DefaultIdentityJWTHeader,
	"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Preferred-Username",
	"X-Auth-Request-Groups", "X-Auth-Request-Access-Token",
	// Authelia, tinyauth; CGI's REMOTE_USER
	"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name", "X-Remote-User",
	// authentik's proxy provider
	"X-Authentik-Username", "X-Authentik-Groups", "X-Authentik-Entitlements", "X-Authentik-Email",
	"X-Authentik-Name", "X-Authentik-Uid", "X-Authentik-Jwt",
	// Grafana's auth proxy (header_name and its usual headers setting)
	"X-Webauth-User", "X-Webauth-Email", "X-Webauth-Name", "X-Webauth-Role", "X-Webauth-Groups",
	// other proxies
	"X-Authenticated-User",
}

// ProtectedHeaders are the identity header names no client may send
// whatever a route sets (docs/security.md lists them): what a proxy in
// front of the verify endpoint must take from its answer or remove
// (examples/nginx/sso-protect.conf, examples/traefik/dynamic.yml, whose
// tests compare them with this list).
func ProtectedHeaders() []string { return slices.Clone(alwaysStripped) }

// outHeader is one identity header the handler sets.
type outHeader struct {
	key   string // canonical header key
	field session.Field
}

// HeaderPlan is computed once at provision: which headers to set, and the
// normalized names of every header to strip from the inbound request.
type HeaderPlan struct {
	set      []outHeader
	upstream []UpstreamHeader // set, as the config names them
	strip    *protectedNames  // read through names
	union    *HeaderUnion     // the config's other routes, once added (HeaderUnion.Add)
}

// Upstream lists the identity headers the plan sets, each with the setting
// that names it, for CheckUpstreamHeaders.
func (p HeaderPlan) Upstream() []UpstreamHeader { return slices.Clone(p.upstream) }

// Settings that name the headers a route sets for its upstream, as
// UpstreamHeader.Setting spells them.
const (
	SettingHeader      = "header"                   // header <field> <Name>; Field says which
	SettingHeaderSet   = "headers"                  // headers default|oauth2_proxy; Field says which
	SettingAccessToken = "pass_access_token"        // pass_access_token [<Name>]
	SettingIDToken     = "pass_id_token"            // pass_id_token [<Name>]
	SettingBearer      = "set_authorization_header" // Authorization
	SettingIdentityJWT = "identity_jwt"             // identity_jwt header <Name>
)

// bearerHeader carries the access token with set_authorization_header,
// and is no other setting's.
const bearerHeader = "Authorization"

// UpstreamHeader is one header a route sets for its upstream, with the
// setting that names it: an identity header (SettingHeader for a renamed
// field, SettingHeaderSet for one of the set's own names), a token header,
// Authorization for the bearer token, or the identity JWT's header.
type UpstreamHeader struct {
	Setting string // one of the Setting* constants
	Field   string // the identity field, for SettingHeader and SettingHeaderSet
	Set     string // the header set, for SettingHeaderSet
	Name    string // the header name, as configured
}

// String names the header as the Caddyfile sets it.
func (u UpstreamHeader) String() string {
	switch u.Setting {
	case SettingHeader:
		return fmt.Sprintf("header %s %s", u.Field, u.Name)
	case SettingHeaderSet:
		return fmt.Sprintf("headers %s (%s: %s)", u.Set, u.Field, u.Name)
	case SettingIdentityJWT:
		return "identity_jwt header " + u.Name
	case SettingBearer:
		return SettingBearer + " (" + bearerHeader + ")"
	}
	return u.Setting + " " + u.Name
}

// Key is the setting as a config parser keys its lines: "header <field>",
// "headers", "identity_jwt" or the token setting.
func (u UpstreamHeader) Key() string {
	switch u.Setting {
	case SettingHeader:
		return SettingHeader + " " + u.Field
	}
	return u.Setting
}

// HeaderError is a header a route cannot set for its upstream: At holds
// the settings at fault, one for a name the rule refuses, two (in the
// order CheckUpstreamHeaders got them) for two settings that name the
// same header. A config parser can point at their lines.
type HeaderError struct {
	At  []UpstreamHeader
	msg string
}

func (e *HeaderError) Error() string { return e.msg }

// reservedHeaders are the names a route may not set for its upstream,
// folded as foldHeaderName folds: HTTP's own headers (message framing,
// hop-by-hop, Host; the names the Fetch standard forbids browsers to set),
// the cookies (Cookie carries the session, which the route reads before
// it strips its own names), Authorization (the bearer token's, set only by
// set_authorization_header), and the headers proxies and the gateway read
// from the request (client address, scheme and host for sign-in URLs, the
// original request of a forward-auth subrequest, Origin and the fetch
// metadata of the sign-out checks, Accept of navigations). A route strips
// every header it sets from inbound requests and then overwrites it: under
// one of these names it would break the request, the session or a check.
var reservedHeaders = func() map[string]bool {
	m := make(map[string]bool)
	for _, n := range []string{
		// HTTP itself
		"Connection", "Content-Length", "Content-Type", "Content-Encoding", "Expect", "Host", "Keep-Alive",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Via", "Date",
		// what browsers alone may set (Fetch, "forbidden request-header name")
		"Accept-Charset", "Accept-Encoding", "Access-Control-Request-Headers", "Access-Control-Request-Method",
		"Cookie2", "Dnt", "Origin", "Referer",
		// the session and the bearer token
		"Cookie", "Set-Cookie", bearerHeader,
		// what proxies and the gateway read
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Forwarded-Method", "X-Forwarded-Uri",
		"X-Real-Ip", "X-Requested-With", "Accept",
	} {
		m[foldHeaderName(n)] = true
	}
	return m
}()

// reservedHeaderPrefixes are reserved as whole families: Proxy-* (Proxy-
// Authorization, Proxy-Connection…), Sec-* (fetch metadata and client
// hints, which only browsers set) and X-Original-* (the original request
// of an nginx auth_request, which the gateway reads, and what ingress-nginx
// keeps of the client's X-Forwarded-For and the like).
var reservedHeaderPrefixes = []string{"proxy-", "sec-", "x-original-"}

// checkHeaderName is the rule for one header name a route sets: an HTTP
// field name, not a reserved one. Authorization is the bearer token's
// alone.
func checkHeaderName(u UpstreamHeader) error {
	if !httpguts.ValidHeaderFieldName(u.Name) { // RFC 9110 5.1: a token
		return &HeaderError{At: []UpstreamHeader{u}, msg: fmt.Sprintf("%s: %q is not a header name (a header name is one or more ASCII letters, digits and !#$%%&'*+-.^_`|~: no spaces, colons, parentheses or other characters)",
			u.Key(), u.Name)}
	}
	f := foldHeaderName(u.Name)
	if u.Setting == SettingBearer && f == foldHeaderName(bearerHeader) {
		return nil
	}
	if f == foldHeaderName(bearerHeader) {
		return &HeaderError{At: []UpstreamHeader{u}, msg: fmt.Sprintf("%s: Authorization is set only by set_authorization_header, which passes the access token with the Bearer scheme; name another header", u)}
	}
	reserved := reservedHeaders[f]
	for _, p := range reservedHeaderPrefixes {
		reserved = reserved || strings.HasPrefix(f, p)
	}
	if reserved {
		return &HeaderError{At: []UpstreamHeader{u}, msg: fmt.Sprintf("%s: %s is reserved, as HTTP, browsers, proxies or the gateway use it and the route would strip it from requests and overwrite it (reserved: Cookie, Set-Cookie, Host, Connection, Content-Length, Content-Type, Transfer-Encoding, TE, Trailer, Upgrade, Keep-Alive, Origin, Referer, Forwarded, X-Forwarded-For/-Host/-Proto/-Method/-Uri, X-Original-*, Proxy-*, Sec-* and the like); name a header of your own, such as X-App-User",
			u, u.Name)}
	}
	return nil
}

// CheckUpstreamHeaders is the one rule for the names of the headers a
// route sets for its upstream (identity headers, token headers, the
// identity JWT's): each is an HTTP field name and not a reserved one, and
// no two name the same header, compared as inbound headers are stripped
// (any letter case, '_' and '.' for '-'): the later would overwrite the earlier,
// and stripping one would strip the other. The error is a *HeaderError.
func CheckUpstreamHeaders(hs ...UpstreamHeader) error {
	seen := make(map[string]int, len(hs))
	for i, u := range hs {
		if err := checkHeaderName(u); err != nil {
			return err
		}
		f := foldHeaderName(u.Name)
		if j, ok := seen[f]; ok {
			return &HeaderError{At: []UpstreamHeader{hs[j], u}, msg: fmt.Sprintf("%s and %s name one header: they need two header names, as each header carries one value (names are compared in any letter case and with _ or . for -)",
				hs[j], u)}
		}
		seen[f] = i
	}
	return nil
}

// CheckRouteHeaders checks every header a route sets for its upstream
// together: the identity headers of plan, the token headers of tokens and,
// when signer is not nil, the identity JWT's header (CheckUpstreamHeaders).
func CheckRouteHeaders(plan HeaderPlan, tokens TokenConfig, signer *SignerConfig) error {
	hs := append(plan.Upstream(), tokens.Headers()...)
	if signer != nil {
		hs = append(hs, signer.upstream())
	}
	return CheckUpstreamHeaders(hs...)
}

// protectedNames are the identity header names no client may send. Besides
// the folded names it keeps their first letters and greatest length, so
// that most inbound headers (Accept, Cookie, Sec-*, User-Agent…) are passed
// over without folding or a map look-up.
type protectedNames struct {
	folded map[string]bool // lowercase, '_' and '.' folded to '-'
	first  [256]bool       // first byte of a protected name, either case
	maxLen int
}

// Protect adds a header name no client may send (an identity token's
// header, say) to those the plan strips. Call it before HeaderUnion.Add.
func (p *HeaderPlan) Protect(name string) { p.strip.add(name) }

// add protects name, of any length. Its first-byte entries are every byte
// that folds to the folded name's first byte ('_' and '.' as well as '-',
// either case of a letter), and maxLen may exceed has's stack buffer: has must
// pass over no spelling that folds to a protected name.
func (n *protectedNames) add(name string) {
	f := foldHeaderName(name)
	if f == "" {
		return
	}
	n.folded[f] = true
	for c := range len(n.first) {
		if foldHeaderByte(byte(c)) == f[0] {
			n.first[c] = true
		}
	}
	n.maxLen = max(n.maxLen, len(f))
}

// NewHeaderPlan builds the plan for a header set (default, oauth2_proxy or
// none; "" means default) with overrides mapping an identity field to
// another header name, or to "" or "-" to send that field in none. Every
// header the plan sets is also stripped from inbound requests, under any
// spelling, along with the ones always stripped.
func NewHeaderPlan(set string, overrides map[string]string) (HeaderPlan, error) {
	if set == "" {
		set = "default"
	}
	base, ok := headerSets[set]
	if !ok {
		return HeaderPlan{}, fmt.Errorf("unknown header set %q (expected default, oauth2_proxy or none)", set)
	}
	names := make(map[string]string, len(base))
	for k, v := range base {
		names[k] = v
	}
	for field, name := range overrides {
		if !slices.ContainsFunc(identityFields, func(f identityField) bool { return f.name == field }) {
			return HeaderPlan{}, fmt.Errorf("unknown identity field %q", field)
		}
		if name == "" || name == "-" {
			delete(names, field)
			continue
		}
		names[field] = name
	}
	plan := HeaderPlan{strip: &protectedNames{folded: make(map[string]bool)}}
	for _, h := range alwaysStripped {
		plan.strip.add(h)
	}
	for _, f := range identityFields {
		name, ok := names[f.name]
		if !ok {
			continue
		}
		u := UpstreamHeader{Setting: SettingHeaderSet, Field: f.name, Set: set, Name: name}
		if _, renamed := overrides[f.name]; renamed {
			u = UpstreamHeader{Setting: SettingHeader, Field: f.name, Name: name}
		}
		plan.upstream = append(plan.upstream, u)
		plan.set = append(plan.set, outHeader{key: http.CanonicalHeaderKey(name), field: f.field})
		plan.strip.add(name)
	}
	if err := CheckUpstreamHeaders(plan.upstream...); err != nil {
		return HeaderPlan{}, err
	}
	return plan, nil
}

// foldHeaderName lowercases a header name and treats '_' and '.' as '-',
// the way upstream stacks merge those spellings: CGI and FastCGI (and so
// PHP's $_SERVER, which also turns '.' into '_': X.Forwarded.User arrives
// as HTTP_X_FORWARDED_USER, the gateway's own header's key) and some
// proxies. It folds with foldHeaderByte, as has does, so that a configured
// name and an inbound one are folded by the same rule (and keep their
// length).
func foldHeaderName(name string) string {
	b := make([]byte, len(name))
	foldHeaderBytes(b, name)
	return string(b)
}

// foldHeaderByte is the folding rule, one byte at a time: ASCII letters
// lowercase, '_' and '.' to '-'. Header names are ASCII tokens, so it is byte-wise
// rather than Unicode-aware; a Unicode rule would also change lengths,
// which maxLen relies on not happening.
func foldHeaderByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_' || c == '.':
		return '-'
	}
	return c
}

// foldHeaderBytes writes name, folded, into dst, which is len(name) long.
func foldHeaderBytes(dst []byte, name string) {
	dst = dst[:len(name)]
	for i := 0; i < len(name); i++ {
		dst[i] = foldHeaderByte(name[i])
	}
}

// names is the set the plan strips: its own names and, once added to a
// HeaderUnion, those of every route of its config (frozen at the first
// request).
func (p *HeaderPlan) names() *protectedNames {
	if p.union != nil {
		p.union.freeze()
	}
	return p.strip
}

// StripInbound deletes every inbound header whose folded name is one the
// plan protects (with a HeaderUnion, one any route of the config protects).
func (p *HeaderPlan) StripInbound(h http.Header) {
	strip := p.names()
	for key := range h {
		if strip.has(key) {
			delete(h, key)
		}
	}
}

// has reports whether name, folded, is protected. It runs for every
// inbound header and Connection token, so it passes over most names
// (Accept, Cookie, Sec-*, User-Agent…) on their first byte or length
// alone, and folds the rest into a stack buffer that fits every usual
// header name. A longer name, which only a configured header (header,
// identity_jwt header, pass_*_token) can make worth folding, is folded on
// the heap rather than passed over: a name has skipped would reach the
// upstream in a client's spelling, or let a Connection token remove the
// gateway's own header.
func (n *protectedNames) has(name string) bool {
	if len(name) == 0 || len(name) > n.maxLen || !n.first[name[0]] {
		return false
	}
	var buf [64]byte
	var b []byte
	if len(name) <= len(buf) {
		b = buf[:len(name)]
	} else {
		b = make([]byte, len(name))
	}
	foldHeaderBytes(b, name)
	return n.folded[string(b)]
}

// SetIdentity sets the identity headers from id. The value slices are
// shared, read-only, and built once per session.
func (p *HeaderPlan) SetIdentity(h http.Header, id *session.Identity) {
	for _, o := range p.set {
		h[o.key] = id.Value(o.field)
	}
}

// stripCookies removes the cookies isOurs names from the Cookie header sent
// upstream, so the upstream never sees a session token. It runs on every
// proxied request, so it changes only what it must: a line without our
// cookies is kept as it is, a line with ours only at its start or end is
// cut down to the part between (no allocation), and only a line with ours
// between two of the app's cookies is rebuilt. Lines are replaced in the
// request's own value slice, which the server allocated for this request.
func stripCookies(h http.Header, isOurs func(name string) bool) {
	lines, ok := h["Cookie"]
	if !ok {
		return
	}
	kept := lines[:0]
	for _, line := range lines {
		if v, changed := withoutCookies(line, isOurs); v != "" || !changed {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

// withoutCookies returns one Cookie line without the cookies isOurs names,
// and whether there were any.
func withoutCookies(line string, isOurs func(name string) bool) (string, bool) {
	from, to := -1, -1 // the span of line from the first to the last kept cookie
	removed, pending, gap := false, false, false
	for i := 0; i <= len(line); {
		start, stop, next := cookiePart(line, i)
		i = next
		switch {
		case start == stop:
		case isOurs(cookieName(line[start:stop])):
			removed = true
			pending = from >= 0
		default:
			gap = gap || pending
			pending = false
			if from < 0 {
				from = start
			}
			to = stop
		}
	}
	switch {
	case !removed:
		return line, false
	case from < 0:
		return "", true
	case !gap:
		return line[from:to], true
	}
	var b strings.Builder
	b.Grow(to - from)
	for i := from; i <= to; {
		start, stop, next := cookiePart(line[:to], i)
		i = next
		if start == stop || isOurs(cookieName(line[start:stop])) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(line[start:stop])
	}
	return b.String(), true
}

// cookiePart finds the cookie of line that starts at from: its bounds
// without surrounding white space, and where the next one starts.
func cookiePart(line string, from int) (start, stop, next int) {
	end := strings.IndexByte(line[from:], ';')
	if end < 0 {
		end = len(line)
	} else {
		end += from
	}
	start, stop = from, end
	for start < stop && isSpace(line[start]) {
		start++
	}
	for stop > start && isSpace(line[stop-1]) {
		stop--
	}
	return start, stop, end + 1
}

// cookieName is the name of one name=value pair, trimmed as upstream
// cookie parsers trim it.
func cookieName(pair string) string {
	name, _, _ := strings.Cut(pair, "=")
	return strings.TrimSpace(name)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
