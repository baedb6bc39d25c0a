package bolt

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func TestUserNameAndExternalIDIndexes(t *testing.T) {
	db := openTest(t)
	u := &store.User{Email: "ada@x.io", UserName: "Ada@Example.COM", IdP: "entra", ExternalID: "oid-Ada"}
	putUser(t, db, u)
	checkIndexes(t, db)

	hits := []struct {
		name string
		get  func(store.Tx) (*store.User, error)
	}{
		{"user name exact", func(tx store.Tx) (*store.User, error) { return tx.UserByUserName("Ada@Example.COM") }},
		{"user name other case", func(tx store.Tx) (*store.User, error) { return tx.UserByUserName("ada@example.com") }},
		{"external id", func(tx store.Tx) (*store.User, error) { return tx.UserByExternalID("entra", "oid-Ada") }},
	}
	misses := []struct {
		name string
		get  func(store.Tx) (*store.User, error)
	}{
		{"empty user name", func(tx store.Tx) (*store.User, error) { return tx.UserByUserName("") }},
		{"other user name", func(tx store.Tx) (*store.User, error) { return tx.UserByUserName("bob@example.com") }},
		{"external id other case", func(tx store.Tx) (*store.User, error) { return tx.UserByExternalID("entra", "OID-ADA") }},
		{"external id other idp", func(tx store.Tx) (*store.User, error) { return tx.UserByExternalID("okta", "oid-Ada") }},
		{"empty external id", func(tx store.Tx) (*store.User, error) { return tx.UserByExternalID("entra", "") }},
	}
	view(t, db, func(tx store.Tx) error {
		for _, h := range hits {
			if got, err := h.get(tx); err != nil || got.ID != u.ID {
				t.Errorf("%s: %v, %v", h.name, got, err)
			}
		}
		for _, m := range misses {
			if _, err := m.get(tx); !isNotFound(err) {
				t.Errorf("%s: err = %v, want ErrNotFound", m.name, err)
			}
		}
		return nil
	})

	// Changing the fields moves the index entries; the old ones are gone.
	u.UserName, u.ExternalID, u.IdP = "augusta@example.com", "oid-2", "okta"
	putUser(t, db, u)
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		if _, err := tx.UserByUserName("ada@example.com"); !isNotFound(err) {
			t.Errorf("old user name still found: %v", err)
		}
		if _, err := tx.UserByExternalID("entra", "oid-Ada"); !isNotFound(err) {
			t.Errorf("old external id still found: %v", err)
		}
		if got, err := tx.UserByExternalID("okta", "oid-2"); err != nil || got.ID != u.ID {
			t.Errorf("new external id: %v", err)
		}
		return nil
	})

	update(t, db, func(tx store.Tx) error { return tx.DeleteUser(u.ID) })
	checkIndexes(t, db)
}

func TestSCIMConflictsWriteNothing(t *testing.T) {
	tests := []struct {
		name string
		u    store.User
		want error
	}{
		{"user name taken, other case", store.User{UserName: "OWNER@x.io"}, store.ErrUserNameTaken},
		{"external id taken in same idp", store.User{IdP: "entra", ExternalID: "oid-owner"}, store.ErrExternalIDTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			putUser(t, db, &store.User{UserName: "owner@x.io", IdP: "entra", ExternalID: "oid-owner"})
			second := &store.User{UserName: "second@x.io", IdP: "entra", ExternalID: "oid-second"}
			putUser(t, db, second)
			before := snapshot(t, db)
			for _, id := range []string{"", second.ID} {
				u := tt.u
				u.ID = id
				err := db.Update(t.Context(), func(tx store.Tx) error {
					if err := tx.PutUser(&u); !errors.Is(err, tt.want) {
						t.Errorf("id %q: PutUser err = %v, want %v", id, err, tt.want)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				sameSnapshot(t, before, snapshot(t, db))
			}
		})
	}
	t.Run("same external id in another idp is fine", func(t *testing.T) {
		db := openTest(t)
		putUser(t, db, &store.User{IdP: "entra", ExternalID: "x"})
		putUser(t, db, &store.User{IdP: "okta", ExternalID: "x"})
		checkIndexes(t, db)
	})
}

func TestListUsersPaging(t *testing.T) {
	db := openTest(t)
	ids := []string{"e", "a", "c", "b", "d"}
	for _, id := range ids {
		putUser(t, db, &store.User{ID: id, IdP: "okta"})
	}
	putUser(t, db, &store.User{ID: "0", IdP: "entra"})
	putUser(t, db, &store.User{ID: "z"}) // no IdP: listed under ""
	tests := []struct {
		idp          string
		start, count int
		want         string
		total        int
	}{
		{"okta", 1, 100, "abcde", 5},
		{"okta", 0, 2, "ab", 5},
		{"okta", -3, 2, "ab", 5},
		{"okta", 2, 2, "bc", 5},
		{"okta", 5, 2, "e", 5},
		{"okta", 6, 2, "", 5},
		{"okta", 1, 0, "", 5},
		{"entra", 1, 10, "0", 1},
		{"", 1, 10, "z", 1},
		{"pingone", 1, 10, "", 0},
	}
	for _, tt := range tests {
		view(t, db, func(tx store.Tx) error {
			users, total, err := tx.ListUsers(tt.idp, tt.start, tt.count)
			if err != nil {
				return err
			}
			var got strings.Builder
			for _, u := range users {
				got.WriteString(u.ID)
			}
			if got.String() != tt.want || total != tt.total {
				t.Errorf("ListUsers(%q, %d, %d) = %q, %d; want %q, %d", tt.idp, tt.start, tt.count, got.String(), total, tt.want, tt.total)
			}
			return nil
		})
	}
	// Moving a user to another IdP moves them between listings and counts.
	putUser(t, db, &store.User{ID: "c", IdP: "entra"})
	update(t, db, func(tx store.Tx) error { return tx.DeleteUser("a") })
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		if _, total, _ := tx.ListUsers("okta", 1, 10); total != 3 {
			t.Errorf("okta total = %d, want 3", total)
		}
		if users, total, _ := tx.ListUsers("entra", 1, 10); total != 2 || users[1].ID != "c" {
			t.Errorf("entra = %v, %d", users, total)
		}
		return nil
	})
}

// groupNames reads a user's Groups.
func groupsOf(t *testing.T, db *DB, id string) []string {
	t.Helper()
	var g []string
	view(t, db, func(tx store.Tx) error {
		u, err := tx.User(id)
		if err != nil {
			return err
		}
		g = u.Groups
		return nil
	})
	return g
}

func TestGroupsDenormalizeIntoUsers(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ada := &store.User{ID: "ada", IdP: "entra", Groups: []string{"from-login"}, Updated: t0}
	bob := &store.User{ID: "bob", IdP: "entra", Updated: t0}
	cat := &store.User{ID: "cat", IdP: "entra", Updated: t0}
	for _, u := range []*store.User{ada, bob, cat} {
		putUser(t, db, u)
	}
	g := &store.Group{IdP: "entra", DisplayName: "Engineering", ExternalID: "g-oid", Members: []string{"bob", "ada", "ada", ""}}
	update(t, db, func(tx store.Tx) error { return tx.PutGroup(g) })
	checkIndexes(t, db)
	if !slices.Equal(g.Members, []string{"ada", "bob"}) || g.ID == "" {
		t.Fatalf("stored group %+v", g)
	}
	steps := []struct {
		name   string
		change func(*store.Group)
		want   map[string][]string
	}{
		{"created", func(*store.Group) {}, map[string][]string{
			"ada": {"Engineering", "from-login"}, "bob": {"Engineering"}, "cat": nil}},
		{"member added", func(g *store.Group) { g.Members = append(g.Members, "cat") }, map[string][]string{
			"ada": {"Engineering", "from-login"}, "bob": {"Engineering"}, "cat": {"Engineering"}}},
		{"member removed", func(g *store.Group) { g.Members = []string{"ada", "cat"} }, map[string][]string{
			"ada": {"Engineering", "from-login"}, "bob": nil, "cat": {"Engineering"}}},
		{"renamed", func(g *store.Group) { g.DisplayName = "Eng" }, map[string][]string{
			"ada": {"Eng", "from-login"}, "bob": nil, "cat": {"Eng"}}},
		{"members replaced", func(g *store.Group) { g.Members = []string{"bob"} }, map[string][]string{
			"ada": {"from-login"}, "bob": {"Eng"}, "cat": nil}},
	}
	for _, s := range steps {
		s.change(g)
		g.Updated = g.Updated.Add(time.Minute)
		update(t, db, func(tx store.Tx) error { return tx.PutGroup(g) })
		checkIndexes(t, db)
		for id, want := range s.want {
			if got := groupsOf(t, db, id); !slices.Equal(got, want) {
				t.Errorf("%s: %s Groups = %v, want %v", s.name, id, got, want)
			}
		}
	}
	view(t, db, func(tx store.Tx) error {
		refs, err := tx.GroupsOfUser("bob")
		if err != nil || len(refs) != 1 || refs[0] != (store.GroupRef{ID: g.ID, DisplayName: "Eng"}) {
			t.Errorf("GroupsOfUser = %v, %v", refs, err)
		}
		if got, err := tx.GroupByName("entra", "ENG"); err != nil || got.ID != g.ID {
			t.Errorf("GroupByName other case: %v", err)
		}
		if _, err := tx.GroupByName("entra", "Engineering"); !isNotFound(err) {
			t.Errorf("old name still found: %v", err)
		}
		if _, err := tx.GroupByName("okta", "Eng"); !isNotFound(err) {
			t.Errorf("name found in another idp: %v", err)
		}
		if got, err := tx.GroupByExternalID("entra", "g-oid"); err != nil || got.ID != g.ID {
			t.Errorf("GroupByExternalID: %v", err)
		}
		if u, _ := tx.User("bob"); !u.Updated.Equal(g.Updated) {
			t.Errorf("bob Updated = %v, want the group's change time %v", u.Updated, g.Updated)
		}
		return nil
	})

	// Deleting a member user removes them from the group record.
	update(t, db, func(tx store.Tx) error { return tx.DeleteUser("bob") })
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		got, err := tx.Group(g.ID)
		if err != nil || len(got.Members) != 0 {
			t.Errorf("group after member deletion: %+v, %v", got, err)
		}
		return nil
	})

	// Deleting the group takes its name out of every member's Groups.
	g.Members = []string{"ada", "cat"}
	update(t, db, func(tx store.Tx) error { return tx.PutGroup(g) })
	update(t, db, func(tx store.Tx) error { return tx.DeleteGroup(g.ID) })
	checkIndexes(t, db)
	for _, id := range []string{"ada", "cat"} {
		if got := groupsOf(t, db, id); slices.Contains(got, "Eng") {
			t.Errorf("%s keeps deleted group: %v", id, got)
		}
	}
	if got := groupsOf(t, db, "ada"); !slices.Equal(got, []string{"from-login"}) {
		t.Errorf("ada lost her login groups: %v", got)
	}
	update(t, db, func(tx store.Tx) error {
		if err := tx.DeleteGroup(g.ID); !isNotFound(err) {
			t.Errorf("second delete: %v", err)
		}
		return nil
	})
}

func TestTwoGroupsWithOneNameInDifferentIdPs(t *testing.T) {
	db := openTest(t)
	putUser(t, db, &store.User{ID: "u"})
	a := &store.Group{IdP: "entra", DisplayName: "Staff", Members: []string{"u"}}
	b := &store.Group{IdP: "okta", DisplayName: "staff", Members: []string{"u"}}
	update(t, db, func(tx store.Tx) error { return tx.PutGroup(a) })
	update(t, db, func(tx store.Tx) error { return tx.PutGroup(b) })
	checkIndexes(t, db)
	// Leaving one group keeps the name the other still grants.
	a.Members = nil
	update(t, db, func(tx store.Tx) error { return tx.PutGroup(a) })
	if got := groupsOf(t, db, "u"); !slices.Equal(got, []string{"staff"}) {
		t.Errorf("Groups = %v", got)
	}
	checkIndexes(t, db)
}

func TestPutGroupFailuresWriteNothing(t *testing.T) {
	tests := []struct {
		name string
		g    store.Group
		want error
	}{
		{"name taken, other case", store.Group{IdP: "entra", DisplayName: "OWNERS"}, store.ErrGroupNameTaken},
		{"external id taken", store.Group{IdP: "entra", DisplayName: "new", ExternalID: "ext"}, store.ErrExternalIDTaken},
		{"member missing", store.Group{IdP: "entra", DisplayName: "new", Members: []string{"u", "ghost"}}, store.ErrNotFound},
		{"no name", store.Group{IdP: "entra", DisplayName: " "}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			putUser(t, db, &store.User{ID: "u"})
			update(t, db, func(tx store.Tx) error {
				return tx.PutGroup(&store.Group{IdP: "entra", DisplayName: "owners", ExternalID: "ext", Members: []string{"u"}})
			})
			before := snapshot(t, db)
			g := tt.g
			err := db.Update(t.Context(), func(tx store.Tx) error {
				err := tx.PutGroup(&g)
				if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
					t.Errorf("PutGroup err = %v, want %v", err, tt.want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sameSnapshot(t, before, snapshot(t, db))
		})
	}
}

func TestListGroupsPaging(t *testing.T) {
	db := openTest(t)
	for i := range 5 {
		update(t, db, func(tx store.Tx) error {
			return tx.PutGroup(&store.Group{ID: fmt.Sprint(i), IdP: "okta", DisplayName: fmt.Sprint("g", i)})
		})
	}
	view(t, db, func(tx store.Tx) error {
		gs, total, err := tx.ListGroups("okta", 2, 2)
		if err != nil || total != 5 || len(gs) != 2 || gs[0].ID != "1" || gs[1].ID != "2" {
			t.Errorf("ListGroups = %v, %d, %v", gs, total, err)
		}
		return nil
	})
	update(t, db, func(tx store.Tx) error { return tx.DeleteGroup("0") })
	checkIndexes(t, db)
}

func TestTombstones(t *testing.T) {
	db := openTest(t)
	when := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	update(t, db, func(tx store.Tx) error {
		return tx.PutTombstone(&store.Tombstone{IdP: "entra", Subject: "oid-1", UserID: "u1", Deleted: when})
	})
	view(t, db, func(tx store.Tx) error {
		ts, err := tx.Tombstone("entra", "oid-1")
		if err != nil || ts.UserID != "u1" || !ts.Deleted.Equal(when) {
			t.Errorf("Tombstone = %+v, %v", ts, err)
		}
		for _, k := range [][2]string{{"okta", "oid-1"}, {"entra", "OID-1"}, {"entra", ""}, {"entr", "aoid-1"}} {
			if _, err := tx.Tombstone(k[0], k[1]); !isNotFound(err) {
				t.Errorf("Tombstone(%q, %q) = %v, want ErrNotFound", k[0], k[1], err)
			}
		}
		return nil
	})
	update(t, db, func(tx store.Tx) error {
		if err := tx.PutTombstone(&store.Tombstone{IdP: "entra"}); err == nil {
			t.Error("tombstone without subject accepted")
		}
		if err := tx.DeleteTombstone("entra", "oid-1"); err != nil {
			return err
		}
		return tx.DeleteTombstone("entra", "never-there")
	})
	view(t, db, func(tx store.Tx) error {
		if _, err := tx.Tombstone("entra", "oid-1"); !isNotFound(err) {
			t.Errorf("tombstone survived deletion: %v", err)
		}
		return nil
	})
}
