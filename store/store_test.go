package store

import (
	"slices"
	"testing"
	"time"
)

func TestNormalLinks(t *testing.T) {
	okta := Link{IdP: "okta", Subject: "00u1"}
	entra := Link{IdP: "entra", Subject: "oid-1"}
	for _, c := range []struct {
		name    string
		in      []Link
		want    []Link
		wantErr bool
	}{
		{"none", nil, nil, false},
		{"order kept", []Link{okta, entra}, []Link{okta, entra}, false},
		{"exact duplicates dropped", []Link{okta, entra, okta}, []Link{okta, entra}, false},
		{"same IdP, other subject kept", []Link{okta, {IdP: "okta", Subject: "00u2"}}, []Link{okta, {IdP: "okta", Subject: "00u2"}}, false},
		{"empty subject", []Link{okta, {IdP: "okta"}}, nil, true},
		{"empty IdP", []Link{{Subject: "00u1"}}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := NormalLinks(c.in)
			if (err != nil) != c.wantErr || !slices.Equal(got, c.want) {
				t.Errorf("NormalLinks(%v) = %v, %v; want %v (error: %v)", c.in, got, err, c.want, c.wantErr)
			}
		})
	}
}

// TestNextStamp: Updated, SCIM's meta.version, changes with every write
// and never goes back, also when the clock reads the previous stamp again
// (a coarse clock, two writes in one tick) or an earlier time.
func TestNextStamp(t *testing.T) {
	prev := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		now  time.Time
		want time.Time
	}{
		{"later: now", prev.Add(time.Second), prev.Add(time.Second)},
		{"same instant: just after", prev, prev.Add(time.Nanosecond)},
		{"earlier: just after", prev.Add(-time.Second), prev.Add(time.Nanosecond)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := NextStamp(prev, c.now); !got.Equal(c.want) {
				t.Errorf("NextStamp(prev, %v) = %v, want %v", c.now, got, c.want)
			}
		})
	}
}

// TestInvalidationEmpty: an invalidation of everything (a restore) is not
// empty, though it names no session or user: Forget drops the cache and
// tells the other instances.
func TestInvalidationEmpty(t *testing.T) {
	for _, c := range []struct {
		inv  Invalidation
		want bool
	}{
		{Invalidation{}, true},
		{Invalidation{Sessions: []string{"h"}}, false},
		{Invalidation{Users: []string{"u"}}, false},
		{Invalidation{All: true}, false},
	} {
		if got := c.inv.Empty(); got != c.want {
			t.Errorf("%+v.Empty() = %v, want %v", c.inv, got, c.want)
		}
	}
}

func TestFillTimes(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	earlier := now.Add(-time.Hour)
	for _, c := range []struct {
		name                     string
		created, updated         time.Time
		wantCreated, wantUpdated time.Time
	}{
		{"both zero", time.Time{}, time.Time{}, now, now},
		{"created kept, updated follows it", earlier, time.Time{}, earlier, earlier},
		{"both kept", earlier, now.Add(-time.Minute), earlier, now.Add(-time.Minute)},
		{"updated kept, created filled", time.Time{}, earlier, now, earlier},
	} {
		t.Run(c.name, func(t *testing.T) {
			created, updated := c.created, c.updated
			FillTimes(&created, &updated, now)
			if !created.Equal(c.wantCreated) || !updated.Equal(c.wantUpdated) {
				t.Errorf("FillTimes = %v, %v; want %v, %v", created, updated, c.wantCreated, c.wantUpdated)
			}
		})
	}
}

// TestNormalMembersAndGroupNames: the stored forms are sorted and free of
// duplicates, and nil when empty; an empty member ID is dropped, and so is
// a group name that is only white space (no access rule or header can mean
// it), while a name with white space around it is kept byte for byte.
func TestNormalMembersAndGroupNames(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func([]string) []string
		in   []string
		want []string
	}{
		{"members sorted, deduplicated", NormalMembers, []string{"u2", "u1", "u2"}, []string{"u1", "u2"}},
		{"members: empty ID dropped", NormalMembers, []string{"u1", "", "u2"}, []string{"u1", "u2"}},
		{"members: only empty IDs", NormalMembers, []string{"", ""}, nil},
		{"members: none", NormalMembers, nil, nil},
		{"groups sorted, deduplicated", NormalGroupNames, []string{"ops", "eng", "ops"}, []string{"eng", "ops"}},
		{"groups: blank names dropped", NormalGroupNames, []string{"eng", "", " ", "\t\u00a0"}, []string{"eng"}},
		{"groups: only blank names", NormalGroupNames, []string{" ", ""}, nil},
		{"groups: surrounding space kept", NormalGroupNames, []string{" admins", "admins"}, []string{" admins", "admins"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.f(slices.Clone(c.in))
			if !slices.Equal(got, c.want) || (got == nil) != (c.want == nil) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestFoldName: userNames, emails and group names that differ only in case
// or in Unicode normal form are one name to every index: a decomposed
// "é" (e and a combining acute) is the precomposed one, and "ß" folds
// like "ss".
func TestFoldName(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"Ada@Example.COM", "ada@example.com"},
		{"AME\u0301LIE", "am\u00e9lie"},
		{"Ame\u0301lie", "AM\u00c9LIE"},
		{"STRASSE", "stra\u00dfe"},
		{"stra\u00dfe", "Strasse"},
	} {
		if fa, fb := FoldName(c.a), FoldName(c.b); fa != fb {
			t.Errorf("FoldName(%q) = %q, FoldName(%q) = %q: want one name", c.a, fa, c.b, fb)
		}
	}
	if FoldName("admins") == FoldName("admins\u00a0") {
		t.Error("a trailing no-break space folded away")
	}
}
