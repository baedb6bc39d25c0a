package scim

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/caddy-sso/caddy-sso/store"
)

// patchOp is one PATCH operation; op is lower-cased ("Replace" from Entra
// is "replace").
type patchOp struct {
	op       string
	path     string
	value    any
	hasValue bool
}

// maxPatchOps bounds the work one request can ask for: operations, and
// the attributes their object values name (see weight).
const maxPatchOps = 1000

// weight is what an operation's value counts toward maxPatchOps. Each key
// of an object is an attribute change of its own (a path-less value is a
// list of paths, a whole extension a list of its attributes), and so is
// each key of an object under it, so that an extension object counts as
// one attribute plus its own. Objects in lists do not count: a list of
// members is one change, whose cost is linear in its length. Counting
// stops once past limit.
func weight(v any, limit int) int {
	m, ok := v.(map[string]any)
	if !ok {
		return 0
	}
	n := 0
	for _, x := range m {
		if n > limit {
			break
		}
		n += 1 + weight(x, limit-n)
	}
	return n
}

// parsePatch reads a PatchOp body. The schemas member is not required:
// the endpoint and method already say what the body is.
func parsePatch(body map[string]any) ([]patchOp, error) {
	raw, ok := get(body, "Operations").([]any)
	if !ok || len(raw) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalidSyntax", "PATCH needs a non-empty Operations list")
	}
	if len(raw) > maxPatchOps {
		return nil, errorf(http.StatusBadRequest, "tooMany", "PATCH has more than %d operations", maxPatchOps)
	}
	out := make([]patchOp, 0, len(raw))
	budget := maxPatchOps
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, errorf(http.StatusBadRequest, "invalidSyntax", "operation %d is not an object", i)
		}
		opName, _ := get(m, "op").(string)
		op := patchOp{op: strings.ToLower(strings.TrimSpace(opName))}
		switch op.op {
		case "add", "replace", "remove":
		default:
			return nil, errorf(http.StatusBadRequest, "invalidSyntax", "operation %d: unknown op %q", i, opName)
		}
		if p := get(m, "path"); p != nil {
			s, ok := p.(string)
			if !ok {
				return nil, errorf(http.StatusBadRequest, "invalidPath", "operation %d: path is not a string", i)
			}
			op.path = s
		}
		vk := keyOf(m, "value")
		op.value, op.hasValue = m[vk]
		if budget -= max(1, weight(op.value, budget)); budget < 0 {
			return nil, errorf(http.StatusBadRequest, "tooMany",
				"PATCH changes more than %d attributes: each operation, and each attribute named in an object value, counts", maxPatchOps)
		}
		out = append(out, op)
	}
	return out, nil
}

// applyPatch applies the operations to a resource document in order; the
// caller converts the result back to a record, which validates it.
func applyPatch(rt *resourceType, doc map[string]any, ops []patchOp) error {
	for i := 0; i < len(ops); {
		if n := removeByValues(rt, doc, ops[i:]); n > 0 {
			i += n
			continue
		}
		if err := applyOp(rt, doc, ops[i]); err != nil {
			return err
		}
		i++
	}
	normalize(rt, doc)
	return nil
}

// valueRemoval is a remove operation of the shape Okta sends, one per
// member leaving a group: attr[value eq "…"].
type valueRemoval struct {
	urn, attr string
	key       string // the filter's spelling of "value"
	want      string
	filter    expr
}

func asValueRemoval(rt *resourceType, op patchOp) (valueRemoval, bool) {
	if op.op != "remove" {
		return valueRemoval{}, false
	}
	p, err := parsePatchPath(rt, op.path)
	if err != nil || p.filter == nil || p.sub != "" || rt.lookup(p.urn, p.attr).readOnly() {
		return valueRemoval{}, false
	}
	c, ok := p.filter.(*cmpExpr)
	if !ok || c.op != "eq" || c.path.urn != "" || c.path.filter != nil || c.path.sub != "" ||
		!strings.EqualFold(c.path.attr, "value") {
		return valueRemoval{}, false
	}
	want, ok := c.value.(string)
	if !ok || want == "" {
		return valueRemoval{}, false
	}
	return valueRemoval{urn: p.urn, attr: p.attr, key: c.path.attr, want: want, filter: p.filter}, true
}

// removeByValues applies a run of value removals from the same attribute
// at the head of ops in one pass over its values, and returns how many
// operations it applied (0 when ops does not start with one). Applied one
// by one, 1,000 removals from a group of 50,000 members compare 50
// million values inside the write transaction; the result is the same,
// as whether a value goes does not depend on the others.
func removeByValues(rt *resourceType, doc map[string]any, ops []patchOp) int {
	first, ok := asValueRemoval(rt, ops[0])
	if !ok {
		return 0
	}
	def := rt.lookup(first.urn, first.attr)
	// How compareAt compares a string value with the filter's.
	leaf := def.sub(first.key)
	if leaf != nil && leaf.Type == "complex" {
		leaf = leaf.sub("value")
	}
	fold := foldFor(leaf != nil && leaf.CaseExact)
	want := map[string]bool{}
	var filters []expr
	n := 0
	for ; n < len(ops); n++ {
		r, ok := asValueRemoval(rt, ops[n])
		if !ok || r.urn != first.urn || r.attr != first.attr || r.key != first.key {
			break
		}
		want[fold(r.want)] = true
		filters = append(filters, r.filter)
	}
	c := container(doc, first.urn, false)
	if c == nil {
		return n // removing from an extension the resource does not have
	}
	key := keyOf(c, first.attr)
	inner := scope{rt: rt, base: def}
	list := slices.DeleteFunc(asList(c[key]), func(el any) bool {
		m, ok := el.(map[string]any)
		if !ok {
			return false
		}
		if s, ok := get(m, first.key).(string); ok {
			return s != "" && want[fold(s)]
		}
		return slices.ContainsFunc(filters, func(f expr) bool { return matches(inner, f, m) })
	})
	c[key] = list
	dropEmpty(c, key)
	return n
}

func applyOp(rt *resourceType, doc map[string]any, op patchOp) error {
	if strings.TrimSpace(op.path) == "" {
		if op.op == "remove" {
			return errorf(http.StatusBadRequest, "noTarget", "remove needs a path")
		}
		obj, ok := op.value.(map[string]any)
		if !ok {
			return errorf(http.StatusBadRequest, "invalidValue", "%s without a path needs an object value", op.op)
		}
		// Each key is a path of its own: "active", "name.givenName",
		// "urn:…:enterprise:2.0:User:department", Entra's
		// `emails[type eq "work"].value`, or a schema URN whose value
		// holds that extension's attributes.
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			v := obj[k]
			if sub, ok := v.(map[string]any); ok && isExtensionKey(rt, k) {
				for _, sk := range slices.Sorted(maps.Keys(sub)) {
					p, err := parsePatchPath(rt, canonicalURN(rt, k)+":"+sk)
					if err != nil {
						return invalidPath("bad attribute %q in %s: %s", sk, k, err.(*Error).Detail)
					}
					if err := applyAt(rt, doc, op.op, p, sub[sk], true); err != nil {
						return err
					}
				}
				continue
			}
			p, err := parsePatchPath(rt, k)
			if err != nil {
				return invalidPath("bad attribute %q in a path-less value: %s", k, err.(*Error).Detail)
			}
			if err := applyAt(rt, doc, op.op, p, v, true); err != nil {
				return err
			}
		}
		return nil
	}
	p, err := parsePatchPath(rt, op.path)
	if err != nil {
		return err
	}
	if op.op != "remove" && !op.hasValue {
		return errorf(http.StatusBadRequest, "invalidValue", "%s %s needs a value", op.op, op.path)
	}
	return applyAt(rt, doc, op.op, p, op.value, false)
}

// isExtensionKey tells a key naming a whole extension schema
// ("urn:…:enterprise:2.0:User") from one naming an attribute in it. An
// unknown URN counts as a schema: its value is an object of attributes.
func isExtensionKey(rt *resourceType, k string) bool {
	if !strings.HasPrefix(strings.ToLower(k), "urn:") {
		return false
	}
	if rt.extension(k) != nil {
		return true
	}
	for _, s := range append([]*schema{rt.Core}, rt.Extensions...) {
		if len(k) > len(s.ID) && strings.EqualFold(k[:len(s.ID)], s.ID) {
			return false
		}
	}
	return true
}

func canonicalURN(rt *resourceType, k string) string {
	if s := rt.extension(k); s != nil {
		return s.ID
	}
	return k
}

// container returns the object holding top-level attributes of urn ("" is
// the resource itself), creating an extension object when create is set.
func container(doc map[string]any, urn string, create bool) map[string]any {
	if urn == "" {
		return doc
	}
	k := keyOf(doc, urn)
	m, ok := doc[k].(map[string]any)
	if !ok && create {
		m = map[string]any{}
		doc[k] = m
	}
	return m
}

// applyAt applies one operation at one path, by what the path names: a
// whole extension (applyExtension), an attribute (applyAttribute), a
// sub-attribute without a filter (applySub), or the values a filter
// selects (applyFiltered). implicit marks a path that came from a
// path-less value's key: read-only attributes there (Okta sends the
// group's id when renaming it) are skipped, not refused. A sub-attribute
// the path names is held to its own mutability (patchRefusal): an
// immutable one's add is refused where the value is found, if it has one.
func applyAt(rt *resourceType, doc map[string]any, op string, p fpath, value any, implicit bool) error {
	def := rt.lookup(p.urn, p.attr)
	if p.attr != "" && def.readOnly() {
		if implicit {
			return nil
		}
		return errorf(http.StatusBadRequest, "mutability", "attribute %s is read-only", p.attr)
	}
	if sub := def.sub(p.sub); p.sub != "" {
		if implicit && sub.readOnly() {
			return nil
		}
		if err := patchRefusal(sub, p.attr+"."+p.sub, op, false); err != nil {
			return err
		}
	}
	c := container(doc, p.urn, op != "remove")
	if c == nil {
		return nil // removing from an extension the resource does not have
	}
	switch {
	case p.attr == "":
		return applyExtension(rt, doc, op, p.urn, value, implicit)
	case p.filter != nil:
		return applyFiltered(rt, c, def, op, p, value)
	case p.sub != "":
		return applySub(c, def, op, p, value)
	default:
		return applyAttribute(c, def, op, p, value)
	}
}

// applyExtension handles a path naming a whole extension schema
// ("urn:…:enterprise:2.0:User"). Unlike the other cases it changes many
// attributes: remove drops the extension object, and add or replace takes
// an object whose keys are the extension's attributes, each applied at a
// path of its own.
func applyExtension(rt *resourceType, doc map[string]any, op, urn string, value any, implicit bool) error {
	if op == "remove" {
		delete(doc, keyOf(doc, urn))
		return nil
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return errorf(http.StatusBadRequest, "invalidValue", "%s needs an object value", urn)
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		sp, err := splitPath(rt, urn+":"+k)
		if err != nil {
			return invalidPath("bad attribute %q in %s", k, urn)
		}
		if err := applyAt(rt, doc, op, sp, obj[k], implicit); err != nil {
			return err
		}
	}
	return nil
}

// holdsList says whether the attribute holding cur is a list: its
// schema says so, it holds one already, or no schema defines it and a
// list is added or replaced.
func holdsList(def *attr, cur, value any, op string) bool {
	_, curIsList := cur.([]any)
	_, valIsList := value.([]any)
	return def != nil && def.Multi || curIsList || def == nil && valIsList && op != "remove"
}

// applyAttribute handles a path naming an attribute and nothing in it
// ("displayName", "emails", "name"): the operation is on the attribute's
// whole value. A multi-valued one is a list: add appends the values it
// lacks, replace sets the list, remove drops it or, given values, only
// those. A complex single-valued one is merged into by add and replace.
func applyAttribute(c map[string]any, def *attr, op string, p fpath, value any) error {
	key := keyOf(c, p.attr)
	cur := c[key]
	multi := holdsList(def, cur, value, op)
	switch op {
	case "add":
		switch {
		case multi:
			c[key] = appendUnique(asList(cur), asList(value), valueFold(def))
		case isMap(cur) && isMap(value):
			merge(cur.(map[string]any), value.(map[string]any))
		default:
			c[key] = value
		}
	case "replace":
		switch {
		case multi:
			c[key] = asList(value)
		case isMap(cur) && isMap(value):
			// RFC 7644 3.5.2.3: sub-attributes not given stay.
			merge(cur.(map[string]any), value.(map[string]any))
		default:
			c[key] = value
		}
	case "remove":
		if multi && value != nil {
			// Entra's legacy member removal: only the listed values go.
			c[key] = removeListed(asList(cur), asList(value), valueFold(def))
		} else {
			delete(c, key)
		}
	}
	dropEmpty(c, key)
	return nil
}

// applySub handles attr.sub without a filter ("name.givenName"). On a
// single-valued attribute it changes that one sub-attribute, creating the
// attribute for add and replace. On a multi-valued one only remove is
// taken, from every value: which value to add to or replace in is for a
// filter to say (emails[type eq "work"].value, applyFiltered).
func applySub(c map[string]any, def *attr, op string, p fpath, value any) error {
	key := keyOf(c, p.attr)
	cur, exists := c[key]
	if holdsList(def, cur, value, op) {
		if op == "remove" {
			for _, el := range asList(cur) {
				if m, ok := el.(map[string]any); ok {
					delete(m, keyOf(m, p.sub))
				}
			}
			return nil
		}
		return invalidPath("%s is multi-valued: select the values with a filter, as in %s[type eq \"work\"].%s", p.attr, p.attr, p.sub)
	}
	m, _ := cur.(map[string]any)
	if m == nil {
		if op == "remove" {
			return nil
		}
		if exists && cur != nil {
			return invalidPath("%s has no sub-attributes", p.attr)
		}
		m = map[string]any{}
		c[key] = m
	}
	sk := keyOf(m, p.sub)
	if err := refuseChange(def, p, m[sk], value, op); err != nil {
		return err
	}
	switch {
	case op == "remove":
		delete(m, sk)
	case isMap(m[sk]) && isMap(value) && op == "add":
		merge(m[sk].(map[string]any), value.(map[string]any))
	default:
		m[sk] = value
	}
	dropEmpty(c, key)
	return nil
}

// applyFiltered handles attr[filter] and attr[filter].sub: the operation
// is on each value of a multi-valued attribute the filter matches, not on
// the attribute. remove drops those values (or their sub-attribute); add
// and replace change them, and when none matches, add the value the
// filter's equalities describe.
func applyFiltered(rt *resourceType, c map[string]any, def *attr, op string, p fpath, value any) error {
	key := keyOf(c, p.attr)
	list := asList(c[key])
	inner := scope{rt: rt, base: def}
	var hits []int
	for i, el := range list {
		if m, ok := el.(map[string]any); ok && matches(inner, p.filter, m) {
			hits = append(hits, i)
		}
	}
	if op == "remove" {
		if p.sub != "" {
			for _, i := range hits {
				m := list[i].(map[string]any)
				delete(m, keyOf(m, p.sub))
			}
		} else {
			for j := len(hits) - 1; j >= 0; j-- {
				list = slices.Delete(list, hits[j], hits[j]+1)
			}
		}
		c[key] = list
		dropEmpty(c, key)
		return nil
	}
	if len(hits) == 0 {
		// Entra replaces emails[type eq "work"].value on a user who has
		// no work email; the filter's equalities describe the new value.
		tmpl, ok := template(p.filter)
		if !ok {
			return errorf(http.StatusBadRequest, "noTarget", "no value of %s matches the filter", p.attr)
		}
		list = append(list, tmpl)
		hits = []int{len(list) - 1}
	}
	for _, i := range hits {
		m := list[i].(map[string]any)
		switch {
		case p.sub != "":
			sk := keyOf(m, p.sub)
			if err := refuseChange(def, p, m[sk], value, op); err != nil {
				return err
			}
			m[sk] = value
		case isMap(value) && op == "add":
			merge(m, value.(map[string]any))
		case isMap(value):
			list[i] = maps.Clone(value.(map[string]any))
		default:
			return errorf(http.StatusBadRequest, "invalidValue", "a value of %s must be an object", p.attr)
		}
	}
	c[key] = list
	return nil
}

// refuseChange is patchRefusal for op setting the sub-attribute p names
// from cur to value: an immutable one may be added where it has no value,
// or added again with the one it has (a replace is refused before this,
// as patchRefusal refuses any but add).
func refuseChange(def *attr, p fpath, cur, value any, op string) error {
	if cur == nil || reflect.DeepEqual(cur, value) {
		return nil
	}
	return patchRefusal(def.sub(p.sub), p.attr+"."+p.sub, op, true)
}

// template builds the element a filter of equalities describes:
// type eq "work" -> {"type": "work"}.
func template(e expr) (map[string]any, bool) {
	switch e := e.(type) {
	case *cmpExpr:
		if e.op != "eq" || e.path.urn != "" || e.path.filter != nil || e.path.sub != "" || e.value == nil {
			return nil, false
		}
		return map[string]any{e.path.attr: e.value}, true
	case *logicExpr:
		if e.op != "and" {
			return nil, false
		}
		l, ok1 := template(e.l)
		r, ok2 := template(e.r)
		if !ok1 || !ok2 {
			return nil, false
		}
		maps.Copy(l, r)
		return l, true
	}
	return nil, false
}

func isMap(v any) bool { _, ok := v.(map[string]any); return ok }

func asList(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return slices.Clone(v)
	default:
		return []any{v}
	}
}

// merge copies src's sub-attributes into dst, matching names without
// regard to case.
func merge(dst, src map[string]any) {
	for k, v := range src {
		dst[keyOf(dst, k)] = v
	}
}

// sameValue decides whether two values of a multi-valued attribute are
// the same: by their "value" when both have one (a member is its user ID,
// whatever display it came with), else by deep equality.
func sameValue(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		av, bv := get(am, "value"), get(bm, "value")
		if av != nil && bv != nil {
			return reflect.DeepEqual(av, bv)
		}
	}
	return reflect.DeepEqual(a, b)
}

// foldFor is how string values compare: as they are when caseExact,
// else as the store compares names and emails (store.FoldName), so that
// what a PATCH treats as one value is what the store's indexes do.
func foldFor(caseExact bool) func(string) string {
	if caseExact {
		return func(s string) string { return s }
	}
	return store.FoldName
}

// valueFold is foldFor for the "value" sub-attribute of def's elements:
// emails.value compares without regard to case (RFC 7643 caseExact
// false), members.value (an ID) exactly; an attribute no schema defines,
// exactly.
func valueFold(def *attr) func(string) string {
	v := def.sub("value")
	return foldFor(v == nil || v.CaseExact)
}

// stringValue is the "value" of a multi-valued attribute's element when
// it is a string. Two such elements are the same value exactly when the
// strings are equal (after the attribute's fold, see valueFold), and
// never the same as an element without one (see sameValue), which lets a
// group of 50,000 members be indexed by member ID rather than compared
// pair by pair inside the write transaction.
func stringValue(el any) (string, bool) {
	m, ok := el.(map[string]any)
	if !ok {
		return "", false
	}
	s, ok := get(m, "value").(string)
	return s, ok
}

// valueSet answers sameValue(x, el) for any el of a list, in constant
// time for the elements with a string value.
type valueSet struct {
	fold  func(string) string // of the string values (valueFold)
	keyed map[string]bool
	other []any // compared with sameValue; few in practice
}

func newValueSet(list []any, fold func(string) string) *valueSet {
	s := &valueSet{fold: fold, keyed: make(map[string]bool, len(list))}
	for _, el := range list {
		s.add(el)
	}
	return s
}

func (s *valueSet) add(el any) {
	if k, ok := stringValue(el); ok {
		s.keyed[s.fold(k)] = true
	} else {
		s.other = append(s.other, el)
	}
}

func (s *valueSet) has(el any) bool {
	if k, ok := stringValue(el); ok {
		return s.keyed[s.fold(k)]
	}
	return slices.ContainsFunc(s.other, func(o any) bool { return sameValue(o, el) })
}

// appendUnique appends the elements of add whose value list does not hold
// yet, compared with fold: an address already there in other case stays
// as it is, once.
func appendUnique(list, add []any, fold func(string) string) []any {
	seen := newValueSet(list, fold)
	for _, v := range add {
		if !seen.has(v) {
			seen.add(v)
			list = append(list, v)
		}
	}
	return list
}

func removeListed(list, drop []any, fold func(string) string) []any {
	gone := newValueSet(drop, fold)
	return slices.DeleteFunc(list, gone.has)
}

// dropEmpty deletes an attribute left without a value.
func dropEmpty(c map[string]any, key string) {
	switch v := c[key].(type) {
	case nil:
		delete(c, key)
	case []any:
		if len(v) == 0 {
			delete(c, key)
		}
	case map[string]any:
		if len(v) == 0 {
			delete(c, key)
		}
	}
}

// normalize gives known attributes their canonical names, turns boolean
// strings into booleans, and leaves at most one primary value per
// multi-valued attribute (the last one marked), as RFC 7643 2.4 asks.
func normalize(rt *resourceType, doc map[string]any) {
	for _, k := range slices.Collect(maps.Keys(doc)) {
		if ext := rt.extension(k); ext != nil {
			if m, ok := doc[k].(map[string]any); ok {
				rename(doc, k, ext.ID)
				normalizeAttrs(ext.attr, m)
			}
		}
	}
	normalizeAttrs(func(name string) *attr { return rt.lookup("", name) }, doc)
}

func normalizeAttrs(lookup func(string) *attr, m map[string]any) {
	for _, k := range slices.Collect(maps.Keys(m)) {
		def := lookup(k)
		if def == nil {
			continue
		}
		rename(m, k, def.Name)
		m[def.Name] = normalizeValue(def, m[def.Name])
	}
}

func normalizeValue(def *attr, v any) any {
	switch def.Type {
	case "boolean":
		if b, ok := asBool(v); ok {
			return b
		}
	case "complex":
		if def.Multi {
			list, ok := v.([]any)
			if !ok {
				if !isScalar(v) {
					return v
				}
				list = []any{v}
			}
			primary := -1
			for i, el := range list {
				if isScalar(el) {
					// A bare value ("roles": "admin") is the value of
					// one element, as Entra's bare manager is below.
					list[i] = valueObject(def, el)
				}
				if m, ok := list[i].(map[string]any); ok {
					normalizeAttrs(def.sub, m)
					if b, _ := m["primary"].(bool); b {
						primary = i
					}
				}
			}
			for i, el := range list {
				if m, ok := el.(map[string]any); ok && i != primary {
					if b, _ := m["primary"].(bool); b {
						m["primary"] = false
					}
				}
			}
			return list
		}
		switch x := v.(type) {
		case map[string]any:
			normalizeAttrs(def.sub, x)
		case string, bool, json.Number, float64:
			// Entra sets the enterprise manager to the manager's bare ID;
			// /Schemas says manager is complex, so clients read
			// manager.value (RFC 7643 4.3).
			return valueObject(def, x)
		}
	}
	return v
}

// isScalar reports a JSON string, boolean or number: a bare value where
// a complex attribute's object, or a list of them, was due.
func isScalar(v any) bool {
	switch v.(type) {
	case string, bool, json.Number, float64:
		return true
	}
	return false
}

// valueObject is a bare value x given for complex attribute def as the
// object holding it as its value sub-attribute; x itself when def has
// none (checkTypes then refuses it).
func valueObject(def *attr, x any) any {
	if vd := def.sub("value"); vd != nil {
		return map[string]any{vd.Name: normalizeValue(vd, x)}
	}
	return x
}

// rename moves m[from] to m[to]; when both spellings are present the
// canonical one wins.
func rename(m map[string]any, from, to string) {
	if from == to {
		return
	}
	if _, ok := m[to]; !ok {
		m[to] = m[from]
	}
	delete(m, from)
}
