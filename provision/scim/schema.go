package scim

import (
	"net/http"
	"strings"
)

// Schema and message URNs of RFC 7643 and RFC 7644.
const (
	URNUser           = "urn:ietf:params:scim:schemas:core:2.0:User"
	URNGroup          = "urn:ietf:params:scim:schemas:core:2.0:Group"
	URNEnterpriseUser = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	urnListResponse   = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	urnPatchOp        = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	urnError          = "urn:ietf:params:scim:api:messages:2.0:Error"
	urnSPConfig       = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	urnResourceType   = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	urnSchema         = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// attr describes one attribute, as far as this server needs: the canonical
// spelling (attribute names are case-insensitive in SCIM), whether it is
// multi-valued, how strings compare in filters, and which types to coerce
// ("True" to true) before storing.
type attr struct {
	Name        string  `json:"name"`
	Type        string  `json:"type"`
	Multi       bool    `json:"multiValued"`
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required"`
	CaseExact   bool    `json:"caseExact"`
	Mutability  string  `json:"mutability"`
	Returned    string  `json:"returned"`
	Uniqueness  string  `json:"uniqueness"`
	Sub         []*attr `json:"subAttributes,omitempty"`
}

func (a *attr) sub(name string) *attr {
	if a == nil {
		return nil
	}
	for _, s := range a.Sub {
		if strings.EqualFold(s.Name, name) {
			return s
		}
	}
	return nil
}

func (a *attr) readOnly() bool { return a != nil && a.Mutability == "readOnly" }

func (a *attr) immutable() bool { return a != nil && a.Mutability == "immutable" }

// patchRefusal is the 400 mutability RFC 7644 3.5.2 answers a PATCH op on
// the attribute a (named name in the error) with, or nil: a client "MUST
// NOT modify an attribute that has mutability readOnly or immutable",
// but "MAY add a value to an immutable attribute if the attribute had no
// previous value". had says it has one.
func patchRefusal(a *attr, name, op string, had bool) error {
	if a.readOnly() || a.immutable() && (op != "add" || had) {
		return errorf(http.StatusBadRequest, "mutability", "attribute %s is %s", name, a.Mutability)
	}
	return nil
}

// schema is one SCIM schema (core or extension).
type schema struct {
	ID          string
	Name        string
	Description string
	Attrs       []*attr
}

func (s *schema) attr(name string) *attr {
	for _, a := range s.Attrs {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

// resourceType is User or Group: its core schema and extensions.
type resourceType struct {
	Name       string
	Endpoint   string // "/Users"
	Core       *schema
	Extensions []*schema
}

// extension returns the extension schema with the URN, ignoring case.
func (rt *resourceType) extension(urn string) *schema {
	for _, s := range rt.Extensions {
		if strings.EqualFold(s.ID, urn) {
			return s
		}
	}
	return nil
}

// lookup finds the definition of a top-level attribute; urn "" is the
// core schema. Unknown attributes return nil and are kept as they came.
func (rt *resourceType) lookup(urn, name string) *attr {
	if urn == "" || strings.EqualFold(urn, rt.Core.ID) {
		if a := rt.Core.attr(name); a != nil {
			return a
		}
		return commonAttr(name)
	}
	if s := rt.extension(urn); s != nil {
		return s.attr(name)
	}
	return nil
}

// commonAttr covers the attributes every resource has (RFC 7643 3.1).
func commonAttr(name string) *attr {
	switch strings.ToLower(name) {
	case "id":
		return &attr{Name: "id", Type: "string", CaseExact: true, Mutability: "readOnly", Returned: "always", Uniqueness: "server"}
	case "externalid":
		return &attr{Name: "externalId", Type: "string", CaseExact: true, Mutability: "readWrite", Returned: "default", Uniqueness: "none"}
	case "meta":
		// created and lastModified are dateTime: filters compare them as
		// instants (compareValue).
		meta := complexAttr("meta", false, with(str("resourceType"), func(a *attr) { a.CaseExact = true }),
			dateTime("created"), dateTime("lastModified"), ref("location"), with(str("version"), func(a *attr) { a.CaseExact = true }))
		for _, a := range append(meta.Sub, meta) {
			a.Mutability = "readOnly"
		}
		return meta
	case "schemas":
		return &attr{Name: "schemas", Type: "reference", Multi: true, CaseExact: true, Mutability: "readOnly", Returned: "always", Uniqueness: "none"}
	}
	return nil
}

// str, boolean, ref, ... build attribute definitions tersely; the values
// not given are the RFC 7643 defaults.
func str(name string) *attr {
	return &attr{Name: name, Type: "string", Mutability: "readWrite", Returned: "default", Uniqueness: "none"}
}

func boolean(name string) *attr {
	return &attr{Name: name, Type: "boolean", Mutability: "readWrite", Returned: "default", Uniqueness: "none"}
}

func dateTime(name string) *attr {
	return &attr{Name: name, Type: "dateTime", Mutability: "readWrite", Returned: "default", Uniqueness: "none"}
}

func ref(name string) *attr {
	return &attr{Name: name, Type: "reference", CaseExact: true, Mutability: "readWrite", Returned: "default", Uniqueness: "none"}
}

func complexAttr(name string, multi bool, sub ...*attr) *attr {
	return &attr{Name: name, Type: "complex", Multi: multi, Mutability: "readWrite", Returned: "default", Uniqueness: "none", Sub: sub}
}

// multiValued is the usual shape of emails, phoneNumbers and friends.
func multiValued(name string, extra ...*attr) *attr {
	sub := append([]*attr{str("value"), str("display"), str("type"), boolean("primary")}, extra...)
	return complexAttr(name, true, sub...)
}

func with(a *attr, f func(*attr)) *attr { f(a); return a }

// emailsDescription is what /Schemas says of emails.value about
// uniqueness. The attribute's uniqueness stays "none": RFC 7643 2.1 has it
// hold for every value, and a user's addresses other than the one the
// gateway keeps as its email are not checked (two users may share one),
// so "server" would claim what is not kept; the one that is, is said here.
const emailsDescription = "An email address of the user. The one the gateway keeps as the user's email " +
	"(the primary, else the work one, else the first) is unique across all users, compared without regard " +
	"to case: a write giving it to a second user gets 409 uniqueness. The user's other addresses are not checked."

// emailsAttr is the User's emails (RFC 7643 4.1.2).
func emailsAttr() *attr {
	a := multiValued("emails")
	a.sub("value").Description = emailsDescription
	return a
}

func userSchema() *schema {
	return &schema{
		ID: URNUser, Name: "User", Description: "User Account",
		Attrs: []*attr{
			with(str("userName"), func(a *attr) { a.Required, a.Uniqueness = true, "server" }),
			complexAttr("name", false, str("formatted"), str("familyName"), str("givenName"), str("middleName"),
				str("honorificPrefix"), str("honorificSuffix")),
			str("displayName"), str("nickName"), ref("profileUrl"), str("title"), str("userType"),
			str("preferredLanguage"), str("locale"), str("timezone"),
			boolean("active"),
			with(str("password"), func(a *attr) { a.Mutability, a.Returned = "writeOnly", "never" }),
			emailsAttr(), multiValued("phoneNumbers"), multiValued("ims"), multiValued("photos"),
			complexAttr("addresses", true, str("formatted"), str("streetAddress"), str("locality"), str("region"),
				str("postalCode"), str("country"), str("type"), boolean("primary")),
			with(complexAttr("groups", true,
				with(str("value"), func(a *attr) { a.Mutability = "readOnly" }),
				with(ref("$ref"), func(a *attr) { a.Mutability = "readOnly" }),
				with(str("display"), func(a *attr) { a.Mutability = "readOnly" }),
				with(str("type"), func(a *attr) { a.Mutability = "readOnly" })),
				func(a *attr) { a.Mutability = "readOnly" }),
			multiValued("entitlements"), multiValued("roles"), multiValued("x509Certificates"),
		},
	}
}

func enterpriseUserSchema() *schema {
	return &schema{
		ID: URNEnterpriseUser, Name: "EnterpriseUser", Description: "Enterprise User",
		Attrs: []*attr{
			str("employeeNumber"), str("costCenter"), str("organization"), str("division"), str("department"),
			complexAttr("manager", false, str("value"), ref("$ref"),
				with(str("displayName"), func(a *attr) { a.Mutability = "readOnly" })),
		},
	}
}

func groupSchema() *schema {
	return &schema{
		ID: URNGroup, Name: "Group", Description: "Group",
		Attrs: []*attr{
			with(str("displayName"), func(a *attr) { a.Required, a.Uniqueness = true, "server" }),
			complexAttr("members", true,
				with(str("value"), func(a *attr) { a.CaseExact, a.Mutability = true, "immutable" }),
				with(ref("$ref"), func(a *attr) { a.Mutability = "immutable" }),
				with(str("display"), func(a *attr) { a.Mutability = "readOnly" }),
				with(str("type"), func(a *attr) { a.Mutability = "immutable" })),
		},
	}
}
