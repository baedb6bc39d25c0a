package oidc_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/mapping"
)

// loginWithClaims signs alice in at a real provider whose ID token edit
// has changed, and returns the assertion.
func loginWithClaims(t *testing.T, edit func(claims map[string]any)) *idp.Assertion {
	t.Helper()
	e := newEnv(t)
	e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { edit(tok.Claims) }})
	res := e.login(newBrowser())
	wantCode(t, res, "")
	return res.Assertion
}

// mapGroups maps a with the generic preset and `map groups <names>…`.
func mapGroups(t *testing.T, a *idp.Assertion, names ...string) ([]string, bool) {
	t.Helper()
	m, err := mapping.New(mapping.PresetGeneric, idp.ProtocolOIDC, map[string][]string{mapping.Groups: names})
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Map(a)
	if err != nil {
		t.Fatal(err)
	}
	return p.Groups, p.HasGroups
}

// TestKeycloakRoles: Keycloak puts a user's roles in objects, the realm's
// in realm_access.roles and each client's in resource_access.<client>.roles;
// `map groups` reaches them by their dotted path, a client ID with dots
// included, and an empty roles list says "no groups" as a top-level empty
// list does. The object claims keep their JSON text under their own name.
func TestKeycloakRoles(t *testing.T) {
	a := loginWithClaims(t, func(c map[string]any) {
		c["azp"] = clientID
		c["typ"] = "ID"
		c["preferred_username"] = "alice"
		c["realm_access"] = map[string]any{"roles": []string{"offline_access", "uma_authorization", "admin"}}
		c["resource_access"] = map[string]any{
			"my-client":       map[string]any{"roles": []string{"editor"}},
			"app.example.com": map[string]any{"roles": []string{"viewer", "auditor"}},
			"account":         map[string]any{"roles": []string{"manage-account", "view-profile"}},
			"quiet-client":    map[string]any{"roles": []string{}},
		}
	})
	for _, tc := range []struct {
		names     []string
		want      []string
		hasGroups bool
	}{
		{[]string{"realm_access.roles"}, []string{"offline_access", "uma_authorization", "admin"}, true},
		{[]string{"resource_access.my-client.roles"}, []string{"editor"}, true},
		{[]string{"resource_access.app.example.com.roles"}, []string{"viewer", "auditor"}, true},
		{[]string{"resource_access.other-client.roles", "resource_access.my-client.roles"}, []string{"editor"}, true},
		{[]string{"resource_access.quiet-client.roles"}, nil, true},
		{[]string{"resource_access.other-client.roles"}, nil, false},
		{[]string{"resource_access.my-client"}, nil, false}, // an object: no path
	} {
		groups, has := mapGroups(t, a, tc.names...)
		if !reflect.DeepEqual(groups, tc.want) || has != tc.hasGroups {
			t.Errorf("map groups %s: groups %q (present %v), want %q (present %v)", strings.Join(tc.names, " "), groups, has, tc.want, tc.hasGroups)
		}
	}
	for name, want := range map[string][]string{
		"address.country":    {"NL"}, // the standard address claim
		"address":            {`{"country":"NL"}`},
		"realm_access":       {`{"roles":["offline_access","uma_authorization","admin"]}`},
		"preferred_username": {"alice"},
	} {
		if got := a.Attributes[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("attribute %s = %q, want %q", name, got, want)
		}
	}
}

// TestNamespacedClaims: Auth0's custom claims are namespaced by a URL, so
// their names have dots. Such a claim is read by its exact name as before,
// never shadowed by a path that spells the same name (even when the claim
// is null); an object claim's members are reached below its name. Two
// paths spelling the same name settle on the longer claim name, the one a
// reader trying the longest name present first would reach.
func TestNamespacedClaims(t *testing.T) {
	a := loginWithClaims(t, func(c map[string]any) {
		c["https://example.com/roles"] = []string{"billing", "support"}
		c["https://example"] = map[string]any{"com/roles": []string{"shadow"}, "com/teams": []string{"shadow"}}
		c["https://example.com/app_metadata"] = map[string]any{
			"roles":         []string{"admin"},
			"authorization": map[string]any{"groups": []string{"finance"}},
		}
		c["https://example.com/teams"] = nil
		c["org"] = map[string]any{"unit.name": "from org"}
		c["org.unit"] = map[string]any{"name": "from org.unit"}
	})
	for _, tc := range []struct{ name, want string }{
		{"https://example.com/roles", "billing support"},
		{"https://example.com/app_metadata.roles", "admin"},
		{"https://example.com/app_metadata.authorization.groups", "finance"},
	} {
		if groups, _ := mapGroups(t, a, tc.name); strings.Join(groups, " ") != tc.want {
			t.Errorf("map groups %s: %q, want %s", tc.name, groups, tc.want)
		}
	}
	if got, ok := a.Attributes["https://example.com/teams"]; ok {
		t.Errorf("a null claim's name took a path's values: %q", got)
	}
	if got := a.Attributes["org.unit.name"]; !reflect.DeepEqual(got, []string{"from org.unit"}) {
		t.Errorf("org.unit.name = %q, want the longer claim name's", got)
	}
}

// TestClaimPathBounds: whatever an ID token holds, the paths stay within
// their bounds: no path deeper than MaxClaimPathDepth members below its
// claim or longer than MaxClaimPathBytes; a claim of more than
// MaxClaimMembers members gets none (its neighbours keep theirs); and
// all claims together no more than MaxClaimPaths, each whole or not at
// all, the longest names first.
func TestClaimPathBounds(t *testing.T) {
	roles := map[string]any{"roles": []string{"admin"}}
	members := func(n int) map[string]any {
		m := make(map[string]any, n)
		for i := range n {
			m[fmt.Sprintf("m%04d", i)] = "v"
		}
		return m
	}
	nested := func(a *idp.Assertion, claim string) int {
		n := 0
		for k := range a.Attributes {
			if strings.HasPrefix(k, claim+".") {
				n++
			}
		}
		return n
	}

	t.Run("depth, length and one claim's members", func(t *testing.T) {
		// deep: a value at every level, 3 levels more than the bound.
		deep := map[string]any{"v": "level 1"}
		for level := 2; level <= oidc.MaxClaimPathDepth+3; level++ {
			deep = map[string]any{"v": fmt.Sprintf("level %d", level), "next": deep}
		}
		a := loginWithClaims(t, func(c map[string]any) {
			c["realm_access"] = roles
			c["deep"] = deep
			c["huge"] = members(oidc.MaxClaimMembers + 1)
			c["full"] = members(oidc.MaxClaimMembers)
			c["long"] = map[string]any{"short": "s", strings.Repeat("x", oidc.MaxClaimPathBytes-len("long.")+1): "too long"}
		})
		if groups, _ := mapGroups(t, a, "realm_access.roles"); !reflect.DeepEqual(groups, []string{"admin"}) {
			t.Errorf("realm_access.roles = %q next to the hostile claims", groups)
		}
		// deep.v is 1 member down, deep.next.v 2, …: MaxClaimPathDepth of them.
		if n := nested(a, "deep"); n != oidc.MaxClaimPathDepth {
			t.Errorf("%d paths below deep, want %d", n, oidc.MaxClaimPathDepth)
		}
		last := "deep" + strings.Repeat(".next", oidc.MaxClaimPathDepth-1) + ".v"
		if got := a.Attributes[last]; len(got) != 1 {
			t.Errorf("%s = %q, want the value %d members down", last, got, oidc.MaxClaimPathDepth)
		}
		for k := range a.Attributes {
			if len(k) > oidc.MaxClaimPathBytes && strings.Contains(k, ".") {
				t.Errorf("a path of %d bytes", len(k))
			}
		}
		if n := nested(a, "long"); n != 1 || a.Attributes["long.short"] == nil {
			t.Errorf("%d paths below long, want long.short only", n)
		}
		if n := nested(a, "huge"); n != 0 {
			t.Errorf("%d paths below huge (%d members), want none", n, oidc.MaxClaimMembers+1)
		}
		if n := nested(a, "full"); n != oidc.MaxClaimMembers {
			t.Errorf("%d paths below full (%d members), want all", n, oidc.MaxClaimMembers)
		}
	})

	t.Run("all claims", func(t *testing.T) {
		const size = 500
		claims := oidc.MaxClaimPaths/size + 2
		a := loginWithClaims(t, func(c map[string]any) {
			c["realm_access"] = roles // the longest name: first
			for i := range claims {
				c[fmt.Sprintf("bulk%02d", i)] = members(size)
			}
		})
		if groups, _ := mapGroups(t, a, "realm_access.roles"); !reflect.DeepEqual(groups, []string{"admin"}) {
			t.Errorf("realm_access.roles = %q", groups)
		}
		total, whole := 0, (oidc.MaxClaimPaths-1)/size
		for i := range claims {
			n := nested(a, fmt.Sprintf("bulk%02d", i))
			total += n
			if want := map[bool]int{true: size, false: 0}[i < whole]; n != want {
				t.Errorf("bulk%02d: %d paths, want %d", i, n, want)
			}
		}
		if total > oidc.MaxClaimPaths {
			t.Errorf("%d paths in all, more than %d", total, oidc.MaxClaimPaths)
		}
	})
}

// TestNullArrayElementsLeftOut: a null in an array claim is no value, as
// a null claim is none: groups ["admins", null] is the one group admins,
// not also a group named "null" that a `map groups` rule or an upstream
// header would take at its word; in an object claim's array member too.
func TestNullArrayElementsLeftOut(t *testing.T) {
	a := loginWithClaims(t, func(c map[string]any) {
		c["groups"] = []any{"admins", nil, "staff"}
		c["realm_access"] = map[string]any{"roles": []any{nil, "auditor"}}
	})
	if got := a.Attributes["groups"]; !slices.Equal(got, []string{"admins", "staff"}) {
		t.Errorf("groups = %q, want admins and staff", got)
	}
	if got, _ := mapGroups(t, a, "groups", "realm_access.roles"); slices.Contains(got, "null") {
		t.Errorf("mapped groups %q hold a group named null", got)
	}
}
