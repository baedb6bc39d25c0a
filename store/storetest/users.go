package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	register(
		testCase{"UserRoundTrip", testUserRoundTrip},
		testCase{"UserIndexesFollowChanges", testUserIndexesFollowChanges},
		testCase{"UserLookupsFoldCase", testUserLookupsFoldCase},
		testCase{"PutUserRefusalsWriteNothing", testPutUserRefusals},
		testCase{"DeleteUser", testDeleteUser},
		testCase{"ForEachUser", testForEachUser},
		testCase{"ForEachAfterAnyBytes", testForEachAfterAnyBytes},
		testCase{"ListUsers", testListUsers},
		testCase{"UsersOfIdP", testUsersOfIdP},
		testCase{"UserHoldingAndLockUsers", testUserHolding},
		testCase{"UserCopies", testUserCopies},
		testCase{"UserForDelete", testUserForDelete},
		testCase{"LinkKeysUnambiguous", testLinkKeys},
	)
}

// testLinkKeys: keys made by concatenation would confuse ("ab", "c") with
// ("a", "bc").
func testLinkKeys(e *env) {
	a := e.putUser(&store.User{Links: []store.Link{{IdP: "ab", Subject: "c"}}})
	b := e.putUser(&store.User{Links: []store.Link{{IdP: "a", Subject: "bc"}}})
	for _, c := range []struct{ idp, sub, want string }{{"ab", "c", a.ID}, {"a", "bc", b.ID}, {"a", "b", ""}} {
		if got := e.lookup(func(tx store.Tx) (*store.User, error) { return tx.UserByLink(c.idp, c.sub) }); got != c.want {
			e.Errorf("UserByLink(%q, %q) = %q, want %q", c.idp, c.sub, got, c.want)
		}
	}
}

func fullUser() *store.User {
	return &store.User{
		Email: "Ada@Example.com", FirstName: "Ada", LastName: "Lovelace", Groups: []string{"eng", "guests"},
		DefaultGroups: []string{"guests"}, Active: true, Source: store.SourceSCIM, Links: []store.Link{{IdP: "okta", Subject: "00u1"}, {IdP: "entra", Subject: "oid-1"}},
		Created: t0, Updated: t0.Add(1e3), LastLogin: t0.Add(2e3),
		UserName: "ada@example.com", IdP: "okta", ExternalID: "00u1", DisplayName: "Ada L.",
		Emails:         []store.Email{{Value: "Ada@Example.com", Type: "work", Primary: true}, {Value: "ada@home.example", Type: "home"}},
		SCIMAttributes: []byte(`{"title":"Countess"}`),
	}
}

func testUserRoundTrip(e *env) {
	u := e.putUser(fullUser())
	if u.ID == "" {
		e.Fatal("PutUser did not assign an ID")
	}
	e.sameJSON("User", u, e.user(u.ID))
	// Zero Created and Updated are filled in; Updated defaults to Created.
	v := e.putUser(&store.User{Email: "b@x.io"})
	if got := e.user(v.ID); got.Created.IsZero() || got.Updated.IsZero() || v.Created.IsZero() {
		e.Errorf("zero times not filled: %+v", got)
	}
	if got := e.putUser(&store.User{Email: "d@x.io", Created: t0}); !e.user(got.ID).Updated.Equal(t0) {
		e.Errorf("Updated = %v, want Created when zero", e.user(got.ID).Updated)
	}
	// A caller-chosen ID is kept.
	w := e.putUser(&store.User{ID: "chosen", Email: "c@x.io"})
	if w.ID != "chosen" || e.user("chosen") == nil {
		e.Errorf("chosen ID not kept: %q", w.ID)
	}
	e.view(func(tx store.Tx) error {
		if _, err := tx.User("nobody"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("User(missing) = %v, want ErrNotFound", err)
		}
		for name, fn := range map[string]func() (*store.User, error){
			"UserByLink":        func() (*store.User, error) { return tx.UserByLink("okta", "nobody") },
			"UserByEmail":       func() (*store.User, error) { return tx.UserByEmail("nobody@x.io") },
			"UserByEmail(\"\")": func() (*store.User, error) { return tx.UserByEmail("") },
			"UserByUserName":    func() (*store.User, error) { return tx.UserByUserName("") },
			"UserByExternalID":  func() (*store.User, error) { return tx.UserByExternalID("okta", "") },
		} {
			if _, err := fn(); !errors.Is(err, store.ErrNotFound) {
				e.Errorf("%s = %v, want ErrNotFound", name, err)
			}
		}
		return nil
	})
}

// testUserIndexesFollowChanges changes every indexed field in turn and
// checks that lookups by the new value find the user, by the old value
// miss, and a bystander's entries never move.
func testUserIndexesFollowChanges(e *env) {
	other := e.putUser(&store.User{Email: "other@x.io", UserName: "other", IdP: "okta", ExternalID: "ext-other",
		Links: []store.Link{{IdP: "okta", Subject: "other"}}})
	u := e.putUser(&store.User{Email: "a@x.io", UserName: "a", IdP: "okta", ExternalID: "ext-a",
		Links: []store.Link{{IdP: "okta", Subject: "a"}, {IdP: "entra", Subject: "a"}}})
	type lookup struct {
		name string
		fn   func(store.Tx) (*store.User, error)
	}
	byEmail := func(v string) lookup {
		return lookup{"email " + v, func(tx store.Tx) (*store.User, error) { return tx.UserByEmail(v) }}
	}
	byName := func(v string) lookup {
		return lookup{"userName " + v, func(tx store.Tx) (*store.User, error) { return tx.UserByUserName(v) }}
	}
	byExt := func(idp, v string) lookup {
		return lookup{"externalId " + idp + " " + v, func(tx store.Tx) (*store.User, error) { return tx.UserByExternalID(idp, v) }}
	}
	byLink := func(idp, v string) lookup {
		return lookup{"link " + idp + " " + v, func(tx store.Tx) (*store.User, error) { return tx.UserByLink(idp, v) }}
	}
	steps := []struct {
		change      func(*store.User)
		found, gone []lookup
	}{
		{func(u *store.User) { u.Email = "b@x.io" }, []lookup{byEmail("b@x.io")}, []lookup{byEmail("a@x.io")}},
		{func(u *store.User) { u.Email = "" }, nil, []lookup{byEmail("b@x.io")}},
		{func(u *store.User) { u.UserName = "b" }, []lookup{byName("B")}, []lookup{byName("a")}},
		{func(u *store.User) { u.ExternalID = "ext-b" }, []lookup{byExt("okta", "ext-b")}, []lookup{byExt("okta", "ext-a")}},
		{func(u *store.User) { u.IdP = "entra" }, []lookup{byExt("entra", "ext-b")}, []lookup{byExt("okta", "ext-b")}},
		{func(u *store.User) { u.Links = []store.Link{{IdP: "entra", Subject: "a"}, {IdP: "ping", Subject: "p"}} },
			[]lookup{byLink("entra", "a"), byLink("ping", "p")}, []lookup{byLink("okta", "a")}},
		{func(u *store.User) { u.Links = nil }, nil, []lookup{byLink("entra", "a"), byLink("ping", "p")}},
		{func(u *store.User) { u.Email, u.UserName = "A@X.IO", "" }, []lookup{byEmail("a@x.io")}, []lookup{byName("b")}},
	}
	for i, s := range steps {
		s.change(u)
		e.putUser(u)
		for _, l := range s.found {
			if got := e.lookup(l.fn); got != u.ID {
				e.Errorf("step %d: %s found %q, want %q", i, l.name, got, u.ID)
			}
		}
		for _, l := range s.gone {
			if got := e.lookup(l.fn); got != "" {
				e.Errorf("step %d: %s still finds %q", i, l.name, got)
			}
		}
		for _, l := range []lookup{byEmail("other@x.io"), byName("other"), byExt("okta", "ext-other"), byLink("okta", "other")} {
			if got := e.lookup(l.fn); got != other.ID {
				e.Errorf("step %d: bystander's %s found %q", i, l.name, got)
			}
		}
	}
	// A value freed by one user can be taken by another.
	e.putUser(&store.User{Email: "b@x.io", UserName: "b", IdP: "okta", ExternalID: "ext-a", Links: []store.Link{{IdP: "okta", Subject: "a"}}})
	// Duplicate links collapse; a link with an empty part is refused.
	d := e.putUser(&store.User{Links: []store.Link{{IdP: "x", Subject: "1"}, {IdP: "x", Subject: "1"}}})
	if got := e.user(d.ID); len(got.Links) != 1 {
		e.Errorf("duplicate links kept: %v", got.Links)
	}
	for _, l := range []store.Link{{IdP: "", Subject: "s"}, {IdP: "okta", Subject: ""}} {
		err := e.st.Update(e.Context(), func(tx store.Tx) error { return tx.PutUser(&store.User{Links: []store.Link{l}}) })
		if err == nil {
			e.Errorf("PutUser with link %+v succeeded", l)
		}
	}
}

// testUserLookupsFoldCase: userNames and emails compare by store.FoldName,
// Unicode case folding after NFC, not by byte or ASCII case.
func testUserLookupsFoldCase(e *env) {
	u := e.putUser(&store.User{Email: "Élodie@Example.COM", UserName: "STRASSE", IdP: "okta", ExternalID: "Ext"})
	for _, q := range []string{"élodie@example.com", "E\u0301lodie@example.com", "ÉLODIE@EXAMPLE.COM"} {
		if got := e.lookup(func(tx store.Tx) (*store.User, error) { return tx.UserByEmail(q) }); got != u.ID {
			e.Errorf("UserByEmail(%q) = %q", q, got)
		}
	}
	for _, q := range []string{"strasse", "straße", "Straße", "STRAẞE"} {
		if got := e.lookup(func(tx store.Tx) (*store.User, error) { return tx.UserByUserName(q) }); got != u.ID {
			e.Errorf("UserByUserName(%q) = %q", q, got)
		}
	}
	// externalId and links are exact.
	if got := e.lookup(func(tx store.Tx) (*store.User, error) { return tx.UserByExternalID("okta", "ext") }); got != "" {
		e.Errorf("externalId matched in another case")
	}
	// Names equal under folding collide.
	err := e.st.Update(e.Context(), func(tx store.Tx) error {
		return tx.PutUser(&store.User{UserName: "straße"})
	})
	if !errors.Is(err, store.ErrUserNameTaken) {
		e.Errorf("folded userName collision: %v, want ErrUserNameTaken", err)
	}
	err = e.st.Update(e.Context(), func(tx store.Tx) error {
		return tx.PutUser(&store.User{Email: "E\u0301LODIE@example.com"})
	})
	if !errors.Is(err, store.ErrEmailTaken) {
		e.Errorf("folded email collision: %v, want ErrEmailTaken", err)
	}
}

func testPutUserRefusals(e *env) {
	owner := e.putUser(&store.User{Email: "owner@x.io", UserName: "owner", IdP: "okta", ExternalID: "ext-owner",
		Links: []store.Link{{IdP: "okta", Subject: "owner"}}})
	second := e.putUser(&store.User{Email: "second@x.io", UserName: "second", IdP: "okta", ExternalID: "ext-second",
		Links: []store.Link{{IdP: "okta", Subject: "second"}}})
	_ = owner
	tests := []struct {
		name string
		u    store.User
		want error
	}{
		{"email taken", store.User{Email: "OWNER@x.io"}, store.ErrEmailTaken},
		{"link taken", store.User{Links: []store.Link{{IdP: "entra", Subject: "new"}, {IdP: "okta", Subject: "owner"}}}, store.ErrLinkTaken},
		{"userName taken", store.User{UserName: "Owner"}, store.ErrUserNameTaken},
		{"externalId taken", store.User{IdP: "okta", ExternalID: "ext-owner"}, store.ErrExternalIDTaken},
		{"userName too long", store.User{UserName: long(store.MaxKeyBytes + 1)}, store.ErrValueTooLong},
		{"externalId too long", store.User{IdP: "okta", ExternalID: long(store.MaxKeyBytes + 1)}, store.ErrValueTooLong},
		{"email too long", store.User{Email: long(store.MaxKeyBytes+1-len("@x.io")) + "@x.io"}, store.ErrValueTooLong},
		{"link subject too long", store.User{Links: []store.Link{{IdP: "okta", Subject: long(store.MaxKeyBytes + 1)}}}, store.ErrValueTooLong},
		{"userName with NUL", store.User{UserName: "ada\x00"}, store.ErrInvalidValue},
		{"userName with newline", store.User{UserName: "ada\nadmin"}, store.ErrInvalidValue},
		{"externalId with DEL", store.User{IdP: "okta", ExternalID: "x\x7f"}, store.ErrInvalidValue},
		{"display name with CR", store.User{DisplayName: "Ada\r"}, store.ErrInvalidValue},
	}
	for _, tt := range tests {
		for _, existing := range []bool{false, true} {
			before := e.dump()
			u := tt.u
			u.FirstName = "changed"
			if existing {
				u.ID = second.ID
			}
			err := e.st.Update(e.Context(), func(tx store.Tx) error {
				err := tx.PutUser(&u)
				if !errors.Is(err, tt.want) {
					e.Errorf("%s (existing %v): PutUser = %v, want %v", tt.name, existing, err, tt.want)
				}
				return nil // commit: the refused PutUser itself must have written nothing
			})
			if err != nil {
				e.Fatal(err)
			}
			if !existing && u.ID != "" {
				e.Errorf("%s: refused PutUser set ID %q", tt.name, u.ID)
			}
			e.sameDump(tt.name, before, e.dump())
		}
	}
	// At the limit is fine, and the same externalId in another IdP too.
	e.putUser(&store.User{UserName: long(store.MaxKeyBytes), IdP: "entra", ExternalID: "ext-owner",
		Links: []store.Link{{IdP: "okta", Subject: long(store.MaxKeyBytes)}}})
	// Tab and non-ASCII letters are not control characters to refuse... but
	// tab is U+0009: refused like any other C0 character.
	err := e.st.Update(e.Context(), func(tx store.Tx) error { return tx.PutUser(&store.User{UserName: "a\tb"}) })
	if !errors.Is(err, store.ErrInvalidValue) {
		e.Errorf("tab in userName: %v, want ErrInvalidValue", err)
	}
	e.putUser(&store.User{UserName: "Zoë Ünal", DisplayName: "Zoë"})
}

func testDeleteUser(e *env) {
	u := e.putUser(&store.User{Email: "a@x.io", UserName: "a", IdP: "okta", ExternalID: "ext-a",
		Links: []store.Link{{IdP: "okta", Subject: "a"}}, Active: true})
	keep := e.putUser(&store.User{Email: "k@x.io", IdP: "okta", Links: []store.Link{{IdP: "okta", Subject: "k"}}})
	g := e.putGroup(&store.Group{IdP: "okta", DisplayName: "G", Members: []string{u.ID, keep.ID}})
	e.putSession(&store.Session{Hash: "h1", UserID: u.ID, IdP: "okta", Created: t0, Expires: t0.Add(1e12), Logout: store.LogoutInfo{Subject: "a"}})
	e.update(func(tx store.Tx) error { return tx.PutSessionTokens("h1", []byte{1, 2}) })
	e.update(func(tx store.Tx) error { return tx.Audit(store.Event{Type: store.EventUserCreated, UserID: u.ID}) })
	before := e.counts()

	e.update(func(tx store.Tx) error { return tx.DeleteUser(u.ID) })
	e.view(func(tx store.Tx) error {
		for name, fn := range map[string]func() (*store.User, error){
			"User":             func() (*store.User, error) { return tx.User(u.ID) },
			"UserByLink":       func() (*store.User, error) { return tx.UserByLink("okta", "a") },
			"UserByEmail":      func() (*store.User, error) { return tx.UserByEmail("a@x.io") },
			"UserByUserName":   func() (*store.User, error) { return tx.UserByUserName("a") },
			"UserByExternalID": func() (*store.User, error) { return tx.UserByExternalID("okta", "ext-a") },
		} {
			if _, err := fn(); !errors.Is(err, store.ErrNotFound) {
				e.Errorf("%s after DeleteUser: %v", name, err)
			}
		}
		if _, err := tx.Session("h1"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("session survived its user: %v", err)
		}
		if _, err := tx.SessionTokens("h1"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("session tokens survived their user: %v", err)
		}
		if ss, _ := tx.SessionsBySubject("okta", "a"); len(ss) != 0 {
			e.Errorf("subject index kept a deleted user's session")
		}
		grp, err := tx.Group(g.ID)
		if err != nil {
			return err
		}
		if strings.Join(grp.Members, ",") != keep.ID {
			e.Errorf("group members after DeleteUser: %v", grp.Members)
		}
		if refs, _ := tx.GroupsOfUser(u.ID); len(refs) != 0 {
			e.Errorf("member index kept a deleted user: %v", refs)
		}
		if _, n, _ := tx.ListUsers("okta", 1, 10); n != 1 {
			e.Errorf("ListUsers total after DeleteUser = %d", n)
		}
		// Audit events are history: they stay.
		if ev, _ := tx.AuditEvents(store.AuditQuery{UserID: u.ID}); len(ev) != 1 {
			e.Errorf("audit events of a deleted user: %d", len(ev))
		}
		return nil
	})
	after := e.counts()
	if after.Users != before.Users-1 || after.Sessions != before.Sessions-1 || after.AuditEvents != before.AuditEvents {
		e.Errorf("Counts %+v -> %+v", before, after)
	}
	err := e.st.Update(e.Context(), func(tx store.Tx) error { return tx.DeleteUser(u.ID) })
	if !errors.Is(err, store.ErrNotFound) {
		e.Errorf("DeleteUser twice: %v, want ErrNotFound", err)
	}
}

func testForEachUser(e *env) {
	for _, id := range []string{"c", "a", "e", "b", "d"} {
		e.putUser(&store.User{ID: id})
	}
	for _, tt := range []struct{ after, want string }{
		{"", "abcde"}, {"a", "bcde"}, {"bb", "cde"}, {"e", ""}, {"z", ""},
	} {
		var got strings.Builder
		e.view(func(tx store.Tx) error {
			return tx.ForEachUser(tt.after, func(u *store.User) error {
				got.WriteString(u.ID)
				return nil
			})
		})
		if got.String() != tt.want {
			e.Errorf("ForEachUser(after %q) = %q, want %q", tt.after, got.String(), tt.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := e.st.View(e.Context(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(*store.User) error { n++; return stop })
	})
	if !errors.Is(err, stop) || n != 1 {
		e.Errorf("ForEachUser stop: err=%v visits=%d", err, n)
	}
}

// testForEachAfterAnyBytes: a ForEach cursor is compared with the keys
// byte by byte, whatever bytes it holds: one no key can be (not UTF-8, a
// NUL: the admin API's ?after= takes any bytes) is a place in that order
// like any other, not an error (PostgreSQL's text refused it: a 500).
func testForEachAfterAnyBytes(e *env) {
	u := e.putUser(&store.User{ID: "b"})
	for _, id := range []string{"a", "ba", "c"} {
		e.putUser(&store.User{ID: id})
	}
	for _, h := range []string{"a", "b", "ba", "c"} {
		e.putSession(sess(h, u.ID))
		e.putGroup(&store.Group{ID: h, IdP: "okta", DisplayName: "group " + h})
	}
	for _, tt := range []struct{ after, want string }{
		{"\x00", "a b ba c"}, {"b\x00", "ba c"}, {"b\x00z", "ba c"},
		{"\xff", ""}, {"b\xff", "c"}, {"b\x80", "c"}, {"\xc3(", ""}, {"a\xe2\x82", "b ba c"},
	} {
		var users, sessions, groups []string
		e.view(func(tx store.Tx) error {
			if err := tx.ForEachGroup(tt.after, func(g *store.Group) error { groups = append(groups, g.ID); return nil }); err != nil {
				e.Errorf("ForEachGroup(after %q): %v", tt.after, err)
			}
			if err := tx.ForEachUser(tt.after, func(u *store.User) error { users = append(users, u.ID); return nil }); err != nil {
				e.Errorf("ForEachUser(after %q): %v", tt.after, err)
			}
			if err := tx.ForEachSession(tt.after, func(s *store.Session) error { sessions = append(sessions, s.Hash); return nil }); err != nil {
				e.Errorf("ForEachSession(after %q): %v", tt.after, err)
			}
			return nil
		})
		if got := strings.Join(users, " "); got != tt.want {
			e.Errorf("ForEachUser(after %q) = %q, want %q", tt.after, got, tt.want)
		}
		if got := strings.Join(sessions, " "); got != tt.want {
			e.Errorf("ForEachSession(after %q) = %q, want %q", tt.after, got, tt.want)
		}
		if got := strings.Join(groups, " "); got != tt.want {
			e.Errorf("ForEachGroup(after %q) = %q, want %q", tt.after, got, tt.want)
		}
	}
}

// pagingRow is a page of a listing of the entries testListUsers and
// testListGroupsPaging store: five of okta (a to e), one of entra (0), one
// of no IdP (z).
type pagingRow struct {
	idp          string
	start, count int
	want         string // the IDs of the page
	total        int
}

// pagingRows are the pages both listings give: SCIM's startIndex is
// 1-based, and a client may send 0 (or nothing, or less), which means the
// first page, not an error.
func pagingRows() []pagingRow {
	return []pagingRow{
		{"okta", 1, 10, "a,b,c,d,e", 5},
		{"okta", 0, 2, "a,b", 5},
		{"okta", -3, 2, "a,b", 5},
		{"okta", 2, 2, "b,c", 5},
		{"okta", 5, 2, "e", 5},
		{"okta", 6, 2, "", 5},
		{"okta", 1, 0, "", 5},
		{"entra", 1, 10, "0", 1},
		{"", 1, 10, "z", 1},
		{"none", 1, 10, "", 0},
	}
}

func testListUsers(e *env) {
	for _, id := range []string{"e", "a", "c", "b", "d"} {
		e.putUser(&store.User{ID: id, IdP: "okta"})
	}
	e.putUser(&store.User{ID: "0", IdP: "entra"})
	e.putUser(&store.User{ID: "z"})
	for _, tt := range pagingRows() {
		e.view(func(tx store.Tx) error {
			us, total, err := tx.ListUsers(tt.idp, tt.start, tt.count)
			if err != nil {
				return err
			}
			if got := strings.Join(ids(us), ","); got != tt.want || total != tt.total {
				e.Errorf("ListUsers(%q, %d, %d) = %q, %d; want %q, %d", tt.idp, tt.start, tt.count, got, total, tt.want, tt.total)
			}
			return nil
		})
	}
	// Moving a user to another IdP moves it between the lists.
	e.putUser(&store.User{ID: "c", IdP: "entra"})
	e.view(func(tx store.Tx) error {
		_, okta, _ := tx.ListUsers("okta", 1, 10)
		entra, n, _ := tx.ListUsers("entra", 1, 10)
		if okta != 4 || n != 2 || strings.Join(ids(entra), ",") != "0,c" {
			e.Errorf("after moving c: okta %d, entra %d %v", okta, n, ids(entra))
		}
		return nil
	})
	if c := e.counts(); c.Users != 7 {
		e.Errorf("Counts.Users = %d, want 7", c.Users)
	}
}

// testUsersOfIdP: the IDs that are users of the IdP, in ID order, each
// once, whatever the order, repeats and bytes of the IDs asked for; the
// same in a View and an Update; and past the first thousand IDs (the
// PostgreSQL backend asks in chunks).
func testUsersOfIdP(e *env) {
	for _, id := range []string{"b", "d", "a"} {
		e.putUser(&store.User{ID: id, IdP: "okta"})
	}
	e.putUser(&store.User{ID: "c", IdP: "entra"})
	many := make([]string, 2500)
	for i := range many {
		many[i] = fmt.Sprintf("m%04d", i)
	}
	many = append(many, "d") // after every m…: in the last chunk
	for _, tt := range []struct {
		name, idp string
		ids       []string
		want      string
	}{
		{"unsorted, repeated", "okta", []string{"d", "b", "x", "d", "a", "b"}, "a,b,d"},
		{"another IdP's user", "okta", []string{"c", "a"}, "a"},
		{"the other IdP", "entra", []string{"a", "b", "c", "d"}, "c"},
		{"unknown IdP", "none", []string{"a", "b"}, ""},
		{"none asked", "okta", nil, ""},
		{"unstorable bytes", "okta", []string{"a\x00", "\xff", "b"}, "b"},
		{"many, mostly unknown", "okta", many, "d"},
	} {
		for _, how := range []struct {
			name string
			run  func(func(store.Tx) error)
		}{{"View", e.view}, {"Update", e.update}} {
			asked := slices.Clone(tt.ids)
			how.run(func(tx store.Tx) error {
				got, err := tx.UsersOfIdP(tt.idp, tt.ids)
				if err != nil {
					return err
				}
				if strings.Join(got, ",") != tt.want {
					e.Errorf("%s: %s: UsersOfIdP(%q) = %q, want %q", how.name, tt.name, tt.idp, got, tt.want)
				}
				return nil
			})
			if !slices.Equal(asked, tt.ids) {
				e.Errorf("%s: %s: UsersOfIdP changed the caller's slice", how.name, tt.name)
			}
		}
	}
	// Moving a user to another IdP moves its answer.
	e.putUser(&store.User{ID: "c", IdP: "okta"})
	e.view(func(tx store.Tx) error {
		okta, err := tx.UsersOfIdP("okta", []string{"a", "b", "c", "d"})
		if err != nil {
			return err
		}
		entra, err := tx.UsersOfIdP("entra", []string{"a", "b", "c", "d"})
		if err != nil {
			return err
		}
		if strings.Join(okta, ",") != "a,b,c,d" || len(entra) != 0 {
			e.Errorf("after moving c: okta %q, entra %q", okta, entra)
		}
		return nil
	})
}

// testUserHolding: UserHolding finds, by each key, the user the keyed
// lookup finds, folded as it folds, and ErrNotFound where it finds none,
// in a View and an Update; LockUsers takes users that exist, are missing
// or are not storable IDs alike, in any order, and a user it locked is
// then read and written as usual.
func testUserHolding(e *env) {
	a := e.putUser(&store.User{ID: "a", IdP: "okta", Email: "Ada@Example.com", UserName: "ada", ExternalID: "ext-a",
		Links: []store.Link{{IdP: "okta", Subject: "sub-a"}}})
	e.putUser(&store.User{ID: "b", IdP: "entra", Email: "bo@example.com", ExternalID: "ext-a"})
	for _, tt := range []struct {
		name       string
		key        store.UserKey
		idp, value string
		keyed      func(store.Tx) (*store.User, error)
		want       string
	}{
		{"link", store.KeyLink, "okta", "sub-a", func(tx store.Tx) (*store.User, error) { return tx.UserByLink("okta", "sub-a") }, "a"},
		{"link of another IdP", store.KeyLink, "entra", "sub-a", func(tx store.Tx) (*store.User, error) { return tx.UserByLink("entra", "sub-a") }, ""},
		{"email, case folded", store.KeyEmail, "", "ADA@example.COM", func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("ADA@example.COM") }, "a"},
		{"email nobody holds", store.KeyEmail, "", "eve@example.com", func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("eve@example.com") }, ""},
		{"empty email", store.KeyEmail, "", "", func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("") }, ""},
		{"userName, case folded", store.KeyUserName, "", "ADA", func(tx store.Tx) (*store.User, error) { return tx.UserByUserName("ADA") }, "a"},
		{"userName not storable", store.KeyUserName, "", "a\x00", func(tx store.Tx) (*store.User, error) { return tx.UserByUserName("a\x00") }, ""},
		{"externalId", store.KeyExternalID, "entra", "ext-a", func(tx store.Tx) (*store.User, error) { return tx.UserByExternalID("entra", "ext-a") }, "b"},
		{"externalId compared exactly", store.KeyExternalID, "okta", "EXT-A", func(tx store.Tx) (*store.User, error) { return tx.UserByExternalID("okta", "EXT-A") }, ""},
	} {
		for _, how := range []struct {
			name string
			run  func(func(store.Tx) error)
		}{{"View", e.view}, {"Update", e.update}} {
			how.run(func(tx store.Tx) error {
				id := func(u *store.User, err error) string {
					if err == nil {
						return u.ID
					}
					if !errors.Is(err, store.ErrNotFound) {
						e.Errorf("%s: %s: %v", how.name, tt.name, err)
					}
					return ""
				}
				got, keyed := id(tx.UserHolding(tt.key, tt.idp, tt.value)), id(tt.keyed(tx))
				if got != tt.want || keyed != tt.want {
					e.Errorf("%s: %s: UserHolding = %q, the keyed lookup %q, want %q", how.name, tt.name, got, keyed, tt.want)
				}
				return nil
			})
		}
	}
	e.view(func(tx store.Tx) error { return tx.LockUsers([]string{"b", "a"}) })
	e.update(func(tx store.Tx) error {
		if err := tx.LockUsers([]string{"b", "missing", "a", "\xff", "a"}); err != nil {
			return err
		}
		u, err := tx.User(a.ID)
		if err != nil {
			return err
		}
		u.Email = "ada@example.org"
		return tx.PutUser(u)
	})
	if got := e.lookup(func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("ada@example.org") }); got != a.ID {
		e.Errorf("after LockUsers and PutUser: the new email finds %q, want %q", got, a.ID)
	}
}

// testUserCopies: what a Tx returns is the caller's to change.
func testUserCopies(e *env) {
	u := e.putUser(fullUser())
	want := jsonOf(e.user(u.ID))
	e.view(func(tx store.Tx) error {
		got, err := tx.User(u.ID)
		if err != nil {
			return err
		}
		got.Groups[0] = "admins"
		got.DefaultGroups[0] = "admins"
		got.Links[0].Subject = "evil"
		got.Emails[0].Value = "evil@x.io"
		got.SCIMAttributes[2] = 'X'
		got.FirstName = "Eve"
		return nil
	})
	// And what the caller passed in stays the caller's too.
	u.Groups[0] = "admins"
	u.DefaultGroups[0] = "admins"
	if got := jsonOf(e.user(u.ID)); got != want {
		e.Errorf("a change to a returned or stored copy reached the store:\n got %s\nwant %s", got, want)
	}
	if got := e.lookup(func(tx store.Tx) (*store.User, error) { return tx.UserByLink("okta", "evil") }); got != "" {
		e.Errorf("link index changed through a copy")
	}
	_ = fmt.Sprint
}

// testUserForDelete: UserForDelete reads as User does (the same record, a
// copy, ErrNotFound for a missing user), in a View too, where it writes
// nothing; in an Update what follows it may write the user back or delete
// them; and of two transactions deleting the same user at once, one does
// and the other finds no user.
func testUserForDelete(e *env) {
	u := e.putUser(fullUser())
	want := jsonOf(e.user(u.ID))
	before := e.dump()
	e.view(func(tx store.Tx) error {
		got, err := tx.UserForDelete(u.ID)
		if err != nil {
			return err
		}
		e.sameJSON("UserForDelete in a View", e.user(u.ID), got)
		got.Groups[0] = "admins"
		got.Links[0].Subject = "evil"
		got.FirstName = "Eve"
		if _, err := tx.UserForDelete("nobody"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("UserForDelete(missing) in a View = %v, want ErrNotFound", err)
		}
		return nil
	})
	e.sameDump("UserForDelete in a View", before, e.dump())
	e.update(func(tx store.Tx) error {
		got, err := tx.UserForDelete(u.ID)
		if err != nil {
			return err
		}
		if jsonOf(got) != want {
			e.Errorf("UserForDelete in an Update:\n got %s\nwant %s", jsonOf(got), want)
		}
		got.Groups[0] = "admins"
		got.SCIMAttributes[2] = 'X'
		if _, err := tx.UserForDelete("nobody"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("UserForDelete(missing) = %v, want ErrNotFound", err)
		}
		return nil
	})
	if got := jsonOf(e.user(u.ID)); got != want {
		e.Errorf("a change to UserForDelete's copy reached the store:\n got %s\nwant %s", got, want)
	}

	// Read for a delete, then written back after all, keys kept and changed.
	e.update(func(tx store.Tx) error {
		got, err := tx.UserForDelete(u.ID)
		if err != nil {
			return err
		}
		got.FirstName = "Augusta"
		got.Email = "augusta@example.com"
		return tx.PutUser(got)
	})
	if got := e.user(u.ID); got == nil || got.FirstName != "Augusta" {
		e.Fatalf("write back after UserForDelete: %+v", got)
	}
	if got := e.lookup(func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("augusta@example.com") }); got != u.ID {
		e.Errorf("UserByEmail after the write back = %q, want %q", got, u.ID)
	}

	// Two deletions of one user at once: one deletes, the other finds none.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			errs[i] = e.st.Update(e.Context(), func(tx store.Tx) error {
				if _, err := tx.UserForDelete(u.ID); err != nil {
					return err
				}
				return tx.DeleteUser(u.ID)
			})
		})
	}
	wg.Wait()
	deleted, missing := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			deleted++
		case errors.Is(err, store.ErrNotFound):
			missing++
		default:
			e.Errorf("concurrent delete: %v", err)
		}
	}
	if deleted != 1 || missing != 1 {
		e.Errorf("two concurrent deletes: %d deleted, %d found no user (%v); want one each", deleted, missing, errs)
	}
	if got := e.user(u.ID); got != nil {
		e.Errorf("user still there after the deletes: %+v", got)
	}
}
