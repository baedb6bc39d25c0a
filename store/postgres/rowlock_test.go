package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// deadlocks is how many deadlocks PostgreSQL has broken in db's database.
// The statistics reach pg_stat_database about once a second, so it waits
// that long first.
func deadlocks(t *testing.T, db *DB) int64 {
	t.Helper()
	time.Sleep(1500 * time.Millisecond)
	var n int64
	if err := db.pool.QueryRow(context.Background(), "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMemberSignInDuringLargeGroupChange: instance A creates a SCIM group
// of many members, one long transaction; a member whose user record it
// has not reached yet signs in at instance B meanwhile. The group change
// locks its members' rows chunk by chunk, in ID order (syncMembers), and a
// member row locks its user only against deletion (the foreign key), so
// the sign-in goes through at once instead of waiting for the group change
// to commit (which, longer than B's statement timeout, failed the
// sign-in), and neither change is lost.
func TestMemberSignInDuringLargeGroupChange(t *testing.T) {
	const n = 20_000
	dsn := pgtest.NewDatabase(t)
	a := openDSN(t, dsn)
	b := openConfig(t, Config{DSN: dsn, StatementTimeout: time.Second})
	ids := seedUsers(t, a, "okta", n)
	last := ids[n-1] // the last the group change rewrites (in ID order)
	i := n - 1       // seedUsers: user i has link sub-i and email user<i>@example.com

	g := &store.Group{IdP: "okta", DisplayName: "everyone", Members: ids}
	groupDone := make(chan error, 1)
	go func() { groupDone <- a.Update(context.Background(), func(tx store.Tx) error { return tx.PutGroup(g) }) }()
	// Wait until the change works through its members (syncMembers's
	// statements), the first chunk first.
	for {
		var busy bool
		err := a.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND (query LIKE '%FROM sso_users WHERE id = ANY($1) ORDER BY id FOR%' OR query LIKE '%FROM sso_users u WHERE u.id = ANY($1)%'))`).Scan(&busy)
		if err != nil {
			t.Fatal(err)
		}
		if busy {
			break
		}
		select {
		case err := <-groupDone:
			t.Fatalf("the group change ended (%v) before the test saw it rewrite members", err)
		case <-time.After(2 * time.Millisecond):
		}
	}

	m := session.New(b, session.Config{}, nil, nil)
	ns, err := m.Prepare("okta", store.LogoutInfo{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = b.Update(context.Background(), func(tx store.Tx) error {
		res, err := provision.Apply(tx, "okta", provision.Rules{JIT: true, Update: provision.UpdateForce},
			mapping.Profile{UniqueUserID: "sub-" + strconv.Itoa(i), Email: fmt.Sprintf("user%d@example.com", i), FirstName: "F", LastName: "L"},
			true, time.Now())
		if err != nil {
			return err
		}
		if res.Denial != nil {
			return fmt.Errorf("denied: %s", res.Denial.Reason)
		}
		return ns.Write(tx, res.User)
	})
	took := time.Since(start)
	var committedFirst bool
	select {
	case gErr := <-groupDone:
		committedFirst = true
		groupDone <- gErr
	default:
	}
	if err != nil {
		t.Fatalf("the member's sign-in during the group change failed after %v: %v", took, err)
	}
	if committedFirst {
		t.Errorf("the member's sign-in waited %v, until the group change committed", took)
	}
	if err := <-groupDone; err != nil {
		t.Fatalf("group change: %v", err)
	}
	view(t, a, func(tx store.Tx) error {
		u, err := tx.User(last)
		if err != nil {
			return err
		}
		if u.LastLogin.Before(start) || !slices.Contains(u.Groups, "everyone") {
			t.Errorf("after both: last login %v, groups %v; want the sign-in's and the group", u.LastLogin, u.Groups)
		}
		ss, err := tx.UserSessions(last)
		if err == nil && len(ss) != 1 {
			t.Errorf("%d sessions, want the sign-in's", len(ss))
		}
		return err
	})
}

// TestConcurrentGroupAddsOfTheSameUsers: instances A and B each add the
// same users to a different group at once (an IdP pushing several groups),
// round after round. Each change locks the users, inserts their member
// rows (the foreign key locks the users against deletion) and rewrites
// their groups. When the member rows came first, a lock that waited for
// the other's foreign-key locks made the two deadlock, and PostgreSQL
// broke it after a second by failing one, which Update reran.
func TestConcurrentGroupAddsOfTheSameUsers(t *testing.T) {
	a, b, ids := twoInstancesWithUsers(t, 20)
	const rounds = 5
	var names []string
	for round := range rounds {
		groups := []*store.Group{
			{IdP: "okta", DisplayName: "a" + strconv.Itoa(round)},
			{IdP: "okta", DisplayName: "b" + strconv.Itoa(round)},
		}
		for _, g := range groups {
			update(t, a, func(tx store.Tx) error { return tx.PutGroup(g) })
			names = append(names, g.DisplayName)
		}
		var wg, ready sync.WaitGroup
		ready.Add(2)
		runs := make([]int, 2)
		for side, db := range []*DB{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				first := true
				err := db.Update(context.Background(), func(tx store.Tx) error {
					runs[side]++
					g, err := tx.Group(groups[side].ID)
					if err != nil {
						return err
					}
					if first { // both hold their group's lock: add the members together
						first = false
						ready.Done()
						ready.Wait()
					}
					g.Members = ids
					return tx.PutGroup(g)
				})
				if err != nil {
					t.Errorf("round %d, instance %d: %v", round, side, err)
				}
			}()
		}
		wg.Wait()
		if runs[0] != 1 || runs[1] != 1 {
			t.Errorf("round %d: the group changes ran %v times, want once each", round, runs)
		}
	}
	if n := deadlocks(t, a); n != 0 {
		t.Errorf("%d deadlocks between group changes adding the same users", n)
	}
	slices.Sort(names)
	for _, id := range ids {
		if got := userGroups(t, a, id); !slices.Equal(got, names) {
			t.Errorf("user %s: groups %v, want %v", id, got, names)
		}
	}
}

// TestSignInRacingDeactivation: a person signs in at instance B, several
// times at once, while instance A deactivates them (SCIM active=false).
// The sign-in takes the lock on its IdP link and then the user's row; the
// deactivation holds the row and then wrote the user back, locking every
// key of theirs, the link too: a deadlock that PostgreSQL broke after a
// second. Afterwards the user is inactive and has no session.
func TestSignInRacingDeactivation(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	accA := &account.Service{Store: a, Cache: session.New(a, session.Config{}, nil, nil)}
	mb := session.New(b, session.Config{}, nil, nil)
	rules := provision.Rules{JIT: true}
	for round := range 6 {
		prof := mapping.Profile{UniqueUserID: fmt.Sprintf("sub-%d", round), Email: fmt.Sprintf("u%d@example.com", round), FirstName: "F", LastName: "L"}
		var uid atomic.Value
		signIn := func() error {
			ns, err := mb.Prepare("oidc", store.LogoutInfo{}, nil)
			if err != nil {
				return err
			}
			return b.Update(context.Background(), func(tx store.Tx) error {
				res, err := provision.Apply(tx, "oidc", rules, prof, true, time.Now())
				if err != nil || res.Denial != nil {
					return err
				}
				uid.Store(res.User.ID)
				return ns.Write(tx, res.User)
			})
		}
		if err := signIn(); err != nil {
			t.Fatalf("first sign-in: %v", err)
		}
		id := uid.Load().(string)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := signIn(); err != nil {
					t.Errorf("round %d: sign-in: %v", round, err)
				}
			})
		}
		wg.Go(func() {
			if _, err := accA.Deactivate(context.Background(), id, account.BySCIM); err != nil {
				t.Errorf("round %d: deactivate: %v", round, err)
			}
		})
		wg.Wait()
		view(t, a, func(tx store.Tx) error {
			u, err := tx.User(id)
			if err != nil {
				return err
			}
			ss, err := tx.UserSessions(id)
			if err == nil && (u.Active || len(ss) > 0) {
				t.Errorf("round %d: active %v with %d sessions; want inactive without any", round, u.Active, len(ss))
			}
			return err
		})
	}
	if n := deadlocks(t, a); n != 0 {
		t.Errorf("%d deadlocks between sign-ins and the deactivation of the same person", n)
	}
}
