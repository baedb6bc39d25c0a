package scim_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/store"
)

// filterFixture creates three users and returns the env; their IDs are
// saved as {{alice}}, {{bob}}, {{carol}}.
func filterFixture(t *testing.T) *env {
	e := newEnv(t, "entra", entraToken)
	for name, body := range map[string]string{
		"alice": `{"userName":"alice@x.io","externalId":"e-alice","active":true,
			"emails":[{"value":"alice@x.io","type":"work","primary":true}]}`,
		"bob": `{"userName":"Bob@X.io","externalId":"e-bob","active":false}`,
		"carol": `{"userName":"carol","externalId":"e-carol","active":true,"name":{"givenName":"Carol"},
			"emails":[{"value":"carol@home.io","type":"home"},{"value":"carol@x.io","type":"work","primary":true}]}`,
	} {
		e.vars[name] = e.must(201, "POST", "/Users", body).body["id"].(string)
	}
	return e
}

func names(t *testing.T, r resp) []string {
	t.Helper()
	var out []string
	for _, res := range r.body["Resources"].([]any) {
		out = append(out, strings.ToLower(res.(map[string]any)["userName"].(string)))
	}
	slices.Sort(out)
	return out
}

func TestUserFilters(t *testing.T) {
	e := filterFixture(t)
	tests := []struct {
		filter string
		want   string // comma-separated lower-cased userNames; "!" = invalidFilter
	}{
		{`userName eq "ALICE@x.io"`, "alice@x.io"},
		{`USERNAME EQ "alice@x.io"`, "alice@x.io"},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice@x.io"`, "alice@x.io"},
		{`(userName eq "alice@x.io")`, "alice@x.io"},
		{`userName eq "nobody"`, ""},
		{`userName eq "alice@x.io" and active eq true`, "alice@x.io"},
		{`userName eq "bob@x.io" and active eq true`, ""},
		{`active eq false and userName eq "bob@x.io"`, "bob@x.io"},
		{`externalId eq "e-bob"`, "bob@x.io"},
		{`externalId eq "E-BOB"`, ""},
		{`userName eq "alice@x.io" or externalId eq "e-bob"`, "alice@x.io,bob@x.io"},
		{`emails[type eq "work"].value eq "carol@x.io"`, "carol"},
		{`emails[type eq "work"].value eq "CAROL@X.IO"`, "carol"},
		{`emails[type eq "home"].value eq "carol@x.io"`, ""},
		{`emails.value eq "carol@x.io"`, "carol"},
		{`emails eq "alice@x.io"`, "alice@x.io"},
		{`emails[value eq "carol@x.io"]`, "carol"},
		{`emails[type eq "work" and value eq "carol@x.io"]`, "carol"},
		// Attribute names are case-insensitive (RFC 7643 2.1) inside and
		// after a value filter too.
		{`Emails[Type eq "work"].Value eq "carol@x.io"`, "carol"},
		{`emails[VALUE eq "carol@x.io"]`, "carol"},
		{`EMAILS.VALUE eq "carol@x.io"`, "carol"},
		{`id eq "{{alice}}"`, "alice@x.io"},
		{`userName eq "carol" and name.givenName eq "Carol"`, "carol"},
		{`userName eq "carol" and not (name.givenName eq "Carol")`, ""},
		{`userName eq "carol" and name.givenName pr`, "carol"},
		{`userName eq "alice@x.io" and name.givenName pr`, ""},
		{`userName eq "alice@x.io" and name.givenName ne null`, ""},
		{`userName eq "carol" and name.givenName ne null`, "carol"},
		{`userName eq "carol" and name.givenName eq null`, ""},
		{`userName eq "alice@x.io" and name.givenName eq null`, "alice@x.io"},
		{`userName eq "carol" and externalId eq "E-CAROL"`, ""}, // caseExact, re-checked as the index does
		// Filters no index serves would scan every user: refused.
		{`active eq true`, "!"},
		{`userName co "a"`, "!"},
		{`userName sw "a"`, "!"},
		{`userName ne "a"`, "!"},
		{`not (userName eq "a")`, "!"},
		{`userName eq "a" or active eq true`, "!"},
		{`name.givenName eq "Carol"`, "!"},
		{`emails[type eq "work"]`, "!"},
		// Syntax errors.
		{`userName eq`, "!"},
		{`userName eq "unterminated`, "!"},
		{`userName xx "a"`, "!"},
		{`userName eq "a" and`, "!"},
		{`(userName eq "a"`, "!"},
		{`emails[type eq "work".value eq "a"`, "!"},
		{`userName eq "carol" and emails[type eq "work"].value`, "!"},
		{`userName eq "alice@x.io" junk`, "!"},
		{`userName eq "alice@x.io")`, "!"},
		// A boolean has no order (RFC 7644 3.4.2.2): invalidFilter, not
		// an empty answer.
		{`userName eq "alice@x.io" and active gt true`, "!"},
		{`userName eq "alice@x.io" and active le false`, "!"},
		{`userName eq "alice@x.io" and name.givenName lt true`, "!"},
		{strings.Repeat("(", 100) + `userName eq "a"` + strings.Repeat(")", 100), "!"},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			e.t = t
			r := e.do("GET", "/Users?filter="+q(tt.filter), "")
			if tt.want == "!" {
				scimError(t, r, 400, "invalidFilter")
				return
			}
			if got := strings.Join(names(t, r), ","); got != tt.want || total(t, r) != len(names(t, r)) {
				t.Errorf("got %q (total %v), want %q", got, r.body["totalResults"], tt.want)
			}
		})
	}
}

func TestListPagingAndProjection(t *testing.T) {
	e := filterFixture(t)
	three := q(`userName eq "alice@x.io" or userName eq "bob@x.io" or userName eq "carol"`)
	tests := []struct {
		query      string
		total, n   int
		startIndex float64
	}{
		{"startIndex=1&count=10", 3, 3, 1},
		{"startIndex=2&count=1", 3, 1, 2},
		{"startIndex=3&count=5", 3, 1, 3},
		{"startIndex=4&count=5", 3, 0, 4},
		{"count=0", 3, 0, 1},
		{"startIndex=0&count=2", 3, 2, 1},
		{"startIndex=-5&count=-1", 3, 0, 1},
		{"filter=" + three + "&startIndex=2&count=1", 3, 1, 2},
		{"filter=" + three + "&count=0", 3, 0, 1},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		r := e.must(200, "GET", "/Users?"+tt.query, "")
		if total(t, r) != tt.total || len(r.body["Resources"].([]any)) != tt.n || r.body["startIndex"] != tt.startIndex {
			t.Errorf("%s: %s", tt.query, r.raw)
		}
	}
	// Pages of one, in a stable order, cover everyone once.
	var order []string
	for i := 1; i <= 3; i++ {
		r := e.must(200, "GET", "/Users?count=1&startIndex="+string(rune('0'+i)), "")
		id := at(r.body, "Resources", 0, "id").(string)
		if seen[id] {
			t.Errorf("page %d repeats %s", i, id)
		}
		seen[id] = true
		order = append(order, id)
	}
	if !slices.IsSorted(order) {
		t.Errorf("pages not in ID order: %v", order)
	}
	for _, bad := range []string{"count=abc", "startIndex=x", "sortBy=userName"} {
		scimError(t, e.do("GET", "/Users?"+bad, ""), 400, "invalidValue")
	}

	r := e.must(200, "GET", "/Users/{{carol}}?attributes=userName,name.givenName", "")
	if r.body["userName"] != "carol" || at(r.body, "name", "givenName") != "Carol" || r.body["id"] == nil ||
		r.body["emails"] != nil || r.body["active"] != nil || r.body["schemas"] == nil {
		t.Errorf("attributes: %s", r.raw)
	}
	r = e.must(200, "GET", "/Users?filter="+q(`userName eq "carol"`)+"&excludedAttributes=emails,groups,id", "")
	res := at(r.body, "Resources", 0).(map[string]any)
	if res["emails"] != nil || res["groups"] != nil || res["id"] == nil || res["userName"] != "carol" {
		t.Errorf("excludedAttributes: %s", r.raw)
	}
}

// TestCountCappedAtMaxResults: a count above MaxResults (the
// ServiceProviderConfig's filter.maxResults) answers MaxResults, so that
// one request cannot render the whole directory in one read transaction
// (the store does not cap a page itself).
func TestCountCappedAtMaxResults(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	err := e.db.Update(context.Background(), func(tx store.Tx) error {
		for i := range scim.MaxResults + 5 {
			u := &store.User{IdP: "entra", UserName: fmt.Sprintf("u%04d@example.com", i), Source: store.SourceSCIM,
				Active: true, Created: t0, Updated: t0}
			if err := tx.PutUser(u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, count := range []string{"1001", "5000"} {
		r := e.must(http.StatusOK, "GET", "/Users?attributes=userName&count="+count, "")
		if n := total(t, r); n != scim.MaxResults+5 {
			t.Errorf("count=%s: totalResults %d, want %d", count, n, scim.MaxResults+5)
		}
		if got := len(r.body["Resources"].([]any)); got != scim.MaxResults || r.body["itemsPerPage"] != float64(scim.MaxResults) {
			t.Errorf("count=%s: %d resources (itemsPerPage %v), want MaxResults=%d", count, got, r.body["itemsPerPage"], scim.MaxResults)
		}
	}
}

func TestGroupFilters(t *testing.T) {
	e := filterFixture(t)
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"Eng","externalId":"g-ext","members":[{"value":"{{alice}}"}]}`).body["id"].(string)
	e.must(201, "POST", "/Groups", `{"displayName":"Ops"}`)
	tests := []struct {
		filter string
		want   int // -1: invalidFilter
	}{
		{`displayName eq "eng"`, 1},
		{`externalId eq "g-ext"`, 1},
		{`id eq "{{g}}"`, 1},
		{`members[value eq "{{alice}}"]`, 1},
		{`members.value eq "{{alice}}"`, 1},
		{`members[value eq "{{bob}}"]`, 0},
		{`id eq "{{g}}" and members[value eq "{{alice}}"]`, 1},
		{`id eq "{{g}}" and members[value eq "{{bob}}"]`, 0},
		{`displayName eq "Eng" or displayName eq "Ops"`, 2},
		{`displayName co "E"`, -1},
	}
	for _, tt := range tests {
		r := e.do("GET", "/Groups?excludedAttributes=members&filter="+q(tt.filter), "")
		if tt.want < 0 {
			scimError(t, r, 400, "invalidFilter")
			continue
		}
		if n := total(t, r); n != tt.want {
			t.Errorf("%s: %d results, want %d: %s", tt.filter, n, tt.want, r.raw)
		}
		if strings.Contains(r.raw, `"members"`) {
			t.Errorf("%s: members not excluded", tt.filter)
		}
	}
}
