package store

import (
	"slices"
	"testing"
	"time"
)

func TestMembersTouched(t *testing.T) {
	for _, c := range []struct {
		name          string
		before, after []string
		renamed       bool
		want          []string
	}{
		{"nothing", nil, nil, false, nil},
		{"same members", []string{"a", "b"}, []string{"a", "b"}, false, nil},
		{"same members, renamed", []string{"a", "b"}, []string{"a", "b"}, true, []string{"a", "b"}},
		{"joined and left", []string{"a", "c", "e"}, []string{"b", "c", "d"}, false, []string{"a", "b", "d", "e"}},
		{"joined, left and renamed", []string{"a", "c"}, []string{"c", "d"}, true, []string{"a", "c", "d"}},
		{"all left", []string{"a", "b"}, nil, false, []string{"a", "b"}},
		{"all joined", nil, []string{"a", "b"}, false, []string{"a", "b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := MembersTouched(c.before, c.after, c.renamed); !slices.Equal(got, c.want) {
				t.Errorf("MembersTouched(%v, %v, %v) = %v, want %v", c.before, c.after, c.renamed, got, c.want)
			}
		})
	}
}

func TestRegroupSCIM(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	for _, c := range []struct {
		name     string
		groups   []string
		was, now map[string]bool
		want     []string
		changed  bool
	}{
		{"joined a SCIM group", []string{"staff"}, set(), set("eng"), []string{"eng", "staff"}, true},
		{"left a SCIM group, login groups kept", []string{"eng", "staff"}, set("eng"), set(), []string{"staff"}, true},
		{"a group renamed", []string{"eng", "staff"}, set("eng"), set("engineering"), []string{"engineering", "staff"}, true},
		{"a name also granted by a login goes with the SCIM group", []string{"eng"}, set("eng"), set(), nil, true},
		{"nothing moved", []string{"eng", "staff"}, set("eng"), set("eng"), []string{"eng", "staff"}, false},
		{"still granted by another SCIM group", []string{"eng"}, set("eng"), set("eng"), []string{"eng"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := &User{Groups: c.groups, Updated: t0}
			when := t0.Add(time.Hour)
			changed := u.RegroupSCIM(c.was, c.now, when)
			if changed != c.changed || !slices.Equal(u.Groups, c.want) {
				t.Errorf("RegroupSCIM = %v with Groups %v, want %v with %v", changed, u.Groups, c.changed, c.want)
			}
			if wantUpdated := map[bool]time.Time{true: when, false: t0}[c.changed]; !u.Updated.Equal(wantUpdated) {
				t.Errorf("Updated = %v, want %v", u.Updated, wantUpdated)
			}
		})
	}
	// A name the last login's defaults granted stays when the user leaves
	// a SCIM group of that name: the next login grants it again anyway.
	withDefault := &User{Groups: []string{"eng", "staff"}, DefaultGroups: []string{"staff"}, Updated: t0}
	if !withDefault.RegroupSCIM(set("eng", "staff"), set(), t0) || !slices.Equal(withDefault.Groups, []string{"staff"}) {
		t.Errorf("left the SCIM groups eng and staff, staff a default: groups %v, want [staff]", withDefault.Groups)
	}
	u := &User{Groups: []string{"eng"}, Updated: t0}
	// A change stamped by an earlier clock still moves Updated (and so
	// SCIM's meta.version), just past the last write's, never back.
	if !u.RegroupSCIM(set("eng"), set(), t0.Add(-time.Hour)) || !u.Updated.Equal(t0.Add(time.Nanosecond)) {
		t.Errorf("a change stamped an hour before the last write moved Updated to %v, want just after %v", u.Updated, t0)
	}
}
