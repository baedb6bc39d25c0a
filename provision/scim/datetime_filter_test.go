package scim_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

// meta.created and meta.lastModified are dateTime (RFC 7643 3.1): a filter
// compares them as instants (RFC 7644 3.4.2.2), whatever the precision or
// the offset either side is written in. As text, "…:01.5Z" sorts before
// "…:01Z" and "10:00:01+01:00" after "09:00:01Z".
func TestDateTimeFilterComparesInstants(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.now = time.Date(2025, 6, 1, 9, 0, 0, 500_000_000, time.UTC) // the POST is stamped 09:00:01.5
	e.vars["u"] = e.must(201, "POST", "/Users", `{"userName":"ada"}`).body["id"].(string)
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"staff"}`).body["id"].(string) // 09:00:02.5
	plus1 := time.FixedZone("", 3600)
	at := func(sec, ns int, zone *time.Location) string {
		return time.Date(2025, 6, 1, 9, 0, sec, ns, time.UTC).In(zone).Format(time.RFC3339Nano)
	}
	for _, c := range []struct {
		resource, attr, op, value string
		want                      int
	}{
		{"Users", "meta.lastModified", "gt", at(1, 0, time.UTC), 1}, // the same second without its fraction
		{"Users", "meta.lastModified", "gt", at(0, 0, plus1), 1},    // an earlier instant, at +01:00
		{"Users", "meta.lastModified", "eq", "2025-06-01T10:00:01.500000+01:00", 1},
		{"Users", "meta.lastModified", "ge", at(1, 500_000_000, time.UTC), 1},
		{"Users", "meta.lastModified", "le", at(1, 500_000_000, plus1), 1},
		{"Users", "meta.lastModified", "gt", at(1, 500_000_000, plus1), 0},
		{"Users", "meta.lastModified", "lt", at(1, 500_000_000, time.UTC), 0},
		{"Users", "meta.lastModified", "lt", at(2, 0, plus1), 1},
		{"Users", "meta.lastModified", "ne", "2025-06-01T09:00:01.50Z", 0},
		{"Users", "meta.created", "lt", at(1, 600_000_000, time.UTC), 1},
		{"Groups", "meta.lastModified", "gt", at(2, 0, time.UTC), 1},
		{"Groups", "meta.created", "eq", at(2, 500_000_000, plus1), 1},
		{"Groups", "meta.created", "lt", at(2, 0, plus1), 0},
	} {
		key := `userName eq "ada"`
		if c.resource == "Groups" {
			key = `displayName eq "staff"`
		}
		f := fmt.Sprintf(`%s and %s %s "%s"`, key, c.attr, c.op, c.value)
		r := e.must(200, "GET", "/"+c.resource+"?filter="+url.QueryEscape(f), "")
		if n := total(t, r); n != c.want {
			t.Errorf("%s %s: totalResults %d, want %d", c.resource, f, n, c.want)
		}
	}
}

// A dateTime compared with what is not one could only be answered wrongly
// (as text): 400 invalidFilter, not a 200 with the wrong users.
func TestDateTimeFilterRefusesOtherValues(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.must(201, "POST", "/Users", `{"userName":"ada"}`)
	e.must(201, "POST", "/Groups", `{"displayName":"staff"}`)
	for _, f := range []string{
		`userName eq "ada" and meta.lastModified gt "yesterday"`,
		`userName eq "ada" and meta.lastModified gt "2025-06-01"`,
		`userName eq "ada" and meta.created lt 20250601`,
		`userName eq "ada" and meta.created sw "2025"`,
		`userName eq "ada" and meta.created sw "2025-06-01T09:00:00Z"`, // an instant has no prefix
		`userName eq "ada" and meta.lastModified co "2025-06-01T09:00:00Z"`,
		`userName eq "ada" and META.LASTMODIFIED ge "2025-06-01 09:00:00Z"`,
	} {
		scimError(t, e.do("GET", "/Users?filter="+url.QueryEscape(f), ""), 400, "invalidFilter")
	}
	scimError(t, e.do("GET", "/Groups?filter="+url.QueryEscape(`displayName eq "staff" and meta.lastModified gt "now"`), ""), 400, "invalidFilter")
	// eq null (absent) stays a valid question.
	e.must(200, "GET", "/Users?filter="+url.QueryEscape(`userName eq "ada" and meta.created eq null`), "")
}
