package storetest

import (
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	register(testCase{"DeleteUserMovesGroupVersions", testDeleteUserMovesGroupVersions})
}

// testDeleteUserMovesGroupVersions: a group's member list is part of its
// SCIM representation, whose meta.version is Updated, so every change to
// the list moves Updated. PutGroup stores the Updated its caller (SCIM)
// moved; DeleteUser takes the user out of their groups itself, so it
// moves each one's Updated (store.NextStamp: forward even when the stamp
// is ahead of the clock, as another instance's may be), and leaves the
// groups the user was not in, and everything else about the group, as
// they were.
func testDeleteUserMovesGroupVersions(e *env) {
	gone := e.putUser(&store.User{ID: "u-gone"})
	stay := e.putUser(&store.User{ID: "u-stay"})
	ahead := time.Now().Add(time.Hour).UTC()
	past := e.putGroup(&store.Group{IdP: "entra", DisplayName: "Past", ExternalID: "ext-past", Members: []string{gone.ID, stay.ID},
		Created: t0, Updated: t0})
	future := e.putGroup(&store.Group{IdP: "entra", DisplayName: "Future", Members: []string{gone.ID},
		Created: t0, Updated: ahead})
	other := e.putGroup(&store.Group{IdP: "entra", DisplayName: "Other", Members: []string{stay.ID},
		Created: t0, Updated: t0})

	start := time.Now()
	e.update(func(tx store.Tx) error { return tx.DeleteUser(gone.ID) })

	e.view(func(tx store.Tx) error {
		for _, c := range []struct {
			before  *store.Group
			members []string
			moved   bool
		}{
			{past, []string{stay.ID}, true},
			{future, nil, true},
			{other, []string{stay.ID}, false},
		} {
			got, err := tx.Group(c.before.ID)
			if err != nil {
				return err
			}
			want := *c.before
			want.Members = c.members
			switch {
			case !c.moved:
			case !got.Updated.After(c.before.Updated):
				e.Errorf("group %s after its member was deleted: Updated %v, not after %v (its SCIM version did not change)",
					c.before.DisplayName, got.Updated, c.before.Updated)
			case c.before.Updated.Before(start) && got.Updated.Before(start):
				e.Errorf("group %s after its member was deleted: Updated %v, before the delete (%v)", c.before.DisplayName, got.Updated, start)
			default:
				want.Updated = got.Updated
			}
			e.sameJSON("group "+c.before.DisplayName+" after DeleteUser", &want, got)
		}
		return nil
	})
}
