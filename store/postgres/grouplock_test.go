package postgres

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestGroupChangeWaitsForAnotherChangeOfTheGroup: instance A changes a
// group's members (or name) and holds its transaction open; meanwhile
// instance B writes the same group with PutGroup or deletes it, without
// reading it first. B must wait for A's commit before it reads the
// group's members and name (lockGroup's FOR UPDATE): it works out which
// users' Groups to rewrite from that list, and one read before A's commit
// misses A's change. The interleaving is fixed: B starts only after A has
// written, and A commits only once B waits for a lock. Afterwards the
// group holds what B wrote (B came last), every member's Groups names it,
// and no other user's does.
func TestGroupChangeWaitsForAnotherChangeOfTheGroup(t *testing.T) {
	type users struct{ a, b, x string }
	group := func(id, name string, members ...string) *store.Group {
		return &store.Group{ID: id, IdP: "okta", DisplayName: name, Members: members}
	}
	cases := []struct {
		name string
		// initial is the group's committed members; its name is "staff".
		initial func(u users) []string
		// first is A's change, held open until B waits.
		first func(u users, id string) *store.Group
		// second is B's change: a group to put, nil to delete the group.
		second func(u users, id string) *store.Group
		// want is the group afterwards, nil for none.
		want func(u users, id string) *store.Group
	}{
		{
			name:    "a member A removed is put back by B's list",
			initial: func(u users) []string { return []string{u.a, u.x} },
			first:   func(u users, id string) *store.Group { return group(id, "staff", u.a) },
			second:  func(u users, id string) *store.Group { return group(id, "staff", u.a, u.b, u.x) },
			want:    func(u users, id string) *store.Group { return group(id, "staff", u.a, u.b, u.x) },
		},
		{
			name:    "a member A added is removed by B's list",
			initial: func(u users) []string { return []string{u.a} },
			first:   func(u users, id string) *store.Group { return group(id, "staff", u.a, u.x) },
			second:  func(u users, id string) *store.Group { return group(id, "staff", u.a, u.b) },
			want:    func(u users, id string) *store.Group { return group(id, "staff", u.a, u.b) },
		},
		{
			name:    "B deletes the group A added a member to",
			initial: func(u users) []string { return []string{u.a} },
			first:   func(u users, id string) *store.Group { return group(id, "staff", u.a, u.x) },
			second:  func(u users, id string) *store.Group { return nil },
			want:    func(u users, id string) *store.Group { return nil },
		},
		{
			name:    "B names back the group A renamed",
			initial: func(u users) []string { return []string{u.a} },
			first:   func(u users, id string) *store.Group { return group(id, "crew", u.a) },
			second:  func(u users, id string) *store.Group { return group(id, "staff", u.a, u.b) },
			want:    func(u users, id string) *store.Group { return group(id, "staff", u.a, u.b) },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b, ids := twoInstancesWithUsers(t, 3)
			u := users{a: ids[0], b: ids[1], x: ids[2]}
			g := group("", "staff", c.initial(u)...)
			update(t, a, func(tx store.Tx) error { return tx.PutGroup(g) })

			secondDone := make(chan error, 1)
			var once sync.Once
			update(t, a, func(tx store.Tx) error {
				if err := tx.PutGroup(c.first(u, g.ID)); err != nil {
					return err
				}
				once.Do(func() {
					go func() {
						secondDone <- b.Update(context.Background(), func(tx store.Tx) error {
							if put := c.second(u, g.ID); put != nil {
								return tx.PutGroup(put)
							}
							return tx.DeleteGroup(g.ID)
						})
					}()
					waitForLockWait(t, a, secondDone)
				})
				return nil
			})
			if err := <-secondDone; err != nil {
				t.Fatalf("B's change: %v", err)
			}

			want := c.want(u, g.ID)
			view(t, a, func(tx store.Tx) error {
				got, err := tx.Group(g.ID)
				switch {
				case want == nil && !errors.Is(err, store.ErrNotFound):
					t.Errorf("the deleted group: %+v, %v; want ErrNotFound", got, err)
				case want != nil && err != nil:
					return err
				case want != nil:
					wantMembers := slices.Sorted(slices.Values(want.Members))
					if got.DisplayName != want.DisplayName || !slices.Equal(got.Members, wantMembers) {
						t.Errorf("group %q with members %v, want %q with %v (B's change, which came last)",
							got.DisplayName, got.Members, want.DisplayName, wantMembers)
					}
				}
				for _, id := range ids {
					usr, err := tx.User(id)
					if err != nil {
						return err
					}
					in := want != nil && slices.Contains(want.Members, id)
					if names := slices.Contains(usr.Groups, "staff") || slices.Contains(usr.Groups, "crew"); !in && names {
						t.Errorf("user %s is not in the group B left, but their Groups are %v", id, usr.Groups)
					} else if in && !slices.Equal(usr.Groups, []string{want.DisplayName}) {
						t.Errorf("member %s: Groups %v, want [%s]", id, usr.Groups, want.DisplayName)
					}
				}
				return nil
			})
		})
	}
}
