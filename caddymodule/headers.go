package caddymodule

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

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
// this route does not set them: every set above, and oauth2-proxy's
// X-Auth-Request-* variants. A client must never be able to send them.
var alwaysStripped = []string{
	"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username",
	"X-Forwarded-Groups", "X-Forwarded-First-Name", "X-Forwarded-Last-Name",
	"X-Forwarded-Idp", "X-Auth-Request-User", "X-Auth-Request-Email",
	"X-Auth-Request-Preferred-Username", "X-Auth-Request-Groups",
	"X-Auth-Request-Access-Token", "Remote-User", "X-Remote-User",
	defaultIdentityJWTHeader,
}

// outHeader is one identity header the handler sets.
type outHeader struct {
	key   string // canonical header key
	field session.Field
}

// headerPlan is computed once at provision: which headers to set, and the
// normalized names of every header to strip from the inbound request.
type headerPlan struct {
	set   []outHeader
	strip *protectedNames
}

// protectedNames are the identity header names no client may send. Besides
// the folded names it keeps their first letters and greatest length, so
// that most inbound headers (Accept, Cookie, Sec-*, User-Agent…) are passed
// over without folding or a map look-up.
type protectedNames struct {
	folded map[string]bool // lowercase, '_' folded to '-'
	first  [256]bool       // first byte of a protected name, either case
	maxLen int
}

func (n *protectedNames) add(name string) {
	f := foldHeaderName(name)
	if f == "" {
		return
	}
	n.folded[f] = true
	n.first[f[0]] = true
	n.first[strings.ToUpper(f[:1])[0]] = true
	n.maxLen = max(n.maxLen, len(f))
}

func newHeaderPlan(set string, overrides map[string]string) (headerPlan, error) {
	if set == "" {
		set = "default"
	}
	base, ok := headerSets[set]
	if !ok {
		return headerPlan{}, fmt.Errorf("unknown header set %q (expected default, oauth2_proxy or none)", set)
	}
	names := make(map[string]string, len(base))
	for k, v := range base {
		names[k] = v
	}
	for field, name := range overrides {
		if !slices.ContainsFunc(identityFields, func(f identityField) bool { return f.name == field }) {
			return headerPlan{}, fmt.Errorf("unknown identity field %q", field)
		}
		if name == "" || name == "-" {
			delete(names, field)
			continue
		}
		names[field] = name
	}
	plan := headerPlan{strip: &protectedNames{folded: make(map[string]bool)}}
	for _, h := range alwaysStripped {
		plan.strip.add(h)
	}
	for _, f := range identityFields {
		name, ok := names[f.name]
		if !ok {
			continue
		}
		plan.set = append(plan.set, outHeader{key: http.CanonicalHeaderKey(name), field: f.field})
		plan.strip.add(name)
	}
	return plan, nil
}

// foldHeaderName lowercases a header name and treats '_' as '-', the way
// many upstream stacks (CGI, some proxies) merge the two spellings.
func foldHeaderName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// stripInbound deletes every inbound header whose folded name is one the
// plan protects. It runs on every request, so it folds into a stack buffer
// instead of allocating a string per header.
func (p *headerPlan) stripInbound(h http.Header) {
	var buf [64]byte
	n := p.strip
	for key := range h {
		if len(key) == 0 || len(key) > n.maxLen || len(key) > len(buf) || !n.first[key[0]] {
			continue
		}
		b := buf[:len(key)]
		for i := 0; i < len(key); i++ {
			c := key[i]
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c == '_':
				c = '-'
			}
			b[i] = c
		}
		if n.folded[string(b)] {
			delete(h, key)
		}
	}
}

// setIdentity sets the identity headers from id. The value slices are
// shared, read-only, and built once per session.
func (p *headerPlan) setIdentity(h http.Header, id *session.Identity) {
	for _, o := range p.set {
		h[o.key] = id.Value(o.field)
	}
}

// stripCookies removes the cookies isOurs names from the Cookie header sent
// upstream, so the upstream never sees a session token. Each changed line is
// rebuilt once; lines without our cookies are kept as they are.
func stripCookies(h http.Header, isOurs func(name string) bool) {
	lines := h["Cookie"]
	kept := lines[:0:0]
	for _, line := range lines {
		var b strings.Builder
		b.Grow(len(line))
		changed := false
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			// Parsers trim the name too ("sso_session =x" is sso_session
			// to net/http), so ours go in any spacing.
			if isOurs(strings.TrimSpace(name)) {
				changed = true
				continue
			}
			if part == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
		switch {
		case !changed:
			kept = append(kept, line)
		case b.Len() > 0:
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}
