package bolt

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestUserCRUD(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	u := &store.User{
		Email: "Ada@Example.com", FirstName: "Ada", LastName: "Lovelace",
		Groups: []string{"eng"}, Active: true, Source: store.SourceJIT,
		Links:   []store.Link{{IdP: "okta", Subject: "00u1"}},
		Created: t0,
	}
	putUser(t, db, u)
	if !hexID.MatchString(u.ID) {
		t.Fatalf("assigned ID %q is not 128-bit lowercase hex", u.ID)
	}
	if !u.Updated.Equal(t0) {
		t.Errorf("Updated = %v, want Created %v when zero", u.Updated, t0)
	}

	lookups := []struct {
		name string
		get  func(store.Tx) (*store.User, error)
	}{
		{"by id", func(tx store.Tx) (*store.User, error) { return tx.User(u.ID) }},
		{"by link", func(tx store.Tx) (*store.User, error) { return tx.UserByLink("okta", "00u1") }},
		{"by email exact", func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("Ada@Example.com") }},
		{"by email lower", func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("ada@example.com") }},
		{"by email upper", func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("ADA@EXAMPLE.COM") }},
	}
	for _, l := range lookups {
		t.Run("read "+l.name, func(t *testing.T) {
			view(t, db, func(tx store.Tx) error {
				got, err := l.get(tx)
				if err != nil {
					return err
				}
				sameJSON(t, "user", u, got)
				return nil
			})
		})
	}

	misses := []struct {
		name string
		get  func(store.Tx) (*store.User, error)
	}{
		{"unknown id", func(tx store.Tx) (*store.User, error) { return tx.User("nope") }},
		{"other idp", func(tx store.Tx) (*store.User, error) { return tx.UserByLink("entra", "00u1") }},
		{"subject differs in case", func(tx store.Tx) (*store.User, error) { return tx.UserByLink("okta", "00U1") }},
		{"empty email", func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("") }},
		{"other email", func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("bob@example.com") }},
	}
	for _, m := range misses {
		t.Run("miss "+m.name, func(t *testing.T) {
			view(t, db, func(tx store.Tx) error {
				if _, err := m.get(tx); !isNotFound(err) {
					t.Errorf("err = %v, want ErrNotFound", err)
				}
				return nil
			})
		})
	}

	// Replace: the returned record is a copy, so changes need a Put.
	update(t, db, func(tx store.Tx) error {
		got, err := tx.User(u.ID)
		if err != nil {
			return err
		}
		got.FirstName = "Augusta"
		return tx.PutUser(got)
	})
	view(t, db, func(tx store.Tx) error {
		got, err := tx.UserByLink("okta", "00u1")
		if err != nil {
			return err
		}
		if got.FirstName != "Augusta" || got.ID != u.ID {
			t.Errorf("after update got %+v", got)
		}
		return nil
	})

	update(t, db, func(tx store.Tx) error { return tx.DeleteUser(u.ID) })
	view(t, db, func(tx store.Tx) error {
		for _, l := range lookups {
			if _, err := l.get(tx); !isNotFound(err) {
				t.Errorf("%s after delete: err = %v, want ErrNotFound", l.name, err)
			}
		}
		if err := tx.DeleteUser(u.ID); !errors.Is(err, store.ErrReadOnly) {
			t.Errorf("DeleteUser in View: %v, want ErrReadOnly", err)
		}
		return nil
	})
	update(t, db, func(tx store.Tx) error {
		if err := tx.DeleteUser(u.ID); !isNotFound(err) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		return nil
	})
	checkIndexes(t, db)
}

func TestIndexConsistency(t *testing.T) {
	okta := store.Link{IdP: "okta", Subject: "s1"}
	entra := store.Link{IdP: "entra", Subject: "oid-1"}
	ping := store.Link{IdP: "pingone", Subject: "p1"}
	type step struct {
		email string
		links []store.Link
		// found / gone are lookups that must hit this user / miss.
		foundEmails, goneEmails []string
		foundLinks, goneLinks   []store.Link
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"email changes", []step{
			{email: "a@x.io", links: []store.Link{okta}, foundEmails: []string{"A@X.IO"}},
			{email: "b@x.io", links: []store.Link{okta}, foundEmails: []string{"b@x.io"}, goneEmails: []string{"a@x.io"}},
			{email: "", links: []store.Link{okta}, goneEmails: []string{"a@x.io", "b@x.io"}},
			{email: "c@x.io", links: []store.Link{okta}, foundEmails: []string{"c@x.io"}},
		}},
		{"email changes case only", []step{
			{email: "a@x.io", links: []store.Link{okta}},
			{email: "A@X.io", links: []store.Link{okta}, foundEmails: []string{"a@x.io", "A@X.IO"}},
		}},
		{"links change", []step{
			{links: []store.Link{okta}, foundLinks: []store.Link{okta}},
			{links: []store.Link{okta, entra}, foundLinks: []store.Link{okta, entra}},
			{links: []store.Link{entra, ping}, foundLinks: []store.Link{entra, ping}, goneLinks: []store.Link{okta}},
			{links: nil, goneLinks: []store.Link{okta, entra, ping}},
		}},
		{"duplicate links collapse", []step{
			{links: []store.Link{okta, okta, entra}, foundLinks: []store.Link{okta, entra}},
			{links: []store.Link{entra}, foundLinks: []store.Link{entra}, goneLinks: []store.Link{okta}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			// A bystander whose indexes must never move.
			other := &store.User{Email: "other@x.io", Links: []store.Link{{IdP: "okta", Subject: "other"}}}
			putUser(t, db, other)
			var id string
			for i, s := range tt.steps {
				u := &store.User{ID: id, Email: s.email, Links: s.links}
				putUser(t, db, u)
				id = u.ID
				checkIndexes(t, db)
				view(t, db, func(tx store.Tx) error {
					for _, e := range s.foundEmails {
						if got, err := tx.UserByEmail(e); err != nil || got.ID != id {
							t.Errorf("step %d: email %s: %v", i, e, err)
						}
					}
					for _, e := range s.goneEmails {
						if _, err := tx.UserByEmail(e); !isNotFound(err) {
							t.Errorf("step %d: email %s still found (%v)", i, e, err)
						}
					}
					for _, l := range s.foundLinks {
						if got, err := tx.UserByLink(l.IdP, l.Subject); err != nil || got.ID != id {
							t.Errorf("step %d: link %v: %v", i, l, err)
						}
					}
					for _, l := range s.goneLinks {
						if _, err := tx.UserByLink(l.IdP, l.Subject); !isNotFound(err) {
							t.Errorf("step %d: link %v still found (%v)", i, l, err)
						}
					}
					if got, err := tx.UserByEmail("OTHER@x.io"); err != nil || got.ID != other.ID {
						t.Errorf("step %d: bystander email lost: %v", i, err)
					}
					return nil
				})
			}
			update(t, db, func(tx store.Tx) error { return tx.DeleteUser(id) })
			checkIndexes(t, db)
			view(t, db, func(tx store.Tx) error {
				if got, err := tx.UserByLink("okta", "other"); err != nil || got.ID != other.ID {
					t.Errorf("bystander link lost after delete: %v", err)
				}
				return nil
			})
		})
	}
}

// Keys made by concatenation would confuse ("ab","c") with ("a","bc").
func TestLinkKeysUnambiguous(t *testing.T) {
	db := openTest(t)
	a := &store.User{Links: []store.Link{{IdP: "ab", Subject: "c"}}}
	b := &store.User{Links: []store.Link{{IdP: "a", Subject: "bc"}}}
	putUser(t, db, a)
	putUser(t, db, b)
	view(t, db, func(tx store.Tx) error {
		for _, c := range []struct {
			idp, sub, want string
		}{{"ab", "c", a.ID}, {"a", "bc", b.ID}} {
			got, err := tx.UserByLink(c.idp, c.sub)
			if err != nil || got.ID != c.want {
				t.Errorf("UserByLink(%q,%q) = %v, %v; want %s", c.idp, c.sub, got, err, c.want)
			}
		}
		return nil
	})
}

func TestPutUserConflictsWriteNothing(t *testing.T) {
	tests := []struct {
		name    string
		newUser bool // else modify the second existing user
		email   string
		links   []store.Link
		want    error
	}{
		{"new user, email taken", true, "owner@x.io", nil, store.ErrEmailTaken},
		{"new user, email taken other case", true, "OWNER@X.IO", nil, store.ErrEmailTaken},
		{"new user, link taken", true, "fresh@x.io", []store.Link{{IdP: "okta", Subject: "owner"}}, store.ErrLinkTaken},
		{"new user, second link taken", true, "fresh@x.io", []store.Link{{IdP: "entra", Subject: "new"}, {IdP: "okta", Subject: "owner"}}, store.ErrLinkTaken},
		{"existing user, email taken", false, "Owner@x.io", []store.Link{{IdP: "okta", Subject: "second"}}, store.ErrEmailTaken},
		{"existing user, link taken", false, "second@x.io", []store.Link{{IdP: "okta", Subject: "owner"}}, store.ErrLinkTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			owner := &store.User{Email: "owner@x.io", Links: []store.Link{{IdP: "okta", Subject: "owner"}}}
			second := &store.User{Email: "second@x.io", Links: []store.Link{{IdP: "okta", Subject: "second"}}}
			putUser(t, db, owner)
			putUser(t, db, second)
			before := snapshot(t, db)

			u := &store.User{Email: tt.email, Links: tt.links, FirstName: "changed"}
			if !tt.newUser {
				u.ID = second.ID
			}
			err := db.Update(t.Context(), func(tx store.Tx) error {
				err := tx.PutUser(u)
				if !errors.Is(err, tt.want) {
					t.Errorf("PutUser err = %v, want %v", err, tt.want)
				}
				return nil // commit: the failed Put itself must have written nothing
			})
			if err != nil {
				t.Fatal(err)
			}
			if tt.newUser && u.ID != "" {
				t.Errorf("failed PutUser set ID %q", u.ID)
			}
			sameSnapshot(t, before, snapshot(t, db))
		})
	}
}

func TestPutUserRejectsEmptyLinkParts(t *testing.T) {
	db := openTest(t)
	for _, l := range []store.Link{{IdP: "", Subject: "x"}, {IdP: "okta", Subject: ""}} {
		err := db.Update(t.Context(), func(tx store.Tx) error {
			return tx.PutUser(&store.User{Links: []store.Link{l}})
		})
		if err == nil {
			t.Errorf("PutUser with link %+v succeeded", l)
		}
	}
}

func TestForEachUser(t *testing.T) {
	db := openTest(t)
	ids := []string{"c", "a", "e", "b", "d"}
	for _, id := range ids {
		putUser(t, db, &store.User{ID: id})
	}
	tests := []struct {
		after string
		want  string
	}{
		{"", "abcde"},
		{"a", "bcde"},
		{"bb", "cde"},
		{"e", ""},
		{"z", ""},
	}
	for _, tt := range tests {
		var got strings.Builder
		view(t, db, func(tx store.Tx) error {
			return tx.ForEachUser(tt.after, func(u *store.User) error {
				got.WriteString(u.ID)
				return nil
			})
		})
		if got.String() != tt.want {
			t.Errorf("after %q: got %q, want %q", tt.after, got.String(), tt.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := db.View(t.Context(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(*store.User) error { n++; return stop })
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("stop error: err=%v visits=%d", err, n)
	}
}
