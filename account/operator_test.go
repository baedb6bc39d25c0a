package account_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestEnableDisableStampTheUser: deactivating and activating are writes
// of the user like any other, so they move Updated on (SCIM's
// meta.version and meta.lastModified are Updated: a SCIM client holding
// the version from before must not match it after).
func TestEnableDisableStampTheUser(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := &store.User{Email: "al@corp.example", Active: true, IdP: "okta", Created: t0.Add(-time.Hour), Updated: t0.Add(-time.Hour)}
	if err := e.db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct {
		name string
		run  func(context.Context, string, string) (*account.Result, error)
	}{{"disable", e.acc.Deactivate}, {"enable", e.acc.Activate}} {
		e.now = e.now.Add(time.Minute)
		res, err := op.run(ctx, u.ID, account.ByAdmin)
		if err != nil || !res.Changed {
			t.Fatalf("%s: %+v, %v", op.name, res, err)
		}
		if got := e.user(u.ID).Updated; !got.Equal(e.now) || !res.User.Updated.Equal(e.now) {
			t.Errorf("%s at %v: stored Updated %v, answered %v", op.name, e.now, got, res.User.Updated)
		}
	}
}

// TestTombstoneOfExternalIDWithoutLogin: a user SCIM created who never
// signed in has an externalId and no login subject yet; deleting them
// leaves a tombstone for that externalId all the same, or JIT would
// create them anew at their first sign-in.
func TestTombstoneOfExternalIDWithoutLogin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := &store.User{Email: "al@corp.example", Active: true, Source: store.SourceSCIM, IdP: "entra", ExternalID: "oid-al"}
	if err := e.db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	res, err := e.acc.Delete(ctx, u.ID, account.ByAdmin)
	if err != nil || res.Tombstones != 1 {
		t.Fatalf("delete = %+v, %v", res, err)
	}
	if got := e.tombstoneKeys(); len(got) != 1 || got[0] != "entra/oid-al" {
		t.Errorf("tombstones %v, want entra/oid-al", got)
	}
}

// TestAuditBackupSaysFromWhereWhenKnown: store.backed_up says who asked and
// how, and from where only when that is known: an offline backup has no
// client address, and its event holds no empty one.
func TestAuditBackupSaysFromWhereWhenKnown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.acc.AuditBackup(ctx, account.ByAdmin, account.ViaOffline, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.acc.AuditBackup(ctx, account.ByAdmin, account.ViaAdminAPI, "192.0.2.7:5000"); err != nil {
		t.Fatal(err)
	}
	evs := e.events(account.EventStoreBackedUp)
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	if remote, ok := evs[0].Detail["remote"]; ok || evs[0].Detail["via"] != account.ViaOffline || evs[0].Reason != account.ByAdmin {
		t.Errorf("offline backup event %+v (remote %q)", evs[0], remote)
	}
	if evs[1].Detail["remote"] != "192.0.2.7:5000" || evs[1].Detail["via"] != account.ViaAdminAPI {
		t.Errorf("admin API backup event %+v", evs[1])
	}
}

// TestListUsersQuery: the list's query matches, ignoring case, a part of
// the ID, the email, either name or both, the user name and the display
// name, and nothing else.
func TestListUsersQuery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ada := &store.User{ID: "u-ada", Email: "ada.l@corp.example", FirstName: "Ada", LastName: "Lovelace", Active: true}
	bob := &store.User{ID: "u-bob", Email: "bob@else.example", UserName: "bobby", DisplayName: "Robert Tables", Active: true}
	if err := e.db.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutUser(ada); err != nil {
			return err
		}
		return tx.PutUser(bob)
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ query, want string }{
		{"CORP.EXAMPLE", "u-ada"},
		{"ada lovelace", "u-ada"},
		{"BOBBY", "u-bob"},
		{"robert t", "u-bob"},
		{"u-b", "u-bob"},
		{"nobody", ""},
	} {
		page, err := e.acc.ListUsers(ctx, c.query, "", 0)
		var got []string
		if page != nil {
			for _, u := range page.Users {
				got = append(got, u.ID)
			}
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(nonEmpty(c.want)) {
			t.Errorf("query %q: %v, %v; want %v", c.query, got, err, nonEmpty(c.want))
		}
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// TestListUsersPageBound: a page holds at most MaxPageSize users, however
// many the caller asks for (the offline CLI calls ListUsers directly), and
// its Next continues after the last one shown.
func TestListUsersPageBound(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.db.Update(ctx, func(tx store.Tx) error {
		for i := range account.MaxPageSize + 2 {
			if err := tx.PutUser(&store.User{ID: fmt.Sprintf("u%05d", i), Email: fmt.Sprintf("u%05d@example.com", i), Active: true}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	page, err := e.acc.ListUsers(ctx, "", "", account.MaxPageSize+100)
	if err != nil || len(page.Users) != account.MaxPageSize || page.Next != page.Users[len(page.Users)-1].ID {
		t.Fatalf("a page of %d asked for: %d users, next %q, %v", account.MaxPageSize+100, len(page.Users), page.Next, err)
	}
	rest, err := e.acc.ListUsers(ctx, "", page.Next, 0)
	if err != nil || len(rest.Users) != 2 || rest.Next != "" {
		t.Errorf("the page after: %+v, %v", rest, err)
	}
}

// TestLiftOfNoTombstoneNamesIt: a lift that finds nothing says what it
// looked for, as the admin API's 404 and the CLI show it.
func TestLiftOfNoTombstoneNamesIt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.acc.LiftTombstone(ctx, "entra", "oid-x", account.ByAdmin)
	if !errors.Is(err, store.ErrNotFound) || err.Error() != `no tombstone of subject "oid-x" at IdP "entra"` {
		t.Errorf("lift of an identity without a tombstone: %v", err)
	}
	_, err = e.acc.Lift(ctx, "u-gone", account.ByAdmin)
	if !errors.Is(err, store.ErrNotFound) || err.Error() != `no tombstone of deleted user "u-gone"` {
		t.Errorf("lift of a user without tombstones: %v", err)
	}
}

// TestUserDetailRefusesANegativePosition: the sessions' after= is a
// position such as NextSessions gives, never below 0: a negative one is
// the caller's mistake (400), not a slice out of range.
func TestUserDetailRefusesANegativePosition(t *testing.T) {
	e := newEnv(t)
	u, _ := e.signIn("okta", "sub-1", jit)
	for _, after := range []string{"-1", "-6", "1.5"} {
		if _, err := e.acc.User(context.Background(), u.ID, after, 0); !errors.Is(err, account.ErrBadQuery) {
			t.Errorf("after=%s: %v, want ErrBadQuery", after, err)
		}
	}
}

// TestUserDetailLastPageHasNoNext: a page that ends with the user's last
// session says there is no next one (the CLI would otherwise offer a page
// that shows nothing).
func TestUserDetailLastPageHasNoNext(t *testing.T) {
	e := newEnv(t)
	u, _ := e.signIn("okta", "sub-1", jit)
	e.signIn("okta", "sub-1", jit)
	d, err := e.acc.User(context.Background(), u.ID, "", 2)
	if err != nil || len(d.Sessions) != 2 || d.NextSessions != "" {
		t.Errorf("two sessions, a page of two: %d sessions, next %q, %v", len(d.Sessions), d.NextSessions, err)
	}
	d, err = e.acc.User(context.Background(), u.ID, "", 1)
	if err != nil || len(d.Sessions) != 1 || d.NextSessions != "1" {
		t.Errorf("two sessions, a page of one: %d sessions, next %q, %v", len(d.Sessions), d.NextSessions, err)
	}
}

// TestUserDetailSaysWhichSessionsHoldTokens: the detail says, of each
// session, whether it holds the IdP's tokens (sealed, never shown), and
// the IdP's names for the person and the session.
func TestUserDetailSaysWhichSessionsHoldTokens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u, _ := e.signIn("okta", "sub-1", jit)
	e.now = e.now.Add(time.Minute)
	e.signIn("okta", "sub-1", jit)
	if err := e.db.Update(ctx, func(tx store.Tx) error {
		ss, err := tx.UserSessions(u.ID)
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.Created.Equal(e.now) { // the newer one
				return tx.PutSessionTokens(s.Hash, []byte("sealed"))
			}
		}
		return fmt.Errorf("no session created at %v", e.now)
	}); err != nil {
		t.Fatal(err)
	}
	d, err := e.acc.User(ctx, u.ID, "", 0)
	if err != nil || len(d.Sessions) != 2 {
		t.Fatalf("detail %+v, %v", d, err)
	}
	if !d.Sessions[0].TokensStored || d.Sessions[1].TokensStored {
		t.Errorf("tokens stored: newer %v, older %v; want true, false", d.Sessions[0].TokensStored, d.Sessions[1].TokensStored)
	}
	if s := d.Sessions[1]; s.IdPSubject != "sub-1" || s.IdPSession != "idx-1" {
		t.Errorf("the older session's IdP names: %q, %q", s.IdPSubject, s.IdPSession)
	}
}

// TestAuditPageNext: an audit page's Next is the after= that continues it:
// the last event's Seq, whether the page holds one event or more, and the
// request's after when it holds none; an empty page lists no events as
// [], not null (a script's `jq '.events[]'` fails on null).
func TestAuditPageNext(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	empty, err := e.acc.Audit(ctx, store.AuditQuery{After: 7})
	if err != nil || empty.Next != 7 {
		t.Fatalf("empty trail: %+v, %v", empty, err)
	}
	if b, _ := json.Marshal(empty); !strings.Contains(string(b), `"events":[]`) {
		t.Errorf("empty page as JSON: %s", b)
	}
	u, _ := e.signIn("okta", "sub-1", jit)
	if _, err := e.acc.Activate(ctx, u.ID, account.ByAdmin); err != nil { // nothing to do: no event
		t.Fatal(err)
	}
	all, err := e.acc.Audit(ctx, store.AuditQuery{})
	if err != nil || len(all.Events) == 0 {
		t.Fatalf("audit: %+v, %v", all, err)
	}
	last := all.Events[len(all.Events)-1].Seq
	if all.Next != last {
		t.Errorf("Next %d, want the last Seq %d", all.Next, last)
	}
	one, err := e.acc.Audit(ctx, store.AuditQuery{Limit: 1})
	if err != nil || len(one.Events) != 1 || one.Next != one.Events[0].Seq {
		t.Errorf("a page of one: %+v, %v", one, err)
	}
}
