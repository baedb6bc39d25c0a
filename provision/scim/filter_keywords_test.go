package scim_test

import (
	"strings"
	"testing"
)

// The logical keywords and, or and not are case-insensitive as the
// operators are (RFC 7644 3.4.2.2): a directory that writes "AND" gets
// the same answer as one that writes "and", not a 400. So are the
// literals true, false and null, as Entra's "True" and "False" are
// elsewhere: active eq True is a question, not a syntax error.
func TestFilterKeywordsAndLiteralsAnyCase(t *testing.T) {
	e := filterFixture(t)
	for _, tt := range []struct{ filter, want string }{
		{`userName eq "alice@x.io" AND active eq true`, "alice@x.io"},
		{`userName eq "bob@x.io" And active eq true`, ""},
		{`userName eq "alice@x.io" OR externalId eq "e-bob"`, "alice@x.io,bob@x.io"},
		{`userName eq "carol" and NOT (name.givenName eq "Carol")`, ""},
		{`userName eq "carol" and Not (name.givenName eq "Nobody")`, "carol"},
		{`userName eq "alice@x.io" and active eq True`, "alice@x.io"},
		{`userName eq "bob@x.io" and active eq FALSE`, "bob@x.io"},
		{`userName eq "bob@x.io" and active eq TRUE`, ""},
		{`userName eq "alice@x.io" and name.givenName eq NULL`, "alice@x.io"},
		{`userName eq "carol" and name.givenName eq Null`, ""},
	} {
		t.Run(tt.filter, func(t *testing.T) {
			e.t = t
			r := e.do("GET", "/Users?filter="+q(tt.filter), "")
			total(t, r) // fails on anything but a 200 list
			if got := strings.Join(names(t, r), ","); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A value filter belongs on the multi-valued attribute, not after one of
// its sub-attributes: emails.value[type eq "work"] is not a SCIM path,
// and is refused rather than read as emails[type eq "work"].value.
func TestFilterValueFilterAfterSubAttributeRefused(t *testing.T) {
	e := filterFixture(t)
	for _, f := range []string{
		`emails.value[type eq "work"] eq "carol@x.io"`,
		`userName eq "carol" and emails.value[type eq "work"] eq "carol@x.io"`,
	} {
		scimError(t, e.do("GET", "/Users?filter="+q(f), ""), 400, "invalidFilter")
	}
}

// An attribute under an extension's URN is not the core attribute of the
// same name, so the core indexes do not serve it: a filter on it is
// refused like any other unindexed filter, not answered from the wrong
// index (which would find nobody, as if nobody matched).
func TestFilterExtensionAttributeNotServedByCoreIndex(t *testing.T) {
	e := filterFixture(t)
	for _, f := range []string{
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:externalId eq "e-bob"`,
		`urn:example:custom:2.0:User:userName eq "bob@x.io"`,
	} {
		scimError(t, e.do("GET", "/Users?filter="+q(f), ""), 400, "invalidFilter")
	}
}

// A value filter whose equalities are joined by or names several values,
// which one index read cannot serve: refused, not answered with the
// users of one side only.
func TestFilterValueFilterOrNotServedByOneSide(t *testing.T) {
	e := filterFixture(t)
	scimError(t, e.do("GET", "/Users?filter="+q(`emails[value eq "alice@x.io" or value eq "carol@x.io"]`), ""), 400, "invalidFilter")
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"Eng","members":[{"value":"{{alice}}"}]}`).body["id"].(string)
	e.must(201, "POST", "/Groups", `{"displayName":"Ops","members":[{"value":"{{carol}}"}]}`)
	scimError(t, e.do("GET", "/Groups?filter="+q(`members[value eq "{{alice}}" or value eq "{{carol}}"]`), ""), 400, "invalidFilter")
}

// pr may follow a value path with a sub-attribute, as any other
// operator: emails[type eq "work"].value pr asks whether the user has a
// work address.
func TestFilterPresentAfterValuePath(t *testing.T) {
	e := filterFixture(t)
	for _, tt := range []struct{ filter, want string }{
		{`userName eq "carol" and emails[type eq "work"].value pr`, "carol"},
		{`userName eq "alice@x.io" and emails[type eq "home"].value pr`, ""},
		{`userName eq "carol" and emails[type eq "home"] pr`, "carol"},
	} {
		t.Run(tt.filter, func(t *testing.T) {
			e.t = t
			r := e.do("GET", "/Users?filter="+q(tt.filter), "")
			total(t, r)
			if got := strings.Join(names(t, r), ","); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// An empty string is no value (RFC 7644 3.4.2.2: pr is "non-empty, non-
// null"), and an attribute no schema defines compares without regard to
// case, as the schema's default caseExact=false has it.
func TestFilterEmptyAndUnknownAttributes(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.must(201, "POST", "/Users", `{"userName":"ada","nickName":"","favouriteColour":"Blue"}`)
	for _, tt := range []struct {
		filter string
		want   int
	}{
		{`userName eq "ada" and nickName pr`, 0},
		{`userName eq "ada" and nickName eq null`, 1},
		{`userName eq "ada" and nickName ne null`, 0},
		{`userName eq "ada" and favouriteColour eq "blue"`, 1},
		{`userName eq "ada" and favouriteColour sw "BL"`, 1},
		{`userName eq "ada" and favouriteColour ne "BLUE"`, 0},
	} {
		if n := total(t, e.must(200, "GET", "/Users?filter="+q(tt.filter), "")); n != tt.want {
			t.Errorf("%s: %d results, want %d", tt.filter, n, tt.want)
		}
	}
}
