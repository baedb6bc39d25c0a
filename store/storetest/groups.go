package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	register(
		testCase{"Groups", testGroups},
		testCase{"PutGroupRefusalsWriteNothing", testPutGroupRefusals},
		testCase{"PutGroupMemberDeletedMeanwhile", testMemberDeletedMeanwhile},
		testCase{"ListAndForEachGroup", testListGroups},
		testCase{"ListGroupsPaging", testListGroupsPaging},
		testCase{"Tombstones", testTombstones},
	)
}

func (e *env) groupsOf(id string) []string {
	e.Helper()
	u := e.user(id)
	if u == nil {
		e.Fatalf("user %s missing", id)
	}
	return u.Groups
}

func testGroups(e *env) {
	a := e.putUser(&store.User{ID: "ua", Groups: []string{"login-group"}})
	b := e.putUser(&store.User{ID: "ub"})
	c := e.putUser(&store.User{ID: "uc"})
	g := e.putGroup(&store.Group{IdP: "entra", DisplayName: "Ops", ExternalID: "ext-ops", Members: []string{b.ID, a.ID, a.ID, ""},
		Created: t0, Updated: t0})
	if g.ID == "" || !slices.Equal(g.Members, []string{"ua", "ub"}) {
		e.Fatalf("PutGroup: ID %q, Members %v (want sorted, unique)", g.ID, g.Members)
	}
	e.view(func(tx store.Tx) error {
		got, err := tx.Group(g.ID)
		if err != nil {
			return err
		}
		e.sameJSON("Group", g, got)
		for _, name := range []string{"Ops", "OPS", "ops"} {
			if got, err := tx.GroupByName("entra", name); err != nil || got.ID != g.ID {
				e.Errorf("GroupByName(%q) = %v, %v", name, got, err)
			}
		}
		if _, err := tx.GroupByName("okta", "Ops"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("GroupByName in another IdP: %v", err)
		}
		if got, err := tx.GroupByExternalID("entra", "ext-ops"); err != nil || got.ID != g.ID {
			e.Errorf("GroupByExternalID: %v", err)
		}
		if _, err := tx.GroupByExternalID("entra", "EXT-OPS"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("GroupByExternalID is exact: %v", err)
		}
		if _, err := tx.Group("nope"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("Group(missing): %v", err)
		}
		refs, err := tx.GroupsOfUser(a.ID)
		if err != nil || len(refs) != 1 || refs[0] != (store.GroupRef{ID: g.ID, DisplayName: "Ops"}) {
			e.Errorf("GroupsOfUser = %v, %v", refs, err)
		}
		return nil
	})
	if got := e.groupsOf(a.ID); !slices.Equal(got, []string{"Ops", "login-group"}) {
		e.Errorf("member's Groups = %v", got)
	}
	// Membership changes: b leaves, c joins; a stays and keeps its login group.
	g.Members = []string{a.ID, c.ID}
	e.putGroup(g)
	if got := e.groupsOf(b.ID); len(got) != 0 {
		e.Errorf("left member's Groups = %v", got)
	}
	if got := e.groupsOf(c.ID); !slices.Equal(got, []string{"Ops"}) {
		e.Errorf("joined member's Groups = %v", got)
	}
	// A rename reaches every member and moves the name index.
	g.DisplayName = "Operations"
	e.putGroup(g)
	for _, id := range []string{a.ID, c.ID} {
		if got := e.groupsOf(id); !slices.Contains(got, "Operations") || slices.Contains(got, "Ops") {
			e.Errorf("%s's Groups after rename = %v", id, got)
		}
	}
	e.view(func(tx store.Tx) error {
		if _, err := tx.GroupByName("entra", "Ops"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("old name still found: %v", err)
		}
		if got, err := tx.GroupByName("entra", "operations"); err != nil || got.ID != g.ID {
			e.Errorf("new name: %v", err)
		}
		return nil
	})
	// A missing member is refused and nothing changes.
	before := e.dump()
	err := e.st.Update(e.Context(), func(tx store.Tx) error {
		return tx.PutGroup(&store.Group{ID: g.ID, IdP: "entra", DisplayName: "Operations", Members: []string{a.ID, "ghost"}})
	})
	if !errors.Is(err, store.ErrNotFound) {
		e.Errorf("PutGroup with a missing member: %v, want ErrNotFound", err)
	}
	e.sameDump("refused PutGroup", before, e.dump())
	// Deleting the group takes its name from the members.
	e.update(func(tx store.Tx) error { return tx.DeleteGroup(g.ID) })
	if got := e.groupsOf(a.ID); !slices.Equal(got, []string{"login-group"}) {
		e.Errorf("Groups after DeleteGroup = %v", got)
	}
	e.view(func(tx store.Tx) error {
		if _, err := tx.GroupByExternalID("entra", "ext-ops"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("externalId after DeleteGroup: %v", err)
		}
		if refs, _ := tx.GroupsOfUser(c.ID); len(refs) != 0 {
			e.Errorf("GroupsOfUser after DeleteGroup: %v", refs)
		}
		return nil
	})
	if err := e.st.Update(e.Context(), func(tx store.Tx) error { return tx.DeleteGroup(g.ID) }); !errors.Is(err, store.ErrNotFound) {
		e.Errorf("DeleteGroup twice: %v", err)
	}
	// The same name in two IdPs is two groups.
	e.putGroup(&store.Group{IdP: "entra", DisplayName: "Staff"})
	e.putGroup(&store.Group{IdP: "okta", DisplayName: "Staff"})
	if n := e.counts().Groups; n != 2 {
		e.Errorf("Counts.Groups = %d, want 2", n)
	}
}

func testPutGroupRefusals(e *env) {
	e.putUser(&store.User{ID: "u1"})
	e.putGroup(&store.Group{IdP: "entra", DisplayName: "Owner", ExternalID: "ext-owner"})
	second := e.putGroup(&store.Group{IdP: "entra", DisplayName: "Second", ExternalID: "ext-second", Members: []string{"u1"}})
	tests := []struct {
		name string
		g    store.Group
		want error
	}{
		{"name taken", store.Group{IdP: "entra", DisplayName: "OWNER"}, store.ErrGroupNameTaken},
		{"name taken after folding", store.Group{IdP: "entra", DisplayName: "owner"}, store.ErrGroupNameTaken},
		{"externalId taken", store.Group{IdP: "entra", DisplayName: "New", ExternalID: "ext-owner"}, store.ErrExternalIDTaken},
		{"name too long", store.Group{IdP: "entra", DisplayName: long(store.MaxKeyBytes + 1)}, store.ErrValueTooLong},
		{"externalId too long", store.Group{IdP: "entra", DisplayName: "New", ExternalID: long(store.MaxKeyBytes + 1)}, store.ErrValueTooLong},
		{"name with newline", store.Group{IdP: "entra", DisplayName: "a\nb"}, store.ErrInvalidValue},
		{"externalId with NUL", store.Group{IdP: "entra", DisplayName: "New", ExternalID: "x\x00"}, store.ErrInvalidValue},
		{"idp too long", store.Group{IdP: long(store.MaxKeyBytes + 1), DisplayName: "New"}, store.ErrValueTooLong},
	}
	for _, tt := range tests {
		for _, existing := range []bool{false, true} {
			before := e.dump()
			g := tt.g
			g.Members = []string{"u1"}
			if existing {
				g.ID = second.ID
			}
			err := e.st.Update(e.Context(), func(tx store.Tx) error {
				if err := tx.PutGroup(&g); !errors.Is(err, tt.want) {
					e.Errorf("%s (existing %v): PutGroup = %v, want %v", tt.name, existing, err, tt.want)
				}
				return nil
			})
			if err != nil {
				e.Fatal(err)
			}
			e.sameDump(tt.name, before, e.dump())
		}
	}
	if err := e.st.Update(e.Context(), func(tx store.Tx) error {
		return tx.PutGroup(&store.Group{IdP: "entra", DisplayName: "  "})
	}); err == nil {
		e.Error("PutGroup with a blank name succeeded")
	}
}

// deletionWait is how long testMemberDeletedMeanwhile waits for a
// deletion it started inside an Update: ample for a backend with
// concurrent writers; one with a single writer (bolt) holds the deletion
// until the Update commits, and so costs the suite this much.
const deletionWait = 500 * time.Millisecond

// testMemberDeletedMeanwhile: UsersOfIdP locks no row, so a user it found
// may be deleted by another transaction before PutGroup (PostgreSQL).
// PutGroup must then make Update run fn again, not fail with ErrNotFound:
// the rerun's UsersOfIdP leaves the user out, and a caller that writes the
// members it found (SCIM skips the others, docs/scim.md) succeeds. With
// one writer the deletion waits for the commit and takes the member out of
// the group itself. Either way the Update succeeds and the group keeps
// only the user not deleted. A member the transaction deleted itself is
// the caller's mistake, ErrNotFound as ever.
func testMemberDeletedMeanwhile(e *env) {
	gone := e.putUser(&store.User{IdP: "okta", Email: "gone@x.io"})
	stays := e.putUser(&store.User{IdP: "okta", Email: "stays@x.io"})
	g := e.putGroup(&store.Group{IdP: "okta", DisplayName: "Staff"})
	deleted := make(chan error, 1)
	meanwhile := false
	var found []string
	runs := 0
	err := e.st.Update(e.Context(), func(tx store.Tx) error {
		runs++
		var err error
		if found, err = tx.UsersOfIdP("okta", []string{gone.ID, stays.ID}); err != nil {
			return err
		}
		if runs == 1 {
			go func() {
				deleted <- e.st.Update(context.Background(), func(tx store.Tx) error { return tx.DeleteUser(gone.ID) })
			}()
			select {
			case err := <-deleted:
				deleted <- err
				meanwhile = true
			case <-time.After(deletionWait):
			}
		}
		return tx.PutGroup(&store.Group{ID: g.ID, IdP: "okta", DisplayName: "Staff", Members: found})
	})
	if err != nil {
		e.Errorf("group change whose member was deleted meanwhile (committed meanwhile: %v): %v, want a rerun without them", meanwhile, err)
	}
	if err := <-deleted; err != nil {
		e.Fatalf("deletion: %v", err)
	}
	if meanwhile && (runs < 2 || !slices.Equal(found, []string{stays.ID})) {
		e.Errorf("deletion committed meanwhile: fn ran %d times, last found %v; want a rerun finding only %s", runs, found, stays.ID)
	}
	e.view(func(tx store.Tx) error {
		got, err := tx.Group(g.ID)
		if err != nil {
			return err
		}
		if !slices.Equal(got.Members, []string{stays.ID}) {
			e.Errorf("members %v, want only the user not deleted, %s", got.Members, stays.ID)
		}
		return nil
	})
	// The caller's mistakes: refused with ErrNotFound, not rerun (which
	// would end in a conflict error after the backend's last attempt).
	// Only a user UsersOfIdP found, and the transaction did not delete
	// itself, is a conflict when PutGroup finds them gone.
	for _, tc := range []struct {
		name    string
		members func(tx store.Tx) ([]string, error) // what PutGroup is given
	}{
		{"a member its own transaction deleted", func(tx store.Tx) ([]string, error) {
			found, err := tx.UsersOfIdP("okta", []string{stays.ID})
			if err != nil {
				return nil, err
			}
			return found, tx.DeleteUser(stays.ID)
		}},
		{"a member UsersOfIdP asked for and did not find", func(tx store.Tx) ([]string, error) {
			found, err := tx.UsersOfIdP("okta", []string{stays.ID, "no-such-user"})
			if err == nil && !slices.Equal(found, []string{stays.ID}) {
				e.Errorf("UsersOfIdP found %v, want only %s", found, stays.ID)
			}
			return []string{stays.ID, "no-such-user"}, err
		}},
	} {
		err = e.st.Update(e.Context(), func(tx store.Tx) error {
			members, err := tc.members(tx)
			if err != nil {
				return err
			}
			return tx.PutGroup(&store.Group{ID: g.ID, IdP: "okta", DisplayName: "Staff", Members: members})
		})
		if !errors.Is(err, store.ErrNotFound) {
			e.Errorf("PutGroup naming %s: %v, want ErrNotFound", tc.name, err)
		}
	}
}

func testListGroups(e *env) {
	for _, id := range []string{"c", "a", "b"} {
		e.putGroup(&store.Group{ID: id, IdP: "okta", DisplayName: "G" + id})
	}
	e.putGroup(&store.Group{ID: "0", IdP: "entra", DisplayName: "G0"})
	e.view(func(tx store.Tx) error {
		gs, total, err := tx.ListGroups("okta", 2, 5)
		if err != nil {
			return err
		}
		if got := strings.Join(groupIDs(gs), ","); got != "b,c" || total != 3 {
			e.Errorf("ListGroups(okta, 2, 5) = %q, %d", got, total)
		}
		var seen []string
		err = tx.ForEachGroup("a", func(g *store.Group) error {
			seen = append(seen, g.ID)
			return nil
		})
		if err != nil || strings.Join(seen, ",") != "b,c" {
			e.Errorf("ForEachGroup(after a) = %v, %v", seen, err)
		}
		seen = nil
		_ = tx.ForEachGroup("", func(g *store.Group) error { seen = append(seen, g.ID); return nil })
		if strings.Join(seen, ",") != "0,a,b,c" {
			e.Errorf("ForEachGroup() = %v", seen)
		}
		return nil
	})
}

// testListGroupsPaging pages ListGroups as testListUsers pages ListUsers.
func testListGroupsPaging(e *env) {
	for _, id := range []string{"e", "a", "c", "b", "d"} {
		e.putGroup(&store.Group{ID: id, IdP: "okta", DisplayName: "G" + id})
	}
	e.putGroup(&store.Group{ID: "0", IdP: "entra", DisplayName: "G0"})
	e.putGroup(&store.Group{ID: "z", DisplayName: "Gz"})
	for _, tt := range pagingRows() {
		e.view(func(tx store.Tx) error {
			gs, total, err := tx.ListGroups(tt.idp, tt.start, tt.count)
			if err != nil {
				e.Errorf("ListGroups(%q, %d, %d): %v", tt.idp, tt.start, tt.count, err)
				return nil
			}
			if got := strings.Join(groupIDs(gs), ","); got != tt.want || total != tt.total {
				e.Errorf("ListGroups(%q, %d, %d) = %q, %d; want %q, %d", tt.idp, tt.start, tt.count, got, total, tt.want, tt.total)
			}
			return nil
		})
	}
}

func testTombstones(e *env) {
	ts := &store.Tombstone{IdP: "entra", Subject: "oid-1", UserID: "u1", Deleted: t0, Home: &store.Link{IdP: "okta", Subject: "00u1"}}
	e.update(func(tx store.Tx) error { return tx.PutTombstone(ts) })
	e.update(func(tx store.Tx) error { return tx.PutTombstone(ts) }) // again: still one
	e.update(func(tx store.Tx) error {
		return tx.PutTombstone(&store.Tombstone{IdP: "entra", Subject: "oid-2", UserID: "u2", Deleted: t0})
	})
	e.view(func(tx store.Tx) error {
		got, err := tx.Tombstone("entra", "oid-1")
		if err != nil {
			return err
		}
		e.sameJSON("Tombstone", ts, got)
		for _, q := range [][2]string{{"okta", "oid-1"}, {"entra", "OID-1"}, {"entra", ""}} {
			if _, err := tx.Tombstone(q[0], q[1]); !errors.Is(err, store.ErrNotFound) {
				e.Errorf("Tombstone%v: %v", q, err)
			}
		}
		return nil
	})
	// (IdP, subject) order, whatever the lengths of the names.
	for _, t := range [][2]string{{"b", "s1"}, {"aa", "s2"}, {"aa", "s1"}, {"entra-long-name", "a"}} {
		e.update(func(tx store.Tx) error {
			return tx.PutTombstone(&store.Tombstone{IdP: t[0], Subject: t[1], UserID: "u-" + t[0] + t[1], Deleted: t0})
		})
	}
	e.view(func(tx store.Tx) error {
		var got []string
		err := tx.ForEachTombstone(func(ts *store.Tombstone) error { got = append(got, ts.IdP+"/"+ts.Subject); return nil })
		want := []string{"aa/s1", "aa/s2", "b/s1", "entra/oid-1", "entra/oid-2", "entra-long-name/a"}
		if err != nil || !slices.Equal(got, want) {
			e.Errorf("ForEachTombstone visited %v (%v), want %v", got, err, want)
		}
		return nil
	})
	for _, t := range [][2]string{{"b", "s1"}, {"aa", "s2"}, {"aa", "s1"}, {"entra-long-name", "a"}} {
		e.update(func(tx store.Tx) error { return tx.DeleteTombstone(t[0], t[1]) })
	}
	if c := e.counts(); c.Tombstones != 2 {
		e.Errorf("Counts.Tombstones = %d, want 2", c.Tombstones)
	}
	e.update(func(tx store.Tx) error { return tx.DeleteTombstone("entra", "oid-1") })
	e.update(func(tx store.Tx) error { return tx.DeleteTombstone("entra", "oid-1") }) // missing: no error
	e.view(func(tx store.Tx) error {
		if _, err := tx.Tombstone("entra", "oid-1"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("tombstone after delete: %v", err)
		}
		return nil
	})
	if c := e.counts(); c.Tombstones != 1 {
		e.Errorf("Counts.Tombstones after delete = %d, want 1", c.Tombstones)
	}
	refusals := []struct {
		name string
		ts   *store.Tombstone
		want error // nil: any error
	}{
		{"no subject", &store.Tombstone{IdP: "entra"}, nil},
		{"no IdP", &store.Tombstone{Subject: "oid-3"}, nil},
		{"nil", nil, nil},
		{"subject too long", &store.Tombstone{IdP: "entra", Subject: long(store.MaxKeyBytes + 1)}, store.ErrValueTooLong},
		{"idp too long", &store.Tombstone{IdP: long(store.MaxKeyBytes + 1), Subject: "oid-3"}, store.ErrValueTooLong},
	}
	for _, tt := range refusals {
		before := e.dump()
		err := e.st.Update(e.Context(), func(tx store.Tx) error { return tx.PutTombstone(tt.ts) })
		if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
			e.Errorf("%s: PutTombstone = %v, want %v", tt.name, err, tt.want)
		}
		e.sameDump(tt.name, before, e.dump())
	}
	// A tombstone without its deletion time is stamped with the current
	// time (what `caddy sso tombstones` shows).
	from := time.Now()
	e.update(func(tx store.Tx) error {
		return tx.PutTombstone(&store.Tombstone{IdP: "entra", Subject: "oid-3", UserID: "u3"})
	})
	e.view(func(tx store.Tx) error {
		got, err := tx.Tombstone("entra", "oid-3")
		if err != nil {
			return err
		}
		if got.Deleted.Before(from.Add(-time.Second)) || got.Deleted.After(time.Now().Add(time.Second)) {
			e.Errorf("Tombstone without a Deleted time has Deleted %v, want about %v", got.Deleted, from)
		}
		return nil
	})
}

func init() {
	register(
		testCase{"GroupsDenormalizeIntoUsers", testGroupsDenormalize},
		testCase{"TwoGroupsWithOneNameInDifferentIdPs", testTwoGroupsOneName},
	)
}

// testGroupsDenormalize follows a group through its life and checks each
// member's Groups (what the upstream sees) after every step.
func testGroupsDenormalize(e *env) {
	for _, id := range []string{"ada", "bob", "cat"} {
		u := &store.User{ID: id, IdP: "entra", Updated: t0}
		if id == "ada" {
			u.Groups = []string{"from-login"}
		}
		e.putUser(u)
	}
	g := e.putGroup(&store.Group{IdP: "entra", DisplayName: "Engineering", ExternalID: "g-oid", Members: []string{"bob", "ada"}, Updated: t0})
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
		e.putGroup(g)
		for id, want := range s.want {
			if got := e.groupsOf(id); !slices.Equal(got, want) {
				e.Errorf("%s: %s Groups = %v, want %v", s.name, id, got, want)
			}
		}
	}
	// A member whose Groups changed carries the group's change time.
	if u := e.user("bob"); !u.Updated.Equal(g.Updated) {
		e.Errorf("bob Updated = %v, want the group's change time %v", u.Updated, g.Updated)
	}
	// Deleting a member user removes them from the group record.
	e.update(func(tx store.Tx) error { return tx.DeleteUser("bob") })
	e.view(func(tx store.Tx) error {
		got, err := tx.Group(g.ID)
		if err != nil || len(got.Members) != 0 {
			e.Errorf("group after its member's deletion: %+v, %v", got, err)
		}
		return nil
	})
}

func testTwoGroupsOneName(e *env) {
	e.putUser(&store.User{ID: "u"})
	a := e.putGroup(&store.Group{IdP: "entra", DisplayName: "Staff", Members: []string{"u"}})
	e.putGroup(&store.Group{IdP: "okta", DisplayName: "staff", Members: []string{"u"}})
	// Leaving one group keeps the name the other still grants.
	a.Members = nil
	e.putGroup(a)
	if got := e.groupsOf("u"); !slices.Equal(got, []string{"staff"}) {
		e.Errorf("Groups = %v, want [staff]", got)
	}
}
