package mapping

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

const (
	transientFormat = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	emailFormat     = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	entraUPNClaim   = claimsWS2005 + "name"
)

// entraSAMLDefaults is the claim set Entra sends for a new enterprise app
// before anyone edits "Attributes & Claims", plus the object ID and groups.
func entraSAMLDefaults() map[string][]string {
	return map[string][]string{
		entraObjectID: {"5f1b3c1e-8e2a-4a5b-9d1c-0a6f3e2b7c11"},
		"http://schemas.microsoft.com/identity/claims/tenantid":         {"72f988bf-86f1-41af-91ab-2d7cd011db47"},
		"http://schemas.microsoft.com/identity/claims/identityprovider": {"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"},
		"http://schemas.microsoft.com/claims/authnmethodsreferences":    {"http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"},
		"http://schemas.microsoft.com/identity/claims/displayname":      {"Alice Martin"},
		entraGivenName:    {"Alice"},
		entraSurname:      {"Martin"},
		entraEmailAddress: {"alice.martin@contoso.com"},
		entraUPNClaim:     {"alice@contoso.onmicrosoft.com"},
		entraGroups: {
			"0e6c7f2a-1111-4c1b-9a55-3b0c5d1e2f01",
			"9a8b7c6d-2222-4e3f-8a1b-2c3d4e5f6a02",
			"0e6c7f2a-1111-4c1b-9a55-3b0c5d1e2f01",
		},
	}
}

// entraOIDCClaims is a v2.0 ID token's claims, flattened as idp.Assertion
// documents: sub is pairwise and differs from oid.
func entraOIDCClaims() map[string][]string {
	return map[string][]string{
		"aud":                {"6731de76-14a6-49ae-97bc-6eba6914391e"},
		"iss":                {"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"},
		"iat":                {"1700000000"},
		"nbf":                {"1700000000"},
		"exp":                {"1700003600"},
		"name":               {"Alice Martin"},
		"oid":                {"5f1b3c1e-8e2a-4a5b-9d1c-0a6f3e2b7c11"},
		"preferred_username": {"alice@contoso.com"},
		"sub":                {"AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ"},
		"tid":                {"72f988bf-86f1-41af-91ab-2d7cd011db47"},
		"uti":                {"AbCdEf123456"},
		"ver":                {"2.0"},
		"given_name":         {"Alice"},
		"family_name":        {"Martin"},
		"groups":             {"0e6c7f2a-1111-4c1b-9a55-3b0c5d1e2f01", "9a8b7c6d-2222-4e3f-8a1b-2c3d4e5f6a02"},
	}
}

func with(base map[string][]string, kv ...any) map[string][]string {
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		switch v := kv[i+1].(type) {
		case nil:
			delete(base, k)
		case string:
			base[k] = []string{v}
		case []string:
			base[k] = v
		}
	}
	return base
}

func TestMapPresets(t *testing.T) {
	const (
		entraOID  = "5f1b3c1e-8e2a-4a5b-9d1c-0a6f3e2b7c11"
		entraSub  = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ"
		oktaID    = "00u1a2b3c4d5e6f7g8h9"
		pingID    = "8c2b4e4e-0f4e-4a1a-b6a9-6a4b1f0c9d3e"
		entraG1   = "0e6c7f2a-1111-4c1b-9a55-3b0c5d1e2f01"
		entraG2   = "9a8b7c6d-2222-4e3f-8a1b-2c3d4e5f6a02"
		persistID = "AAdzZWNyZXQxlxbD0zNUqq1L9oXnrIvI="
	)
	tests := []struct {
		name     string
		preset   string
		protocol string
		subject  string
		format   string
		attrs    map[string][]string
		want     Profile
	}{
		{
			name: "entra saml documented custom claims win", preset: "entra", protocol: idp.ProtocolSAML,
			subject: "alice@contoso.com", format: emailFormat,
			attrs: with(entraSAMLDefaults(),
				"userUniqueId", entraOID, "firstName", "Ally", "lastName", "Martin-Smith", "email", "ally@contoso.com"),
			want: Profile{UniqueUserID: entraOID, FirstName: "Ally", LastName: "Martin-Smith", Email: "ally@contoso.com",
				Groups: []string{entraG1, entraG2}, HasGroups: true},
		},
		{
			name: "entra saml uniqueUserId spelling", preset: "entra", protocol: idp.ProtocolSAML,
			attrs: with(entraSAMLDefaults(), entraObjectID, nil, "uniqueUserId", entraOID),
			want: Profile{UniqueUserID: entraOID, FirstName: "Alice", LastName: "Martin", Email: "alice.martin@contoso.com",
				Groups: []string{entraG1, entraG2}, HasGroups: true},
		},
		{
			name: "entra saml falls back to default claims", preset: "entra", protocol: idp.ProtocolSAML,
			subject: "alice@contoso.com", format: emailFormat,
			attrs: entraSAMLDefaults(),
			want: Profile{UniqueUserID: entraOID, FirstName: "Alice", LastName: "Martin", Email: "alice.martin@contoso.com",
				Groups: []string{entraG1, entraG2}, HasGroups: true},
		},
		{
			name: "entra saml UPN is not an email", preset: "entra", protocol: idp.ProtocolSAML,
			attrs: with(entraSAMLDefaults(), entraEmailAddress, nil),
			want: Profile{UniqueUserID: entraOID, FirstName: "Alice", LastName: "Martin",
				Groups: []string{entraG1, entraG2}, HasGroups: true},
		},
		{
			name: "entra saml groups overage", preset: "entra", protocol: idp.ProtocolSAML,
			attrs: with(entraSAMLDefaults(), entraGroups, nil,
				EntraGroupsLink, "https://graph.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/users/"+entraOID+"/getMemberObjects"),
			want: Profile{UniqueUserID: entraOID, FirstName: "Alice", LastName: "Martin", Email: "alice.martin@contoso.com",
				GroupsOverage: true},
		},
		{
			name: "entra oidc uses oid not pairwise sub, preferred_username as email", preset: "entra", protocol: idp.ProtocolOIDC,
			subject: entraSub, attrs: entraOIDCClaims(),
			want: Profile{UniqueUserID: entraOID, FirstName: "Alice", LastName: "Martin", Email: "alice@contoso.com",
				Groups: []string{entraG1, entraG2}, HasGroups: true},
		},
		{
			name: "entra oidc email beats preferred_username", preset: "entra", protocol: idp.ProtocolOIDC,
			subject: entraSub, attrs: with(entraOIDCClaims(), "email", "alice.martin@contoso.com"),
			want: Profile{UniqueUserID: entraOID, FirstName: "Alice", LastName: "Martin", Email: "alice.martin@contoso.com",
				Groups: []string{entraG1, entraG2}, HasGroups: true},
		},
		{
			name: "entra oidc custom claims first", preset: "entra", protocol: idp.ProtocolOIDC,
			subject: entraSub, attrs: with(entraOIDCClaims(), "uniqueUserId", "custom-"+entraOID, "firstName", "Ally", "lastName", "M."),
			want: Profile{UniqueUserID: "custom-" + entraOID, FirstName: "Ally", LastName: "M.", Email: "alice@contoso.com",
				Groups: []string{entraG1, entraG2}, HasGroups: true},
		},
		{
			name: "entra oidc overage via _claim_names", preset: "entra", protocol: idp.ProtocolOIDC,
			subject: entraSub, attrs: with(entraOIDCClaims(), "groups", nil,
				"_claim_names", `{"groups":"src1"}`,
				"_claim_sources", `{"src1":{"endpoint":"https://graph.windows.net/72f988bf/users/x/getMemberObjects"}}`),
			want: Profile{UniqueUserID: entraOID, FirstName: "Alice", LastName: "Martin", Email: "alice@contoso.com",
				GroupsOverage: true},
		},
		{
			name: "entra oidc overage via hasgroups", preset: "entra", protocol: idp.ProtocolOIDC,
			subject: entraSub, attrs: with(entraOIDCClaims(), "groups", nil, "hasgroups", "true"),
			want: Profile{UniqueUserID: entraOID, FirstName: "Alice", LastName: "Martin", Email: "alice@contoso.com",
				GroupsOverage: true},
		},
		{
			name: "okta saml documented attributes", preset: "okta", protocol: idp.ProtocolSAML,
			subject: "alice@example.com", format: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
			attrs: map[string][]string{
				"uniqueUserId": {oktaID}, "firstName": {"Alice"}, "lastName": {"Martin"},
				"email": {"Alice.Martin@Example.com"}, "groups": {"Everyone", "Engineering"},
			},
			want: Profile{UniqueUserID: oktaID, FirstName: "Alice", LastName: "Martin", Email: "Alice.Martin@Example.com",
				Groups: []string{"Everyone", "Engineering"}, HasGroups: true},
		},
		{
			name: "okta saml userUniqueId spelling", preset: "okta", protocol: idp.ProtocolSAML,
			attrs: map[string][]string{
				"userUniqueId": {oktaID}, "firstName": {"Alice"}, "lastName": {"Martin"}, "email": {"alice@example.com"},
			},
			// Okta omits the group attribute statement that matches
			// nothing: no groups (TestAbsentGroupsPerPreset).
			want: Profile{UniqueUserID: oktaID, FirstName: "Alice", LastName: "Martin", Email: "alice@example.com", HasGroups: true},
		},
		{
			name: "okta oidc standard claims", preset: "okta", protocol: idp.ProtocolOIDC, subject: oktaID,
			attrs: map[string][]string{
				"sub": {oktaID}, "iss": {"https://example.okta.com"}, "aud": {"0oa1b2c3d4"},
				"name": {"Alice Martin"}, "preferred_username": {"alice@example.com"},
				"given_name": {"Alice"}, "family_name": {"Martin"}, "email": {"alice@example.com"},
				"email_verified": {"true"}, "locale": {"en-US"}, "zoneinfo": {"America/Los_Angeles"},
				"groups": {"Everyone", "Engineering"},
			},
			want: Profile{UniqueUserID: oktaID, FirstName: "Alice", LastName: "Martin", Email: "alice@example.com",
				Groups: []string{"Everyone", "Engineering"}, HasGroups: true},
		},
		{
			name: "pingone saml documented attributes with memberOf", preset: "pingone", protocol: idp.ProtocolSAML,
			subject: "alice", format: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
			attrs: map[string][]string{
				"userUniqueId": {pingID}, "firstName": {"Alice"}, "lastName": {"Martin"},
				"email": {"alice@example.com"}, "memberOf": {"Admins", "Developers"},
				"saml_subject": {"alice"},
			},
			want: Profile{UniqueUserID: pingID, FirstName: "Alice", LastName: "Martin", Email: "alice@example.com",
				Groups: []string{"Admins", "Developers"}, HasGroups: true},
		},
		{
			// A preset's groups candidates are spellings of one claim: the
			// first that holds a group (an operator's map is a union).
			name: "pingone saml uniqueUserId spelling and groups", preset: "pingone", protocol: idp.ProtocolSAML,
			attrs: map[string][]string{
				"uniqueUserId": {pingID}, "firstName": {"Alice"}, "lastName": {"Martin"},
				"email": {"alice@example.com"}, "groups": {"Admins"}, "memberOf": {"cn=Admins,ou=groups"},
			},
			want: Profile{UniqueUserID: pingID, FirstName: "Alice", LastName: "Martin", Email: "alice@example.com",
				Groups: []string{"Admins"}, HasGroups: true},
		},
		{
			name: "pingone oidc standard claims", preset: "pingone", protocol: idp.ProtocolOIDC, subject: pingID,
			attrs: map[string][]string{
				"sub": {pingID}, "env": {"abcd-env"}, "org": {"abcd-org"}, "p1.region": {"NA"},
				"given_name": {"Alice"}, "family_name": {"Martin"}, "email": {"alice@example.com"},
			},
			want: Profile{UniqueUserID: pingID, FirstName: "Alice", LastName: "Martin", Email: "alice@example.com"},
		},
		{
			name: "generic saml persistent NameID and urn:oid attributes", preset: "generic", protocol: idp.ProtocolSAML,
			subject: persistID, format: PersistentNameIDFormat,
			attrs: map[string][]string{
				oidGivenName: {"Alice"}, oidSurname: {"Martin"}, oidMail: {"alice@uni.example"},
				oidIsMember: {"urn:mace:uni.example:staff", "urn:mace:uni.example:it"},
			},
			want: Profile{UniqueUserID: persistID, FirstName: "Alice", LastName: "Martin", Email: "alice@uni.example",
				Groups: []string{"urn:mace:uni.example:staff", "urn:mace:uni.example:it"}, HasGroups: true},
		},
		{
			name: "generic saml uniqueUserId beats NameID, friendly names", preset: "", protocol: idp.ProtocolSAML,
			subject: persistID, format: PersistentNameIDFormat,
			attrs: map[string][]string{
				"uniqueUserId": {"u-42"}, "givenName": {"Alice"}, "sn": {"Martin"}, "mail": {"alice@example.org"},
				"memberOf": {"cn=staff,ou=groups,dc=example,dc=org"},
			},
			want: Profile{UniqueUserID: "u-42", FirstName: "Alice", LastName: "Martin", Email: "alice@example.org",
				Groups: []string{"cn=staff,ou=groups,dc=example,dc=org"}, HasGroups: true},
		},
		{
			name: "generic oidc standard claims from verified subject", preset: "generic", protocol: idp.ProtocolOIDC,
			subject: "248289761001",
			// No "sub" in Attributes: the ID comes from the verified subject.
			attrs: map[string][]string{
				"given_name": {"Jane"}, "family_name": {"Doe"}, "email": {"janedoe@example.com"}, "groups": {},
			},
			want: Profile{UniqueUserID: "248289761001", FirstName: "Jane", LastName: "Doe", Email: "janedoe@example.com",
				HasGroups: true},
		},
		{
			name: "generic oidc custom firstName before given_name", preset: "generic", protocol: idp.ProtocolOIDC,
			subject: "248289761001",
			attrs: map[string][]string{
				"firstName": {"J."}, "given_name": {"Jane"}, "family_name": {"Doe"}, "email": {"janedoe@example.com"},
			},
			want: Profile{UniqueUserID: "248289761001", FirstName: "J.", LastName: "Doe", Email: "janedoe@example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.preset, tt.protocol, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Map(&idp.Assertion{IdP: "test", Protocol: tt.protocol, Subject: tt.subject, SubjectFormat: tt.format, Attributes: tt.attrs})
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Map =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestMapValues(t *testing.T) {
	m, err := New("okta", idp.ProtocolSAML, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Attributes: map[string][]string{
		"uniqueUserId": {"", "  ", " 00u1 "},
		"firstName":    {"\tAlice\n"},
		"lastName":     {" "},
		"email":        {" Alice@Example.COM "},
		"groups":       {"b", " a ", "", "b", "c", "a", "  "},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Group names are kept exact: " a " is not "a" (TestCleanGroupsExact).
	want := Profile{UniqueUserID: "00u1", FirstName: "Alice", Email: "Alice@Example.COM",
		Groups: []string{"b", " a ", "c", "a"}, HasGroups: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Map = %#v, want %#v", got, want)
	}
	if miss := got.Missing(); !slices.Equal(miss, []string{LastName}) {
		t.Errorf("Missing() = %v", miss)
	}
}

func TestCleanGroupsLarge(t *testing.T) {
	// Entra sends up to 150 groups in SAML: the set-based path.
	var in, want []string
	for i := range 200 {
		g := fmt.Sprintf("group-%03d", i%150)
		in = append(in, g, " ")
		if i < 150 {
			want = append(want, g)
		}
	}
	if got := cleanGroups(in); !slices.Equal(got, want) {
		t.Errorf("cleanGroups: got %d groups, want %d", len(got), len(want))
	}
	if got := cleanGroups([]string{"", " "}); got != nil {
		t.Errorf("cleanGroups(blank) = %#v, want nil", got)
	}
}

// TestCleanGroupsExact: a group name with white space (or an invisible
// format character) at either end is another group than the bare name, so
// it is kept byte for byte rather than trimmed into it; only blank names go.
// Both the scan and the set path are covered.
func TestCleanGroupsExact(t *testing.T) {
	padding := make([]string, dedupMapThreshold)
	for i := range padding {
		padding[i] = fmt.Sprintf("pad-%02d", i)
	}
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"leading space", []string{" admins"}, []string{" admins"}},
		{"trailing nbsp", []string{"admins\u00a0"}, []string{"admins\u00a0"}},
		{"tab and newline", []string{"\tadmins\n"}, []string{"\tadmins\n"}},
		{"zero width space", []string{"\u200badmins"}, []string{"\u200badmins"}},
		{"padded next to bare", []string{" admins", "admins", "admins ", "admins"}, []string{" admins", "admins", "admins "}},
		{"blanks dropped", []string{"", " ", "\u00a0\t", "eng"}, []string{"eng"}},
		{"only blanks", []string{"", "\u3000"}, nil},
		{"set path", append(append([]string{" admins", "admins"}, padding...), " admins", "admins"),
			append([]string{" admins", "admins"}, padding...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cleanGroups(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("cleanGroups(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestGroupsPresence(t *testing.T) {
	m, _ := New("pingone", idp.ProtocolSAML, nil)
	for _, tt := range []struct {
		name      string
		attrs     map[string][]string
		want      []string
		hasGroups bool
	}{
		{"absent", map[string][]string{}, nil, false},
		{"empty list", map[string][]string{"groups": {}}, nil, true},
		{"blank values", map[string][]string{"groups": {" "}}, nil, true},
		{"a blank in one candidate, a group in another", map[string][]string{"groups": {""}, "memberOf": {"x"}}, []string{"x"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.attrs["uniqueUserId"] = []string{"id"}
			p, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Attributes: tt.attrs})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Groups, tt.want) || p.HasGroups != tt.hasGroups || p.GroupsOverage {
				t.Errorf("got Groups=%v HasGroups=%v Overage=%v", p.Groups, p.HasGroups, p.GroupsOverage)
			}
		})
	}
}

func TestNameIDAsID(t *testing.T) {
	const nameID = "AAdzZWNyZXQxlxbD0zNUqq1L9oXnrIvI="
	m, err := New("generic", idp.ProtocolSAML, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{
		transientFormat,
		emailFormat,
		"urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
		"",
		"urn:oasis:names:tc:SAML:2.0:nameid-format:PERSISTENT",
	} {
		t.Run(format, func(t *testing.T) {
			a := &idp.Assertion{Protocol: idp.ProtocolSAML, Subject: nameID, SubjectFormat: format,
				Attributes: map[string][]string{"mail": {"alice@example.org"}, "givenName": {"Alice"}}}
			p, err := m.Map(a)
			var me *MissingError
			if !errors.As(err, &me) {
				t.Fatalf("Map = %#v, %v; want *MissingError", p, err)
			}
			if !reflect.DeepEqual(p, Profile{}) {
				t.Errorf("profile not empty on error: %#v", p)
			}
			if !slices.Equal(me.Missing, []string{UniqueUserID, LastName}) {
				t.Errorf("Missing = %v", me.Missing)
			}
			wantFormat := format
			if wantFormat == "" {
				wantFormat = "(none)"
			}
			if me.NameIDFormat != wantFormat {
				t.Errorf("NameIDFormat = %q, want %q", me.NameIDFormat, wantFormat)
			}
			if strings.Contains(err.Error(), nameID) {
				t.Errorf("error leaks the NameID: %s", err)
			}
		})
	}
	// The same refusal holds for a preset without NameID in its list and
	// for an override that names it, via either special name.
	for _, special := range []string{NameID, Subject} {
		m, err := New("okta", idp.ProtocolSAML, map[string][]string{UniqueUserID: {special}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Subject: nameID, SubjectFormat: transientFormat}); err == nil {
			t.Errorf("%s: transient NameID accepted as uniqueUserId", special)
		}
		p, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Subject: nameID, SubjectFormat: PersistentNameIDFormat})
		if err != nil || p.UniqueUserID != nameID {
			t.Errorf("%s: persistent NameID: %#v, %v", special, p, err)
		}
	}
}

func TestOverrides(t *testing.T) {
	t.Run("replaces the preset list", func(t *testing.T) {
		// The DESIGN example: firstName from the default claim even though
		// the custom claim is there too.
		m, err := New("entra", idp.ProtocolSAML, map[string][]string{FirstName: {entraGivenName}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML,
			Attributes: with(entraSAMLDefaults(), "firstName", "Custom")})
		if err != nil {
			t.Fatal(err)
		}
		if p.FirstName != "Alice" {
			t.Errorf("FirstName = %q, want the givenname claim", p.FirstName)
		}
		if got := m.Expected(FirstName); !slices.Equal(got, []string{entraGivenName}) {
			t.Errorf("Expected(firstName) = %v", got)
		}
		// Other attributes keep the preset.
		if got := m.Expected(LastName); !slices.Equal(got, []string{LastName, entraSurname}) {
			t.Errorf("Expected(lastName) = %v", got)
		}
		// And a name left out of the override is no longer read.
		p, err = m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML,
			Attributes: with(entraSAMLDefaults(), entraGivenName, nil, "firstName", "Custom")})
		if err != nil {
			t.Fatal(err)
		}
		if p.FirstName != "" {
			t.Errorf("FirstName = %q, want empty", p.FirstName)
		}
	})

	t.Run("does not touch the preset table", func(t *testing.T) {
		if _, err := New("entra", idp.ProtocolSAML, map[string][]string{UniqueUserID: {"employeeid"}}); err != nil {
			t.Fatal(err)
		}
		m, _ := New("entra", idp.ProtocolSAML, nil)
		want := []string{"userUniqueId", UniqueUserID, entraObjectID}
		if got := m.Expected(UniqueUserID); !slices.Equal(got, want) {
			t.Errorf("Expected = %v, want %v", got, want)
		}
		got := m.Expected(UniqueUserID)
		got[0] = "mutated"
		if m.Expected(UniqueUserID)[0] != "userUniqueId" {
			t.Error("Expected returned the mapper's own slice")
		}
		if m.Expected("bogus") != nil {
			t.Error("Expected(unknown) != nil")
		}
	})

	t.Run("the override slice is copied", func(t *testing.T) {
		names := []string{"employeeNumber"}
		m, _ := New("generic", idp.ProtocolSAML, map[string][]string{UniqueUserID: names})
		names[0] = "changed"
		if got := m.Expected(UniqueUserID); got[0] != "employeeNumber" {
			t.Errorf("Expected = %v", got)
		}
	})

	t.Run("NameID as email", func(t *testing.T) {
		m, err := New("generic", idp.ProtocolSAML, map[string][]string{Email: {"email", NameID}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Subject: " alice@example.org ", SubjectFormat: emailFormat,
			Attributes: map[string][]string{"uniqueUserId": {"u1"}}})
		if err != nil || p.Email != "alice@example.org" {
			t.Errorf("Map = %#v, %v", p, err)
		}
	})

	t.Run("OIDC subject override", func(t *testing.T) {
		// An Entra admin who really wants the pairwise sub can say so.
		m, err := New("entra", idp.ProtocolOIDC, map[string][]string{UniqueUserID: {Subject}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolOIDC, Subject: "pairwise", Attributes: entraOIDCClaims()})
		if err != nil || p.UniqueUserID != "pairwise" {
			t.Errorf("Map = %#v, %v", p, err)
		}
	})

	t.Run("overridden groups claim and overage", func(t *testing.T) {
		m, err := New("generic", idp.ProtocolOIDC, map[string][]string{Groups: {"roles"}})
		if err != nil {
			t.Fatal(err)
		}
		a := &idp.Assertion{Protocol: idp.ProtocolOIDC, Subject: "s", Attributes: map[string][]string{
			"_claim_names": {`{"roles":"src1"}`},
			"groups":       {"ignored"},
		}}
		p, err := m.Map(a)
		if err != nil {
			t.Fatal(err)
		}
		if !p.GroupsOverage || p.HasGroups || p.Groups != nil {
			t.Errorf("got %#v", p)
		}
		// A distributed claim for something else is not a groups overage.
		a.Attributes["_claim_names"] = []string{`{"groups":"src1"}`}
		if p, _ := m.Map(a); p.GroupsOverage {
			t.Error("overage reported for a claim that is not mapped to groups")
		}
	})
}

// TestOverage: each marker counts only when the claim it stands in for is
// one the mapping reads groups from (preset or `map groups`); groups mapped
// from app roles are not discarded by a groups overage.
func TestOverage(t *testing.T) {
	for _, tt := range []struct {
		name, preset, protocol string
		groups                 []string // a `map groups` line; nil: the preset's
		attrs                  map[string][]string
		want                   bool
		wantGroups             []string
	}{
		{"saml groups.link, entra preset", "entra", idp.ProtocolSAML, nil, map[string][]string{EntraGroupsLink: {"https://graph…"}}, true, nil},
		{"saml groups.link, generic preset mapping the entra groups", "generic", idp.ProtocolSAML, []string{entraGroups}, map[string][]string{EntraGroupsLink: {"https://graph…"}}, true, nil},
		{"saml groups.link, generic preset, no groups claim arrived", "generic", idp.ProtocolSAML, nil, map[string][]string{EntraGroupsLink: {"https://graph…"}}, true, nil},
		{"saml groups.link, generic preset's groups claim arrived", "generic", idp.ProtocolSAML, nil, map[string][]string{EntraGroupsLink: {"https://graph…"}, "groups": {"g"}}, false, []string{"g"}},
		{"saml groups.link, entra preset, a renamed groups claim that did not arrive", "entra", idp.ProtocolSAML, []string{"memberOf"}, map[string][]string{EntraGroupsLink: {"https://graph…"}}, true, nil},
		{"oidc hasgroups, a renamed groups claim that did not arrive", "entra", idp.ProtocolOIDC, []string{"grp"}, map[string][]string{"hasgroups": {"true"}}, true, nil},
		// The last app role removed while over the groups limit: none left,
		// not the stored ones kept.
		{"oidc hasgroups, groups from app roles, none left", "entra", idp.ProtocolOIDC, []string{"roles"}, map[string][]string{"hasgroups": {"true"}}, false, nil},
		{"saml groups.link, groups from app roles, none left", "entra", idp.ProtocolSAML, []string{entraRoleURI}, map[string][]string{EntraGroupsLink: {"https://graph…"}}, false, nil},
		// A renamed groups claim mapped with the roles: the roles that
		// arrived do not stand for the groups that overflowed.
		{"saml groups.link, a renamed groups claim and roles, roles arrived", "entra", idp.ProtocolSAML, []string{"memberOf", entraRoleURI},
			map[string][]string{EntraGroupsLink: {"https://graph…"}, entraRoleURI: {"App.Admin"}}, true, []string{"App.Admin"}},
		{"oidc hasgroups, a renamed groups claim and roles, roles arrived", "entra", idp.ProtocolOIDC, []string{"grp", "roles"},
			map[string][]string{"hasgroups": {"true"}, "roles": {"App.Admin"}}, true, []string{"App.Admin"}},
		{"saml groups.link, groups from app roles", "entra", idp.ProtocolSAML, []string{entraRoleURI},
			map[string][]string{EntraGroupsLink: {"https://graph…"}, entraRoleURI: {"App.Admin"}}, false, []string{"App.Admin"}},
		{"saml groups.link, groups and app roles", "entra", idp.ProtocolSAML, []string{entraGroups, entraRoleURI},
			map[string][]string{EntraGroupsLink: {"https://graph…"}, entraRoleURI: {"App.Admin"}}, true, []string{"App.Admin"}},
		{"saml no marker", "entra", idp.ProtocolSAML, nil, map[string][]string{entraGroups: {"g"}}, false, []string{"g"}},
		{"oidc _claim_names groups", "okta", idp.ProtocolOIDC, nil, map[string][]string{"_claim_names": {`{"groups": "src1"}`}}, true, nil},
		{"oidc _claim_names groups, groups from app roles", "entra", idp.ProtocolOIDC, []string{"roles"},
			map[string][]string{"_claim_names": {`{"groups": "src1"}`}, "roles": {"App.Admin"}}, false, []string{"App.Admin"}},
		{"oidc _claim_names other claim", "entra", idp.ProtocolOIDC, nil, map[string][]string{"_claim_names": {`{"address":"src1"}`}}, false, nil},
		{"oidc _claim_names unparsable but names groups", "entra", idp.ProtocolOIDC, nil, map[string][]string{"_claim_names": {`{"groups":`}}, true, nil},
		{"oidc _claim_names unparsable", "entra", idp.ProtocolOIDC, nil, map[string][]string{"_claim_names": {`garbage`}}, false, nil},
		{"oidc hasgroups true", "entra", idp.ProtocolOIDC, nil, map[string][]string{"hasgroups": {"true"}}, true, nil},
		{"oidc hasgroups false", "entra", idp.ProtocolOIDC, nil, map[string][]string{"hasgroups": {"false"}}, false, nil},
		{"oidc hasgroups, groups from app roles", "entra", idp.ProtocolOIDC, []string{"roles"},
			map[string][]string{"hasgroups": {"true"}, "roles": {"App.Admin"}}, false, []string{"App.Admin"}},
		{"oidc hasgroups, groups and app roles", "entra", idp.ProtocolOIDC, []string{"groups", "roles"},
			map[string][]string{"hasgroups": {"true"}, "roles": {"App.Admin"}}, true, []string{"App.Admin"}},
		{"oidc groups.link is not an OIDC marker", "entra", idp.ProtocolOIDC, nil, map[string][]string{EntraGroupsLink: {"x"}}, false, nil},
		// hasgroups is read as a boolean however it is spelled: a missed
		// marker would wipe the stored groups.
		{"oidc hasgroups True, capitalised and spaced", "entra", idp.ProtocolOIDC, nil, map[string][]string{"hasgroups": {" True "}}, true, nil},
		// A special name in an operator's union is no renamed groups claim
		// whose absence could mean overage.
		{"oidc hasgroups, groups from app roles and the subject", "entra", idp.ProtocolOIDC, []string{"roles", Subject},
			map[string][]string{"hasgroups": {"true"}, "roles": {"App.Admin"}}, false, []string{"App.Admin", "s"}},
		// A parsed _claim_names counts only by its keys: a source named like
		// the groups claim is not the groups claim.
		{"oidc _claim_names other claim from a source named groups", "okta", idp.ProtocolOIDC, nil, map[string][]string{"_claim_names": {`{"address":"groups"}`}}, false, nil},
		// Unparsable: only the quoted claim name counts, not a longer name
		// that contains it.
		{"oidc _claim_names unparsable, names a longer claim", "okta", idp.ProtocolOIDC, nil, map[string][]string{"_claim_names": {`{"mygroups":`}}, false, nil},
		{"oidc _claim_names unparsable, bare word", "okta", idp.ProtocolOIDC, nil, map[string][]string{"_claim_names": {`groups`}}, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var overrides map[string][]string
			if tt.groups != nil {
				overrides = map[string][]string{Groups: tt.groups}
			}
			m, err := New(tt.preset, tt.protocol, overrides)
			if err != nil {
				t.Fatal(err)
			}
			tt.attrs[UniqueUserID] = []string{"id"}
			p, err := m.Map(&idp.Assertion{Protocol: tt.protocol, Subject: "s", Attributes: tt.attrs})
			if err != nil {
				t.Fatal(err)
			}
			if p.GroupsOverage != tt.want {
				t.Errorf("GroupsOverage = %v, want %v", p.GroupsOverage, tt.want)
			}
			if !slices.Equal(p.Groups, tt.wantGroups) {
				t.Errorf("Groups = %q, want %q", p.Groups, tt.wantGroups)
			}
		})
	}
}

// TestGroupsUnion: `map groups` with several claims reads the union of
// every one present, deduplicated in candidate order; present means any of
// them (so an empty list still says "no groups"), and the single-valued
// attributes stay first-present-wins.
func TestGroupsUnion(t *testing.T) {
	for _, tt := range []struct {
		name      string
		attrs     map[string][]string
		want      []string
		hasGroups bool
	}{
		{"both", map[string][]string{"groups": {"g-eng", "g-ops"}, "roles": {"App.Admin", "g-eng"}}, []string{"g-eng", "g-ops", "App.Admin"}, true},
		{"second only", map[string][]string{"roles": {"App.Admin"}}, []string{"App.Admin"}, true},
		{"first empty, second set", map[string][]string{"groups": {}, "roles": {"App.Admin"}}, []string{"App.Admin"}, true},
		{"both empty", map[string][]string{"groups": {}, "roles": {" "}}, nil, true},
		{"none", map[string][]string{}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New("generic", idp.ProtocolOIDC, map[string][]string{Groups: {"groups", "roles"}, Email: {"email", "upn"}})
			if err != nil {
				t.Fatal(err)
			}
			tt.attrs["email"] = []string{"ada@example.com"}
			tt.attrs["upn"] = []string{"ada@corp.example"}
			p, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolOIDC, Subject: "s", Attributes: tt.attrs})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Groups, tt.want) || p.HasGroups != tt.hasGroups {
				t.Errorf("Groups = %q HasGroups = %v, want %q %v", p.Groups, p.HasGroups, tt.want, tt.hasGroups)
			}
			if p.Email != "ada@example.com" {
				t.Errorf("Email = %q, want the first candidate's", p.Email)
			}
		})
	}
}

// TestReadsAll: what `caddy sso check` says of each attribute: an
// operator's `map groups` reads every claim it names; a preset's groups
// spellings, and every other attribute, the first one present.
func TestReadsAll(t *testing.T) {
	operator, err := New("entra", idp.ProtocolOIDC, map[string][]string{Groups: {"groups", "roles"}, Email: {"email", "upn"}})
	if err != nil {
		t.Fatal(err)
	}
	preset, err := New("entra", idp.ProtocolOIDC, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		m    *Mapper
		attr string
		want bool
	}{
		{operator, Groups, true},
		{operator, Email, false},
		{preset, Groups, false},
		{operator, "nonsense", false},
	} {
		if got := tt.m.ReadsAll(tt.attr); got != tt.want {
			t.Errorf("ReadsAll(%s) of %v = %v, want %v", tt.attr, tt.m.Expected(tt.attr), got, tt.want)
		}
	}
}

func TestMissingError(t *testing.T) {
	m, err := New("entra", idp.ProtocolSAML, nil)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]string{
		"email":     {"alice.secret@contoso.com"},
		"firstName": {"SecretAlice"},
		"lastName":  {"SecretMartin"},
	}
	a := &idp.Assertion{IdP: "entra", Protocol: idp.ProtocolSAML,
		Subject: "alice.secret-nameid@contoso.com", SubjectFormat: emailFormat, Attributes: secrets}
	_, err = m.Map(a)
	var me *MissingError
	if !errors.As(err, &me) {
		t.Fatalf("Map error = %v, want *MissingError", err)
	}
	want := "missing uniqueUserId: expected one of [userUniqueId uniqueUserId " + entraObjectID + "], received [email firstName lastName]"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
	if me.NameIDFormat != "" {
		t.Errorf("NameIDFormat set although entra SAML never reads the NameID: %q", me.NameIDFormat)
	}
	for _, vals := range secrets {
		for _, v := range vals {
			if strings.Contains(err.Error(), v) {
				t.Errorf("error text contains the value %q", v)
			}
		}
	}
	if strings.Contains(err.Error(), a.Subject) {
		t.Error("error text contains the subject")
	}

	t.Run("several missing, uniqueUserId first", func(t *testing.T) {
		m, _ := New("okta", idp.ProtocolSAML, nil)
		_, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Attributes: map[string][]string{"firstName": {"Alice"}}})
		want := "missing uniqueUserId: expected one of [uniqueUserId userUniqueId]; " +
			"missing lastName: expected one of [lastName]; missing email: expected one of [email], received [firstName]"
		if err == nil || err.Error() != want {
			t.Errorf("Error() =\n%v\nwant\n%s", err, want)
		}
	})

	t.Run("refused NameID is explained", func(t *testing.T) {
		m, _ := New("generic", idp.ProtocolSAML, nil)
		_, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Subject: "_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6", SubjectFormat: transientFormat,
			Attributes: map[string][]string{"givenName": {"A"}, "sn": {"B"}, "mail": {"a@b.example"}}})
		want := "missing uniqueUserId: expected one of [uniqueUserId userUniqueId $nameid], received [givenName mail sn]" +
			"; NameID refused as uniqueUserId: format " + transientFormat + " is not " + PersistentNameIDFormat
		if err == nil || err.Error() != want {
			t.Errorf("Error() =\n%v\nwant\n%s", err, want)
		}
	})

	t.Run("blank persistent NameID not blamed on its format", func(t *testing.T) {
		m, _ := New("generic", idp.ProtocolSAML, nil)
		_, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Subject: "  ", SubjectFormat: PersistentNameIDFormat})
		var me *MissingError
		if !errors.As(err, &me) {
			t.Fatalf("Map: %v, want a *MissingError", err)
		}
		if me.NameIDFormat != "" || strings.Contains(err.Error(), "NameID refused") {
			t.Errorf("NameIDFormat = %q (%v): a persistent NameID's format was not refused", me.NameIDFormat, err)
		}
	})

	t.Run("JIT helper for other attributes", func(t *testing.T) {
		p, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Attributes: map[string][]string{"userUniqueId": {"id"}}})
		if err != nil {
			t.Fatal(err)
		}
		miss := p.Missing()
		if !slices.Equal(miss, []string{FirstName, LastName, Email}) {
			t.Fatalf("Missing() = %v", miss)
		}
		e := m.Missing(a, miss...)
		if !reflect.DeepEqual(e.Expected[Email], []string{Email, entraEmailAddress}) || len(e.Expected) != 3 {
			t.Errorf("Expected = %v", e.Expected)
		}
		if m.Missing(a) != nil {
			t.Error("Missing() with no attributes != nil")
		}
		if (Profile{UniqueUserID: "x", FirstName: "a", LastName: "b", Email: "c"}).Missing() != nil {
			t.Error("complete profile reports missing attributes")
		}
	})

	t.Run("nil assertion", func(t *testing.T) {
		if _, err := m.Map(nil); !errors.As(err, &me) {
			t.Errorf("Map(nil) = %v", err)
		}
	})
}

func TestMapProtocolMismatch(t *testing.T) {
	m, _ := New("okta", idp.ProtocolOIDC, nil)
	_, err := m.Map(&idp.Assertion{IdP: "okta", Protocol: idp.ProtocolSAML, Subject: "s"})
	var me *MissingError
	if err == nil || errors.As(err, &me) {
		t.Errorf("Map = %v, want a plain error", err)
	}
	// An unset Protocol is taken to be the mapper's.
	if p, err := m.Map(&idp.Assertion{Subject: "s"}); err != nil || p.UniqueUserID != "s" {
		t.Errorf("Map = %#v, %v", p, err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tt := range []struct {
		name      string
		preset    string
		protocol  string
		overrides map[string][]string
		want      []string // substrings of the error
	}{
		{"unknown preset", "azure", idp.ProtocolSAML, nil, []string{`"azure"`, "entra", "generic", "okta", "pingone"}},
		{"unknown protocol", "okta", "ws-fed", nil, []string{`"ws-fed"`, "oidc", "saml"}},
		{"unknown attribute", "okta", idp.ProtocolSAML, map[string][]string{"fistName": {"x"}},
			[]string{`"fistName"`, "uniqueUserId", "firstName", "lastName", "email", "groups"}},
		{"attribute names are case-sensitive", "okta", idp.ProtocolSAML, map[string][]string{"FirstName": {"x"}}, []string{`"FirstName"`}},
		{"no names", "okta", idp.ProtocolSAML, map[string][]string{Email: {}}, []string{"email", "at least one"}},
		{"blank name", "okta", idp.ProtocolSAML, map[string][]string{Email: {"mail", " "}}, []string{"email", "empty"}},
		{"nameid in oidc", "okta", idp.ProtocolOIDC, map[string][]string{UniqueUserID: {NameID}}, []string{"$nameid", "SAML", "$subject"}},
		{"unknown special", "okta", idp.ProtocolSAML, map[string][]string{UniqueUserID: {"$sub"}}, []string{`"$sub"`, "$nameid", "$subject"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.preset, tt.protocol, tt.overrides)
			if err == nil {
				t.Fatalf("New succeeded: %#v", m)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestPresetsAndAttributes(t *testing.T) {
	if got := Presets(); !slices.Equal(got, []string{"entra", "generic", "okta", "pingone"}) {
		t.Errorf("Presets() = %v", got)
	}
	if got := Attributes(); !slices.Equal(got, []string{"uniqueUserId", "firstName", "lastName", "email", "groups"}) {
		t.Errorf("Attributes() = %v", got)
	}
	m, err := New("", idp.ProtocolSAML, nil)
	if err != nil || m.Preset() != "generic" || m.Protocol() != idp.ProtocolSAML {
		t.Errorf("New(\"\") = %v, %v", m, err)
	}
	// Every preset builds for both protocols, and both ID spellings are
	// accepted in each.
	for _, p := range Presets() {
		for _, proto := range []string{idp.ProtocolSAML, idp.ProtocolOIDC} {
			m, err := New(p, proto, nil)
			if err != nil {
				t.Fatalf("%s/%s: %v", p, proto, err)
			}
			exp := m.Expected(UniqueUserID)
			if !slices.Contains(exp, "uniqueUserId") || !slices.Contains(exp, "userUniqueId") {
				t.Errorf("%s/%s: uniqueUserId candidates %v lack a spelling", p, proto, exp)
			}
			if proto == idp.ProtocolOIDC && slices.Contains(exp, NameID) {
				t.Errorf("%s/%s: $nameid in an OIDC preset", p, proto)
			}
		}
	}
	if m, _ := New("entra", idp.ProtocolOIDC, nil); slices.Contains(m.Expected(UniqueUserID), Subject) || slices.Contains(m.Expected(UniqueUserID), "sub") {
		t.Error("entra OIDC must never key on sub")
	}
	// The OIDC presets key users on the custom ID claims, sub or entra's
	// oid, never on a claim a user may change: an ID token with none of
	// those maps to no user, whatever else it carries.
	mutable := map[string][]string{"preferred_username": {"ada@example.com"}, "email": {"ada@example.com"},
		"name": {"Ada"}, "upn": {"ada@example.com"}, "unique_name": {"ada@example.com"}, "nickname": {"ada"},
		"given_name": {"Ada"}, "family_name": {"Lovelace"}}
	for _, p := range Presets() {
		m, err := New(p, idp.ProtocolOIDC, nil)
		if err != nil {
			t.Fatal(err)
		}
		prof, err := m.Map(&idp.Assertion{Protocol: idp.ProtocolOIDC, Subject: " ", Attributes: mutable})
		var me *MissingError
		if !errors.As(err, &me) || prof.UniqueUserID != "" {
			t.Errorf("%s OIDC: Map = %+v, %v; want uniqueUserId missing (a mutable claim became the user's key)", p, prof, err)
		}
	}
}

func TestConcurrentMap(t *testing.T) {
	m, _ := New("entra", idp.ProtocolOIDC, nil)
	a := &idp.Assertion{Protocol: idp.ProtocolOIDC, Subject: "s", Attributes: entraOIDCClaims()}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if _, err := m.Map(a); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkMap(b *testing.B) {
	for _, bc := range []struct {
		name, preset, protocol string
		a                      *idp.Assertion
	}{
		{"entra-saml-defaults", "entra", idp.ProtocolSAML, &idp.Assertion{Protocol: idp.ProtocolSAML, Attributes: entraSAMLDefaults()}},
		{"entra-oidc", "entra", idp.ProtocolOIDC, &idp.Assertion{Protocol: idp.ProtocolOIDC, Subject: "s", Attributes: entraOIDCClaims()}},
		{"entra-oidc-overage", "entra", idp.ProtocolOIDC, &idp.Assertion{Protocol: idp.ProtocolOIDC, Subject: "s",
			Attributes: with(entraOIDCClaims(), "groups", nil, "_claim_names", `{"groups":"src1"}`)}},
	} {
		m, err := New(bc.preset, bc.protocol, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Map(bc.a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
