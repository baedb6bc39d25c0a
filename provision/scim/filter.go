package scim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddy-sso/caddy-sso/store"
)

// This file parses and evaluates the filter language of RFC 7644 3.4.2.2
// and the attribute paths of PATCH (3.5.2). Two liberties match what
// directories send: a value path may be followed by a sub-attribute and a
// comparison (Entra's `emails[type eq "work"].value eq "x"`), and keywords
// and operators are case-insensitive.

// maxFilterLen bounds the filter a client may send; Entra's and Okta's are
// under 200 bytes.
const maxFilterLen = 4096

// fpath is an attribute path: [urn:]attr[[filter]][.sub].
type fpath struct {
	urn    string // extension schema URN; "" for the core schema
	attr   string // "" when the path names a whole extension
	filter expr   // value selection on a multi-valued attr, or nil
	sub    string
}

func (p fpath) String() string {
	s := p.attr
	if p.urn != "" {
		s = p.urn + ":" + s
	}
	if p.filter != nil {
		s += "[…]"
	}
	if p.sub != "" {
		s += "." + p.sub
	}
	return s
}

// expr is a parsed filter.
type expr interface{ isExpr() }

// cmpExpr compares the values at path with value. op "pr" tests presence
// (value unused); op "" (a bare value path) tests that some element
// matches path.filter.
type cmpExpr struct {
	path  fpath
	op    string
	value any // string, bool, json.Number or nil (null)
}

type logicExpr struct {
	op   string // "and", "or"
	l, r expr
}

type notExpr struct{ x expr }

func (*cmpExpr) isExpr()   {}
func (*logicExpr) isExpr() {}
func (*notExpr) isExpr()   {}

func invalidFilter(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalidFilter", Detail: fmt.Sprintf(format, args...)}
}

// token is one lexeme: punctuation, a quoted string (already decoded) or
// a word (attribute path, operator, keyword, number).
type token struct {
	kind byte // '(', ')', '[', ']', '"' (string), 'w' (word), 0 (end)
	text string
	pos  int
}

func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
		case '(', ')', '[', ']':
			out = append(out, token{kind: c, text: string(c), pos: i})
			i++
		case '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, invalidFilter("unterminated string at position %d", i)
			}
			var v string
			if err := json.Unmarshal([]byte(s[i:j+1]), &v); err != nil {
				return nil, invalidFilter("bad string at position %d", i)
			}
			out = append(out, token{kind: '"', text: v, pos: i})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n()[]\"", rune(s[j])) {
				j++
			}
			out = append(out, token{kind: 'w', text: s[i:j], pos: i})
			i = j
		}
	}
	return append(out, token{pos: len(s)}), nil
}

// parser is one parse of one filter or path.
type parser struct {
	rt   *resourceType
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != 0 {
		p.i++
	}
	return t
}

func (p *parser) keyword(k string) bool {
	t := p.peek()
	if t.kind == 'w' && strings.EqualFold(t.text, k) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expect(kind byte) error {
	if t := p.next(); t.kind != kind {
		return invalidFilter("expected %q at position %d", kind, t.pos)
	}
	return nil
}

// parseFilter parses a complete filter expression.
func parseFilter(rt *resourceType, s string) (expr, error) {
	if len(s) > maxFilterLen || !utf8.ValidString(s) {
		return nil, invalidFilter("filter too long or not UTF-8")
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{rt: rt, toks: toks}
	e, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != 0 {
		return nil, invalidFilter("unexpected %q at position %d", t.text, t.pos)
	}
	return e, nil
}

// depth bounds nesting so that a hostile filter cannot exhaust the stack.
const maxDepth = 32

func (p *parser) or(depth int) (expr, error) {
	l, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l = &logicExpr{op: "or", l: l, r: r}
	}
	return l, nil
}

func (p *parser) and(depth int) (expr, error) {
	l, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		l = &logicExpr{op: "and", l: l, r: r}
	}
	return l, nil
}

func (p *parser) unary(depth int) (expr, error) {
	if depth > maxDepth {
		return nil, invalidFilter("filter nested too deeply")
	}
	if p.keyword("not") {
		if err := p.expect('('); err != nil {
			return nil, err
		}
		x, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect(')'); err != nil {
			return nil, err
		}
		return &notExpr{x: x}, nil
	}
	if p.peek().kind == '(' {
		p.next()
		x, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect(')'); err != nil {
			return nil, err
		}
		return x, nil
	}
	return p.comparison(depth)
}

func isCompareOp(op string) bool {
	switch strings.ToLower(op) {
	case "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le":
		return true
	}
	return false
}

func (p *parser) comparison(depth int) (expr, error) {
	t := p.next()
	if t.kind != 'w' {
		return nil, invalidFilter("expected an attribute at position %d", t.pos)
	}
	path, err := splitPath(p.rt, t.text)
	if err != nil {
		return nil, err
	}
	if p.peek().kind == '[' {
		p.next()
		if path.sub != "" {
			return nil, invalidFilter("value filter after a sub-attribute at position %d", t.pos)
		}
		inner, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect(']'); err != nil {
			return nil, err
		}
		path.filter = inner
		if n := p.peek(); n.kind == 'w' && strings.HasPrefix(n.text, ".") {
			p.next()
			path.sub = n.text[1:]
			if !validName(path.sub) {
				return nil, invalidFilter("bad sub-attribute %q", n.text)
			}
			if def := p.rt.lookup(path.urn, path.attr); def != nil {
				if s := def.sub(path.sub); s != nil {
					path.sub = s.Name // the schema's spelling, as splitPath gives
				}
			}
		}
		if n := p.peek(); n.kind != 'w' || !(isCompareOp(n.text) || strings.EqualFold(n.text, "pr")) {
			if path.sub != "" {
				return nil, invalidFilter("expected an operator at position %d", n.pos)
			}
			return &cmpExpr{path: path}, nil
		}
	}
	opTok := p.next()
	op := strings.ToLower(opTok.text)
	if opTok.kind != 'w' {
		return nil, invalidFilter("expected an operator at position %d", opTok.pos)
	}
	if op == "pr" {
		return &cmpExpr{path: path, op: op}, nil
	}
	if !isCompareOp(op) {
		return nil, invalidFilter("unknown operator %q", opTok.text)
	}
	v := p.next()
	var value any
	switch {
	case v.kind == '"':
		value = v.text
	case v.kind == 'w' && strings.EqualFold(v.text, "true"):
		value = true
	case v.kind == 'w' && strings.EqualFold(v.text, "false"):
		value = false
	case v.kind == 'w' && strings.EqualFold(v.text, "null"):
		value = nil
	case v.kind == 'w' && isNumber(v.text):
		value = json.Number(v.text)
	default:
		return nil, invalidFilter("expected a value at position %d", v.pos)
	}
	leaf := p.rt.lookup(path.urn, path.attr).sub(path.sub)
	if leaf != nil && leaf.Type == "dateTime" {
		if err := checkDateTime(path, op, value, v.pos); err != nil {
			return nil, err
		}
	}
	if err := checkUnordered(path, op, value, leaf); err != nil {
		return nil, err
	}
	return &cmpExpr{path: path, op: op, value: value}, nil
}

// checkUnordered refuses gt, ge, lt and le on a boolean or binary, which
// RFC 7644 (section 3.4.2.2) says fail with invalidFilter: they have no
// order, and an answer of "nothing matches" would pass for a real one.
func checkUnordered(path fpath, op string, value any, leaf *attr) error {
	switch op {
	case "gt", "ge", "lt", "le":
	default:
		return nil
	}
	_, isBool := value.(bool)
	if isBool || leaf != nil && (leaf.Type == "boolean" || leaf.Type == "binary") {
		return invalidFilter("%s: %s compares ordered values; a boolean or binary has no order (use eq or ne)", path, op)
	}
	return nil
}

// checkDateTime refuses a comparison of a dateTime attribute that could
// only be answered wrongly: a value that is not an RFC 3339 date-time
// (as text it would compare as text), or co, sw, ew, which an instant
// has no meaning for. null (eq null: absent) is taken.
func checkDateTime(path fpath, op string, value any, pos int) error {
	if value == nil {
		return nil
	}
	s, ok := value.(string)
	if !ok {
		return invalidFilter("%s is a dateTime: compare it with a quoted RFC 3339 date-time (position %d)", path, pos)
	}
	if _, err := parseDateTime(s); err != nil {
		return invalidFilter("%s is a dateTime: %q is not an RFC 3339 date-time such as 2026-01-02T15:04:05Z (position %d)", path, s, pos)
	}
	if op == "co" || op == "sw" || op == "ew" {
		return invalidFilter("%s is a dateTime: compare it with eq, ne, gt, ge, lt or le", path)
	}
	return nil
}

func isNumber(s string) bool {
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}

func validName(s string) bool {
	if s == "$ref" {
		return true
	}
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '_' || r == '-')
		if !ok {
			return false
		}
	}
	return true
}

// splitPath parses [urn:]attr[.sub] (no value filter). A URN the resource
// type knows is matched as a whole, so its dots and colons ("2.0") are
// not mistaken for separators; for an unknown URN the last colon splits.
func splitPath(rt *resourceType, s string) (fpath, error) {
	var p fpath
	rest := s
	if len(s) > 4 && strings.EqualFold(s[:4], "urn:") {
		known := false
		for _, sc := range append([]*schema{rt.Core}, rt.Extensions...) {
			switch {
			case strings.EqualFold(s, sc.ID):
				p.urn, rest, known = sc.ID, "", true
			case len(s) > len(sc.ID) && strings.EqualFold(s[:len(sc.ID)], sc.ID) && s[len(sc.ID)] == ':':
				p.urn, rest, known = sc.ID, s[len(sc.ID)+1:], true
			}
			if known {
				break
			}
		}
		if !known {
			i := strings.LastIndexByte(s, ':')
			p.urn, rest = s[:i], s[i+1:]
		}
		if p.urn == rt.Core.ID {
			p.urn = ""
		}
		if rest == "" {
			if p.urn == "" {
				return p, invalidFilter("path %q names no attribute", s)
			}
			return p, nil
		}
	}
	attr, sub, _ := strings.Cut(rest, ".")
	if !validName(attr) || strings.Contains(rest, ".") && !validName(sub) {
		return p, invalidFilter("bad attribute path %q", s)
	}
	p.attr, p.sub = attr, sub
	if def := rt.lookup(p.urn, attr); def != nil {
		p.attr = def.Name
		if s := def.sub(sub); s != nil {
			p.sub = s.Name
		}
	}
	return p, nil
}

// parsePatchPath parses a PATCH path: attrPath, or valuePath[.sub].
func parsePatchPath(rt *resourceType, s string) (fpath, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return fpath{}, invalidPath("empty path")
	}
	open := strings.IndexByte(s, '[')
	if open < 0 {
		p, err := splitPath(rt, s)
		if err != nil {
			return p, invalidPath("%s", err.(*Error).Detail)
		}
		return p, nil
	}
	closeAt := closingBracket(s, open)
	if closeAt < 0 {
		return fpath{}, invalidPath("unbalanced brackets in path %q", s)
	}
	p, err := splitPath(rt, s[:open])
	if err != nil || p.sub != "" {
		return fpath{}, invalidPath("bad attribute before a value filter in %q", s)
	}
	inner, err := parseFilter(rt, s[open+1:closeAt])
	if err != nil {
		return fpath{}, invalidPath("bad value filter in %q: %s", s, err.(*Error).Detail)
	}
	p.filter = inner
	if tail := s[closeAt+1:]; tail != "" {
		if !strings.HasPrefix(tail, ".") || !validName(tail[1:]) {
			return fpath{}, invalidPath("bad sub-attribute after the value filter in %q", s)
		}
		p.sub = tail[1:]
		if def := rt.lookup(p.urn, p.attr); def != nil {
			if s := def.sub(p.sub); s != nil {
				p.sub = s.Name
			}
		}
	}
	return p, nil
}

// closingBracket finds the ']' matching s[open], skipping quoted strings.
func closingBracket(s string, open int) int {
	inString := false
	for i := open + 1; i < len(s); i++ {
		switch c := s[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case !inString && c == ']':
			return i
		}
	}
	return -1
}

func invalidPath(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalidPath", Detail: fmt.Sprintf(format, args...)}
}

// ---- evaluation ----

// scope says where attribute names in a filter resolve: in a resource
// (base nil) or, inside a value filter, in one element of base.
type scope struct {
	rt   *resourceType
	base *attr
}

func (sc scope) def(p fpath) *attr {
	if sc.base != nil {
		return sc.base.sub(p.attr)
	}
	return sc.rt.lookup(p.urn, p.attr)
}

// matches evaluates e against m (a resource, or one element of a
// multi-valued attribute).
func matches(sc scope, e expr, m map[string]any) bool {
	switch e := e.(type) {
	case *logicExpr:
		if e.op == "and" {
			return matches(sc, e.l, m) && matches(sc, e.r, m)
		}
		return matches(sc, e.l, m) || matches(sc, e.r, m)
	case *notExpr:
		return !matches(sc, e.x, m)
	case *cmpExpr:
		return compareAt(sc, e, m)
	}
	return false
}

func compareAt(sc scope, e *cmpExpr, m map[string]any) bool {
	container := m
	if e.path.urn != "" {
		ext, _ := get(m, e.path.urn).(map[string]any)
		container = ext
	}
	def := sc.def(e.path)
	raw := get(container, e.path.attr)
	elems, isList := raw.([]any)
	if !isList {
		if raw == nil {
			elems = nil
		} else {
			elems = []any{raw}
		}
	}
	if e.path.filter != nil {
		inner := scope{rt: sc.rt, base: def}
		kept := elems[:0:0]
		for _, el := range elems {
			if em, ok := el.(map[string]any); ok && matches(inner, e.path.filter, em) {
				kept = append(kept, el)
			}
		}
		elems = kept
		if e.op == "" {
			return len(elems) > 0
		}
	}
	leaf := def
	var vals []any
	for _, el := range elems {
		em, complexValue := el.(map[string]any)
		switch {
		case e.path.sub != "" && complexValue:
			vals = append(vals, get(em, e.path.sub))
		case e.path.sub != "":
		case complexValue:
			// A complex multi-valued attribute compares by its value.
			vals = append(vals, get(em, "value"))
		default:
			vals = append(vals, el)
		}
	}
	if e.path.sub != "" {
		leaf = def.sub(e.path.sub)
	} else if def != nil && def.Type == "complex" {
		leaf = def.sub("value")
	}
	present := false
	for _, v := range vals {
		if v == nil || v == "" {
			continue
		}
		present = true
		if e.op != "pr" && e.op != "ne" && compareValue(e.op, v, e.value, leaf) {
			return true
		}
	}
	switch e.op {
	case "pr":
		return present
	case "ne":
		if e.value == nil {
			return present
		}
		for _, v := range vals {
			if v != nil && compareValue("eq", v, e.value, leaf) {
				return false
			}
		}
		return true
	case "eq":
		return e.value == nil && !present
	}
	return false
}

// compareValue applies one operator to a stored value and the filter's;
// leaf is the attribute's definition (nil: unknown). A dateTime compares
// as an instant (RFC 7644 3.4.2.2): as text, "…:59.5Z" sorts before
// "…:59Z", and an offset (+01:00) names the same instant as another text.
func compareValue(op string, have, want any, leaf *attr) bool {
	switch w := want.(type) {
	case string:
		h, ok := have.(string)
		if !ok {
			return false
		}
		if leaf != nil && leaf.Type == "dateTime" {
			ht, err1 := parseDateTime(h)
			wt, err2 := parseDateTime(w)
			return err1 == nil && err2 == nil && compareOrdered(op, ht.Compare(wt))
		}
		if leaf == nil || !leaf.CaseExact {
			// As the store's indexes compare (store.FoldName: NFC and
			// case folding), so that a filter finds what the index does.
			h, w = store.FoldName(h), store.FoldName(w)
		}
		switch op {
		case "eq":
			return h == w
		case "co":
			return strings.Contains(h, w)
		case "sw":
			return strings.HasPrefix(h, w)
		case "ew":
			return strings.HasSuffix(h, w)
		}
		return compareOrdered(op, strings.Compare(h, w))
	case bool:
		h, ok := asBool(have)
		return ok && op == "eq" && h == w
	case json.Number:
		hn, ok := have.(json.Number)
		if !ok {
			return false
		}
		a, err1 := hn.Float64()
		b, err2 := w.Float64()
		return err1 == nil && err2 == nil && compareOrdered(op, cmp.Compare(a, b))
	}
	return false
}

// compareOrdered applies eq, gt, ge, lt or le to c, the sign of
// have compared with want; any other operator is false.
func compareOrdered(op string, c int) bool {
	switch op {
	case "eq":
		return c == 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	}
	return false
}

// parseDateTime reads an RFC 3339 date-time (xsd:dateTime as RFC 7643
// 2.3.5 has it) at any precision and offset.
func parseDateTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// asBool reads a boolean as JSON or as Entra's "True"/"False" strings.
func asBool(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		switch strings.ToLower(strings.TrimSpace(b)) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

// get reads m[name] ignoring the case of name, as SCIM attribute names
// are case-insensitive.
func get(m map[string]any, name string) any {
	if m == nil {
		return nil
	}
	if v, ok := m[name]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// keyOf returns the key under which m holds name (any case), or name.
func keyOf(m map[string]any, name string) string {
	if _, ok := m[name]; ok {
		return name
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}
