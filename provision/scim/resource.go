package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// How a document becomes a record: create (POST), replace (PUT: what the
// body lacks is cleared) or patch (the document is the stored resource
// with the operations applied).
const (
	modeCreate = iota
	modeReplace
	modePatch
)

func timeString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// version is a weak ETag that changes with every write of the record.
func version(updated time.Time) string {
	return `W/"` + strconv.FormatInt(updated.UnixNano(), 36) + `"`
}

func metaFor(kind string, created, updated time.Time, loc string) map[string]any {
	return map[string]any{
		"resourceType": kind,
		"created":      timeString(created),
		"lastModified": timeString(updated),
		"location":     loc,
		"version":      version(updated),
	}
}

// decodeObject reads a stored JSON object keeping numbers as json.Number.
func decodeObject(raw []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(raw) == 0 {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode stored SCIM attributes: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// ---- users ----

// userDoc renders the attributes of u a client can write: the document a
// PATCH is applied to, and the core of every response.
func (h *Handler) userDoc(u *store.User) (map[string]any, error) {
	d, err := decodeObject(u.SCIMAttributes)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.ID, err)
	}
	// A user stored before userFromDoc folded the core URN may hold a
	// password under it: it is never returned, and the next write, which
	// starts from this document (PATCH) or replaces it, drops it.
	foldCoreURN(h.users, d)
	dropWriteOnly(h.users, d)
	d["id"] = u.ID
	if u.UserName != "" {
		d["userName"] = u.UserName
	}
	if u.ExternalID != "" {
		d["externalId"] = u.ExternalID
	}
	if u.DisplayName != "" {
		d["displayName"] = u.DisplayName
	}
	name, _ := d["name"].(map[string]any)
	if name == nil {
		name = map[string]any{}
	}
	if u.FirstName != "" {
		name["givenName"] = u.FirstName
	}
	if u.LastName != "" {
		name["familyName"] = u.LastName
	}
	if len(name) > 0 {
		d["name"] = name
	}
	d["active"] = u.Active
	var emails []any
	for _, e := range u.Emails {
		m := map[string]any{"value": e.Value}
		if e.Type != "" {
			m["type"] = e.Type
		}
		if e.Primary {
			m["primary"] = true
		}
		if e.Display != "" {
			m["display"] = e.Display
		}
		emails = append(emails, m)
	}
	if len(emails) == 0 && u.Email != "" {
		// A JIT user's one address, in the shape Entra and Okta map.
		emails = []any{map[string]any{"value": u.Email, "type": "work", "primary": true}}
	}
	if len(emails) > 0 {
		d["emails"] = emails
	}
	return d, nil
}

// userOut is the full representation of u in a response, read in tx.
func (h *Handler) userOut(tx store.Tx, r *http.Request, u *store.User, refs []store.GroupRef) (map[string]any, error) {
	d, err := h.userDoc(u)
	if err != nil {
		return nil, err
	}
	if _, ok := d["userName"]; !ok {
		// userName is required in a response, and unique: u has none
		// stored (a JIT user from before JIT gave such a user its ID, or
		// one a bolt migration found clashing), and is shown the one JIT
		// would give it now, its email only when that is no one's
		// userName. Only such users cost the lookup.
		name, err := provision.JITUserName(tx, u)
		if err != nil {
			return nil, err
		}
		d["userName"] = name
	}
	schemas := []any{URNUser}
	for _, k := range slices.Sorted(maps.Keys(d)) {
		if m, ok := d[k].(map[string]any); ok && isURN(k) {
			if len(m) == 0 {
				// Stored before userFromDoc dropped empty extensions.
				delete(d, k)
				continue
			}
			schemas = append(schemas, k)
		}
	}
	d["schemas"] = schemas
	groups := make([]any, 0, len(refs))
	for _, g := range refs {
		groups = append(groups, map[string]any{
			"value": g.ID, "display": g.DisplayName, "type": "direct", "$ref": h.location(r, "Group", g.ID),
		})
	}
	d["groups"] = groups
	d["meta"] = metaFor("User", u.Created, u.Updated, h.location(r, "User", u.ID))
	return d, nil
}

// isURN reports whether a resource's key is an extension's URN.
func isURN(k string) bool { return len(k) > 4 && strings.EqualFold(k[:4], "urn:") }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func invalidValue(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, "invalidValue", format, args...)
}

// keyAttr is an attribute whose value the store indexes.
type keyAttr struct{ name, value string }

// checkKeys refuses, with 400 invalidValue naming the attribute and why,
// values the store would refuse to index (store.CheckIndexed: too long,
// also once case-folded, not UTF-8, or with a control character such as a
// NUL or a newline). Checked here so that the client learns which
// attribute and why; the store refuses them as well (see fail).
func checkKeys(attrs ...keyAttr) error {
	for _, a := range attrs {
		switch err := store.CheckIndexed(a.name, a.value); {
		case err == nil:
		case errors.Is(err, store.ErrValueTooLong) && len(a.value) <= store.MaxKeyBytes:
			return invalidValue("%s is %d bytes long once case-folded; at most %d are allowed", a.name, len(store.FoldName(a.value)), store.MaxKeyBytes)
		case errors.Is(err, store.ErrValueTooLong):
			return invalidValue("%s is %d bytes long; at most %d are allowed", a.name, len(a.value), store.MaxKeyBytes)
		case errors.Is(err, store.ErrNotUTF8):
			return invalidValue("%s must be UTF-8 text", a.name)
		default:
			return invalidValue("%s must not contain control characters", a.name)
		}
	}
	return nil
}

// stringAttr reads an optional string attribute, trimmed of surrounding
// white space: for user names, emails, IDs and personal names, a space at
// either end is a typo in the directory, not a different value.
func stringAttr(d map[string]any, name string) (string, error) {
	s, err := exactStringAttr(d, name)
	return strings.TrimSpace(s), err
}

// exactStringAttr reads an optional string attribute as sent. A group's
// displayName is read this way: it is what access rules and the groups
// header compare, and " admins" is another group than "admins" (trimming it
// would both hand its members the real group's access and answer the real
// group's creation with 409). docs/security.md, "Groups".
func exactStringAttr(d map[string]any, name string) (string, error) {
	v, ok := d[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalidValue("%s must be a string", name)
	}
	return s, nil
}

// userFromDoc turns a normalized document into the record to store,
// starting from old (nil on create). Typed fields are replaced from the
// document; attributes without a field of their own go to SCIMAttributes;
// id, meta, schemas and groups (read-only) are dropped, and so is every
// attribute the schema says is never returned (password: never stored,
// the gateway signs users in through their IdP), however it was spelled.
// d is changed: attributes sent under the core schema's URN move to the
// top level, where the caller reads them too (active).
func (h *Handler) userFromDoc(d map[string]any, old *store.User, mode int) (*store.User, error) {
	var u store.User
	if old != nil {
		u = *old
	}
	foldCoreURN(h.users, d)
	dropWriteOnly(h.users, d)
	if err := checkTypes(h.users, d, storedAttributes(old)); err != nil {
		return nil, err
	}
	extras := map[string]any{}
	for k, v := range d {
		switch k {
		case "id", "meta", "schemas", "groups",
			"userName", "externalId", "displayName", "name", "active", "emails":
		default:
			if m, ok := v.(map[string]any); ok && len(m) == 0 && isURN(k) {
				// An extension whose last attribute a PATCH removed (or
				// that was sent empty) is not kept: the user no longer
				// has it, in storage or in schemas.
				continue
			}
			extras[k] = v
		}
	}

	userName, err := stringAttr(d, "userName")
	if err != nil {
		return nil, err
	}
	if userName == "" && (mode != modePatch || u.UserName != "") {
		return nil, invalidValue("userName is required")
	}
	u.UserName = userName
	if u.ExternalID, err = stringAttr(d, "externalId"); err != nil {
		return nil, err
	}
	if u.DisplayName, err = stringAttr(d, "displayName"); err != nil {
		return nil, err
	}
	if err := checkKeys(keyAttr{"userName", u.UserName}, keyAttr{"externalId", u.ExternalID}, keyAttr{"displayName", u.DisplayName}); err != nil {
		return nil, err
	}

	u.FirstName, u.LastName = "", ""
	if raw, ok := d["name"]; ok && raw != nil {
		name, ok := raw.(map[string]any)
		if !ok {
			return nil, invalidValue("name must be an object")
		}
		rest := maps.Clone(name)
		if u.FirstName, err = stringAttr(name, "givenName"); err != nil {
			return nil, err
		}
		if u.LastName, err = stringAttr(name, "familyName"); err != nil {
			return nil, err
		}
		delete(rest, "givenName")
		delete(rest, "familyName")
		if len(rest) > 0 {
			extras["name"] = rest
		}
	}

	switch v, ok := d["active"]; {
	case ok && v != nil:
		b, ok := asBool(v)
		if !ok {
			return nil, invalidValue("active must be a boolean")
		}
		u.Active = b
	case mode == modeCreate:
		u.Active = true
	}
	// PUT and PATCH without active keep the current state: a client that
	// omits it means neither to deactivate nor to reactivate.

	if u.Emails, u.Email, err = emailsFrom(d["emails"]); err != nil {
		return nil, err
	}
	if err := checkKeys(keyAttr{"emails.value", u.Email}); err != nil {
		return nil, err
	}
	// The address the email index holds; another of emails is checked
	// when a write makes it that one.
	if err := provision.CheckEmailDomain(u.Email); err != nil {
		return nil, invalidValue("emails.value: %v", err)
	}

	if err := h.checkUnknown(extras, old); err != nil {
		return nil, err
	}
	u.SCIMAttributes = nil
	if len(extras) > 0 {
		raw, err := json.Marshal(extras)
		if err != nil {
			return nil, invalidValue("attributes cannot be stored: %v", err)
		}
		u.SCIMAttributes = raw
	}
	return &u, nil
}

// checkTypes refuses, with 400 invalidValue naming the attribute, a value
// of another JSON type than the schema gives it (RFC 7643 2.3, RFC 7644
// 3.12): the schemas served at /Schemas are the rule, so that no resource
// contradicts them. Attributes no schema defines are kept as they come;
// read-only ones (id, meta, schemas, groups) are dropped by the caller.
// Boolean strings and bare values for complex attributes were normalized
// before (normalize). A value equal to the one in stored (the user's
// attributes as kept) passes whatever its type: a user whose stored
// attributes do not fit the schemas stays writable (deactivation above
// all).
func checkTypes(rt *resourceType, d, stored map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(d)) {
		if ext := rt.extension(k); ext != nil {
			m, ok := d[k].(map[string]any)
			if !ok {
				if d[k] != nil {
					return invalidValue("%s must be an object of the extension's attributes", ext.ID)
				}
				continue
			}
			prev, _ := get(stored, k).(map[string]any)
			for _, name := range slices.Sorted(maps.Keys(m)) {
				if def := ext.attr(name); def != nil {
					if err := checkType(def, ext.ID+":"+def.Name, m[name], get(prev, name)); err != nil {
						return err
					}
				}
			}
			continue
		}
		if def := rt.lookup("", k); def != nil && !def.readOnly() {
			if err := checkType(def, def.Name, d[k], get(stored, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// storedAttributes is what checkTypes compares a user's new attributes
// with: the ones kept for old (nil: a user being created, or none kept).
func storedAttributes(old *store.User) map[string]any {
	if old == nil {
		return nil
	}
	stored, _ := decodeObject(old.SCIMAttributes)
	return stored
}

// checkType checks v, the value of the attribute def called name, and
// what it holds; prev is its stored value (nil: none).
func checkType(def *attr, name string, v, prev any) error {
	if v == nil || reflect.DeepEqual(v, prev) {
		return nil
	}
	if def.Multi {
		list, ok := v.([]any)
		if !ok {
			return invalidValue("%s is multi-valued: it must be a list", name)
		}
		one := *def
		one.Multi = false
		prevList, _ := prev.([]any)
		for i, el := range list {
			var p any
			if i < len(prevList) {
				p = prevList[i]
			}
			if err := checkType(&one, name, el, p); err != nil {
				return err
			}
		}
		return nil
	}
	ok := true
	switch def.Type {
	case "complex":
		m, isMap := v.(map[string]any)
		if !isMap {
			return invalidValue("%s must be an object", name)
		}
		prevMap, _ := prev.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if sub := def.sub(k); sub != nil {
				if err := checkType(sub, name+"."+sub.Name, m[k], get(prevMap, k)); err != nil {
					return err
				}
			}
		}
	case "boolean":
		_, ok = asBool(v)
	case "integer", "decimal":
		_, isNumber := v.(json.Number)
		_, isFloat := v.(float64)
		ok = isNumber || isFloat
	default: // string, reference, binary, dateTime
		_, ok = v.(string)
	}
	if !ok {
		return invalidValue("%s must be a %s", name, def.Type)
	}
	return nil
}

// foldCoreURN moves what a document holds under its core schema's URN to
// the top level, where the schema's attributes are: a fully qualified name
// is the same attribute (RFC 7644 3.10), so
// "urn:ietf:params:scim:schemas:core:2.0:User:password" is password, and a
// "urn:ietf:params:scim:schemas:core:2.0:User" object holds core
// attributes. Kept as they came, they were stored as an unknown extension,
// a password with them, and shown by the admin API, the CLI and backups.
// The top-level spelling wins over a qualified one. A core URN whose value
// is not an object names no attribute and is dropped.
func foldCoreURN(rt *resourceType, d map[string]any) {
	core := rt.Core.ID
	for _, k := range slices.Sorted(maps.Keys(d)) {
		var moved map[string]any
		switch {
		case strings.EqualFold(k, core):
			moved, _ = d[k].(map[string]any)
		case len(k) > len(core)+1 && strings.EqualFold(k[:len(core)], core) && k[len(core)] == ':':
			moved = map[string]any{k[len(core)+1:]: d[k]}
		default:
			continue
		}
		delete(d, k)
		for _, name := range slices.Sorted(maps.Keys(moved)) {
			if keyOfFold(d, name) == "" {
				d[name] = moved[name]
			}
		}
	}
	normalizeAttrs(func(name string) *attr { return rt.lookup("", name) }, d)
}

// keyOfFold returns the key of m that is name ignoring case, or "".
func keyOfFold(m map[string]any, name string) string {
	for k := range m {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return ""
}

// dropWriteOnly removes, at any depth of the core schema and of each
// extension, every attribute the schema says is never returned or only
// written (RFC 7643 7: returned "never", mutability "writeOnly"): what a
// client sends of them is not kept, so no answer, admin view or backup
// can hold it. It also removes the readOnly sub-attributes of complex
// attributes (the enterprise manager.displayName): RFC 7644 3.3 has the
// server ignore readOnly values a client sends, and one stored as sent
// would be returned to every client as if the server had set it. (The
// top-level readOnly attributes, id, meta and groups, are never stored:
// userFromDoc skips them.)
func dropWriteOnly(rt *resourceType, d map[string]any) {
	dropWriteOnlyAttrs(func(name string) *attr { return rt.lookup("", name) }, d, false)
	for k, v := range d {
		if ext := rt.extension(k); ext != nil {
			if m, ok := v.(map[string]any); ok {
				dropWriteOnlyAttrs(ext.attr, m, false)
			}
		}
	}
}

// dropWriteOnlyAttrs is dropWriteOnly on the attributes of m; nested says
// they are sub-attributes.
func dropWriteOnlyAttrs(lookup func(string) *attr, m map[string]any, nested bool) {
	for k, v := range m {
		def := lookup(k)
		switch {
		case def == nil:
		case def.Mutability == "writeOnly" || def.Returned == "never" || nested && def.readOnly():
			delete(m, k)
		case def.Type == "complex":
			switch x := v.(type) {
			case map[string]any:
				dropWriteOnlyAttrs(def.sub, x, true)
			case []any:
				for _, el := range x {
					if sub, ok := el.(map[string]any); ok {
						dropWriteOnlyAttrs(def.sub, sub, true)
					}
				}
			}
		}
	}
}

// maxUnknownAttrs bounds the attributes a user keeps that the schema does
// not know: they are stored as sent and returned in every response, so
// without a bound a client could grow a user without end, a PATCH at a
// time. Directories send a handful of custom attributes.
const maxUnknownAttrs = 100

// checkUnknown refuses a user with more than maxUnknownAttrs attributes
// the schema does not know, unless it has no more than old had: a user
// stored before the bound must stay writable (deactivation above all).
func (h *Handler) checkUnknown(extras map[string]any, old *store.User) error {
	n := unknownAttrs(h.users, extras)
	if n <= maxUnknownAttrs {
		return nil
	}
	if old != nil {
		if d, err := decodeObject(old.SCIMAttributes); err == nil && n <= unknownAttrs(h.users, d) {
			return nil
		}
	}
	return invalidValue("the user would have %d attributes that are not in its schemas; at most %d are kept", n, maxUnknownAttrs)
}

// unknownAttrs counts, in a user's stored attributes, the ones no schema
// defines, each with the attributes under it. An extension the resource
// type does not know counts as one attribute plus its own.
func unknownAttrs(rt *resourceType, d map[string]any) int {
	n := 0
	core := map[string]any{}
	for k, v := range d {
		if ext := rt.extension(k); ext != nil {
			n += unknownIn(ext.attr, v)
		} else {
			core[k] = v
		}
	}
	return n + unknownIn(func(name string) *attr { return rt.lookup("", name) }, core)
}

// unknownIn counts the attributes of object v that lookup does not know,
// looking into the known single-valued complex ones (name, manager).
func unknownIn(lookup func(string) *attr, v any) int {
	m, _ := v.(map[string]any)
	n := 0
	for k, x := range m {
		switch def := lookup(k); {
		case def == nil:
			n += 1 + attrsUnder(x)
		case def.Type == "complex" && !def.Multi:
			n += unknownIn(def.sub, x)
		}
	}
	return n
}

// attrsUnder counts the attribute names in v, at any depth.
func attrsUnder(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			n += 1 + attrsUnder(x)
		}
	case []any:
		for _, x := range v {
			n += attrsUnder(x)
		}
	}
	return n
}

// emailsFrom reads the emails attribute and picks the address the gateway
// uses: the primary one, else the first work one, else the first.
func emailsFrom(v any) ([]store.Email, string, error) {
	if v == nil {
		return nil, "", nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, "", invalidValue("emails must be a list")
	}
	var out []store.Email
	for _, el := range list {
		m, ok := el.(map[string]any)
		if !ok {
			return nil, "", invalidValue("each email must be an object")
		}
		var e store.Email
		var err error
		if e.Value, err = stringAttr(m, "value"); err != nil {
			return nil, "", err
		}
		if e.Value == "" {
			continue // e.g. Entra removed emails[type eq "work"].value
		}
		if e.Type, err = stringAttr(m, "type"); err != nil {
			return nil, "", err
		}
		if e.Display, err = stringAttr(m, "display"); err != nil {
			return nil, "", err
		}
		if p, ok := m["primary"]; ok && p != nil {
			if e.Primary, ok = asBool(p); !ok {
				return nil, "", invalidValue("emails.primary must be a boolean")
			}
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, "", nil
	}
	pick := 0
	if i := slices.IndexFunc(out, func(e store.Email) bool { return e.Primary }); i >= 0 {
		pick = i
	} else if i := slices.IndexFunc(out, func(e store.Email) bool { return strings.EqualFold(e.Type, "work") }); i >= 0 {
		pick = i
	}
	return out, out[pick].Value, nil
}

// ---- groups ----

func (h *Handler) groupDoc(g *store.Group) map[string]any {
	d := map[string]any{"id": g.ID, "displayName": g.DisplayName}
	if g.ExternalID != "" {
		d["externalId"] = g.ExternalID
	}
	members := make([]any, 0, len(g.Members))
	for _, m := range g.Members {
		members = append(members, map[string]any{"value": m})
	}
	d["members"] = members
	return d
}

func (h *Handler) groupOut(r *http.Request, g *store.Group) map[string]any {
	d := h.groupDoc(g)
	for _, m := range d["members"].([]any) {
		mm := m.(map[string]any)
		mm["type"] = "User"
		mm["$ref"] = h.location(r, "User", mm["value"].(string))
	}
	d["schemas"] = []any{URNGroup}
	d["meta"] = metaFor("Group", g.Created, g.Updated, h.location(r, "Group", g.ID))
	return d
}

// groupFromDoc reads a normalized group document. Member IDs are checked
// against the store by the caller.
func (h *Handler) groupFromDoc(d map[string]any, old *store.Group) (*store.Group, error) {
	var g store.Group
	if old != nil {
		g = *old
	}
	if err := checkTypes(h.groups, d, nil); err != nil {
		return nil, err
	}
	var err error
	if g.DisplayName, err = exactStringAttr(d, "displayName"); err != nil {
		return nil, err
	}
	if strings.TrimSpace(g.DisplayName) == "" {
		return nil, invalidValue("displayName is required")
	}
	if g.ExternalID, err = stringAttr(d, "externalId"); err != nil {
		return nil, err
	}
	if err := checkKeys(keyAttr{"displayName", g.DisplayName}, keyAttr{"externalId", g.ExternalID}); err != nil {
		return nil, err
	}
	g.Members = nil
	if raw, ok := d["members"]; ok && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			return nil, invalidValue("members must be a list")
		}
		for _, el := range list {
			m, ok := el.(map[string]any)
			if !ok {
				return nil, invalidValue("each member must be an object")
			}
			id, err := stringAttr(m, "value")
			if err != nil || id == "" {
				return nil, invalidValue("each member needs a value (the user's id)")
			}
			g.Members = append(g.Members, id)
		}
	}
	return &g, nil
}

// ---- attributes / excludedAttributes (RFC 7644 3.9) ----

// project applies the attributes and excludedAttributes query parameters
// to a response document. id and schemas are always returned.
func project(rt *resourceType, d map[string]any, attributes, excluded string) map[string]any {
	if attributes != "" {
		out := map[string]any{"id": d["id"], "schemas": d["schemas"]}
		for _, p := range paths(rt, attributes) {
			src := container(d, p.urn, false)
			if src == nil {
				continue
			}
			dst := container(out, p.urn, true)
			if p.attr == "" {
				maps.Copy(dst, src)
				continue
			}
			k := keyOf(src, p.attr)
			v, ok := src[k]
			if !ok {
				continue
			}
			if p.sub == "" {
				dst[k] = v
				continue
			}
			dst[k] = pickSub(v, p.sub, dst[k])
		}
		return out
	}
	for _, p := range paths(rt, excluded) {
		if p.urn == "" && (p.attr == "id" || p.attr == "schemas") {
			continue
		}
		c := container(d, p.urn, false)
		if c == nil {
			continue
		}
		if p.attr == "" {
			delete(d, keyOf(d, p.urn))
			continue
		}
		k := keyOf(c, p.attr)
		if p.sub == "" {
			delete(c, k)
			continue
		}
		for _, el := range asList(c[k]) {
			if m, ok := el.(map[string]any); ok {
				delete(m, keyOf(m, p.sub))
			}
		}
	}
	return d
}

// pickSub keeps one sub-attribute of a complex (or multi-valued complex)
// value, adding to what an earlier path already picked.
func pickSub(v any, sub string, have any) any {
	switch v := v.(type) {
	case map[string]any:
		m, _ := have.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		if x, ok := v[keyOf(v, sub)]; ok {
			m[keyOf(v, sub)] = x
		}
		return m
	case []any:
		prev, _ := have.([]any)
		out := make([]any, len(v))
		for i, el := range v {
			var h any
			if i < len(prev) {
				h = prev[i]
			}
			out[i] = pickSub(el, sub, h)
		}
		return out
	}
	return have
}

func paths(rt *resourceType, list string) []fpath {
	var out []fpath
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if p, err := splitPath(rt, s); err == nil {
			out = append(out, p)
		}
	}
	return out
}
