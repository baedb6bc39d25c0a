package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// waitForActivity waits until another session on db's database does what
// the SQL condition on pg_stat_activity says (what names it in the
// failure), and fails the test if done says the transaction under test
// ended first.
func waitForActivity(t *testing.T, db *DB, done chan error, condition, what string) {
	t.Helper()
	for {
		var seen bool
		err := db.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND (`+condition+`))`).Scan(&seen)
		if err != nil {
			t.Fatal(err)
		}
		if seen {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("the group change ended (%v) before %s", err, what)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// waitForRegroup waits until a group change running on db is locking,
// inserting the member rows of and rewriting the records of its members,
// chunk by chunk in ID order (syncMembers's statements).
func waitForRegroup(t *testing.T, db *DB, done chan error) {
	t.Helper()
	waitForActivity(t, db, done, `query LIKE '%FROM sso_users WHERE id = ANY($1) ORDER BY id FOR%' OR query LIKE '%FROM sso_users u WHERE u.id = ANY($1)%'`,
		"the test saw it rewrite members")
}

// TestDeleteMemberDuringGroupChange: instance A creates a SCIM group of
// many members, one long transaction; instance B deletes one of them
// (account.Delete, as the admin API and SCIM do) while A works through the
// members, the user among the last it reaches. When A inserted every
// member row first, the deletion read the user FOR NO KEY UPDATE, which
// A's foreign-key lock lets through, and then needed FOR UPDATE for the
// DELETE, which waits for that lock, while A's regroup waited for the
// read's lock: a deadlock, which PostgreSQL broke after a second by
// failing the group change. The deletion reads FOR UPDATE from the start
// (UserForDelete), and A locks each member before it inserts their row
// (syncMembers): whichever reaches the user first, the other waits. No
// deadlock; the user is gone, out of the group too; the group change
// either went first or, its member gone, is refused, never half done.
func TestDeleteMemberDuringGroupChange(t *testing.T) {
	const n = 20_000
	// b's deletion waits for the whole group change.
	a, b := twoInstances(t)
	ids := seedUsers(t, a, "okta", n)
	victim := ids[n-1] // the last the group change locks (in ID order)
	acc := &account.Service{Store: b, Cache: session.New(b, session.Config{}, nil, nil)}
	before := deadlocks(t, a)

	g := &store.Group{IdP: "okta", DisplayName: "everyone", Members: ids}
	groupDone := make(chan error, 1)
	go func() { groupDone <- a.Update(context.Background(), func(tx store.Tx) error { return tx.PutGroup(g) }) }()
	waitForRegroup(t, a, groupDone)

	start := time.Now()
	_, err := acc.Delete(context.Background(), victim, account.BySCIM)
	took := time.Since(start)
	gErr := <-groupDone
	after := deadlocks(t, a)
	t.Logf("delete: %v after %v; group change: %v; deadlocks %d -> %d", err, took, gErr, before, after)
	if after > before {
		t.Errorf("%d deadlock(s) between the deletion and the group change", after-before)
	}
	if err != nil {
		t.Errorf("delete during the group change: %v", err)
	}
	// A deletion that waited for the group change found it committed; one
	// that reached the user first makes the change's member insert fail
	// (the foreign key), and its rerun refuses it (member not found).
	if gErr != nil && !errors.Is(gErr, store.ErrNotFound) {
		t.Errorf("group change: %v", gErr)
	}
	view(t, a, func(tx store.Tx) error {
		if _, err := tx.User(victim); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the deleted user: %v, want ErrNotFound", err)
		}
		if gErr != nil {
			return nil
		}
		got, err := tx.Group(g.ID)
		if err != nil {
			return err
		}
		if len(got.Members) != n-1 || slices.Contains(got.Members, victim) {
			t.Errorf("group has %d members (the deleted one among them: %v), want %d without", len(got.Members), slices.Contains(got.Members, victim), n-1)
		}
		return nil
	})
}

// waitForLockWait waits until a transaction other than the test's own
// connections waits for a row lock.
func waitForLockWait(t *testing.T, db *DB, done chan error) {
	t.Helper()
	waitForActivity(t, db, done, `wait_event_type = 'Lock'`, "it waited for a lock")
}

// TestDeleteMemberDuringGroupRename: instance B reads a user to delete
// them (UserForDelete, as account.Delete does), and instance A renames a
// group the user is a member of meanwhile, which rewrites every member's
// Groups (regroup). DeleteUser writes the user's groups (their Updated,
// leaveAllGroups), and A holds the group's lock while it waits for the
// user's: B taking the group after the user was a deadlock, which
// PostgreSQL broke after a second by failing the rename. UserForDelete
// locks the user's groups before the user, in the order group changes
// lock them (the group, then its members), so A waits for B at the group
// instead: no deadlock, and the rename then runs on the group without the
// deleted member.
func TestDeleteMemberDuringGroupRename(t *testing.T) {
	a, b := twoInstances(t)
	ids := seedUsers(t, a, "okta", 2)
	victim, other := ids[0], ids[1]
	g := &store.Group{IdP: "okta", DisplayName: "staff", Members: ids}
	update(t, a, func(tx store.Tx) error { return tx.PutGroup(g) })
	before := deadlocks(t, a)

	renameDone := make(chan error, 1)
	var startRename sync.Once
	err := b.Update(context.Background(), func(tx store.Tx) error {
		if _, err := tx.UserForDelete(victim); err != nil {
			return err
		}
		startRename.Do(func() {
			go func() {
				renameDone <- a.Update(context.Background(), func(tx store.Tx) error {
					cur, err := tx.Group(g.ID)
					if err != nil {
						return err
					}
					cur.DisplayName = "renamed"
					return tx.PutGroup(cur)
				})
			}()
			waitForLockWait(t, a, renameDone)
		})
		return tx.DeleteUser(victim)
	})
	rErr := <-renameDone
	after := deadlocks(t, a)
	t.Logf("delete: %v; rename: %v; deadlocks %d -> %d", err, rErr, before, after)
	if after > before {
		t.Errorf("%d deadlock(s) between the deletion and the group rename", after-before)
	}
	if err != nil {
		t.Errorf("delete during the rename: %v", err)
	}
	if rErr != nil {
		t.Errorf("rename during the delete: %v", rErr)
	}
	view(t, a, func(tx store.Tx) error {
		got, err := tx.Group(g.ID)
		if err != nil {
			return err
		}
		if got.DisplayName != "renamed" || !slices.Equal(got.Members, []string{other}) {
			t.Errorf("group %q with members %v, want %q with %v", got.DisplayName, got.Members, "renamed", []string{other})
		}
		return nil
	})
}

// deleteHookTx runs before ahead of DeleteUser.
type deleteHookTx struct {
	store.Tx
	before func()
}

func (d deleteHookTx) DeleteUser(id string) error {
	d.before()
	return d.Tx.DeleteUser(id)
}

// deadlockLog collects who met a deadlock (40P01) among concurrent
// transactions: the side PostgreSQL failed, which Update then reran.
type deadlockLog struct {
	mu  sync.Mutex
	met []string
}

func (l *deadlockLog) saw(who string, err error) error {
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "40P01" {
		l.mu.Lock()
		l.met = append(l.met, who)
		l.mu.Unlock()
	}
	return err
}

func (l *deadlockLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.met)
}

func (l *deadlockLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.met)
}

// TestDeleteUserWhoJoinedAGroupMeanwhile: a deletion (account.DeleteTx,
// as SCIM's DELETE and the admin API run it) locks the user's groups and
// then the user (UserForDelete). A SCIM group change (GC1) adding the user
// to g2 holds the user's row, so the deletion waits for it, having locked
// the groups of before: not g2. Once GC1 commits, DeleteUser stamps g2
// (leaveAllGroups), which locked g2 after the user, out of the lock order,
// while a second change to g2 (GC2, a rename: the group, then its members)
// held g2 and waited for the user: a deadlock, which PostgreSQL broke
// after deadlock_timeout by failing GC2. UserForDelete now sees the new
// membership once it holds the user, gives both locks back and takes them
// again in order: GC2 waits for the deletion at g2, and neither reruns.
func TestDeleteUserWhoJoinedAGroupMeanwhile(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := openDSN(t, dsn)
	a := openConfig(t, Config{DSN: dsn, StatementTimeout: time.Minute})
	b := openConfig(t, Config{DSN: dsn, StatementTimeout: time.Minute})
	putUser(t, c, &store.User{ID: "o", IdP: "okta", Email: "o@x.io", Active: true})
	putUser(t, c, &store.User{ID: "u", IdP: "okta", Email: "u@x.io", Active: true})
	g := &store.Group{IdP: "okta", DisplayName: "g2", Members: []string{"o"}}
	update(t, c, func(tx store.Tx) error { return tx.PutGroup(g) })
	ctx := context.Background()
	var deadlocked deadlockLog

	// GC1: u joins g2, held open.
	held, release := make(chan struct{}), make(chan struct{})
	gc1Done := make(chan error, 1)
	var heldOnce sync.Once
	go func() {
		gc1Done <- c.Update(ctx, func(tx store.Tx) error {
			if err := tx.PutGroup(&store.Group{ID: g.ID, IdP: "okta", DisplayName: "g2", Members: []string{"o", "u"}}); err != nil {
				return deadlocked.saw("GC1", err)
			}
			heldOnce.Do(func() { close(held) })
			<-release
			return nil
		})
	}()
	<-held

	acc := &account.Service{Store: a, Cache: session.New(a, session.Config{}, nil, nil)}
	gc2Done, delDone := make(chan error, 1), make(chan error, 1)
	var gc2Once sync.Once
	go func() {
		delDone <- a.Update(ctx, func(tx store.Tx) error {
			d := deleteHookTx{Tx: tx, before: func() {
				gc2Once.Do(func() {
					go func() {
						gc2Done <- b.Update(ctx, func(tx store.Tx) error {
							cur, err := tx.Group(g.ID)
							if err != nil {
								return deadlocked.saw("GC2", err)
							}
							cur.DisplayName = "renamed"
							return deadlocked.saw("GC2", tx.PutGroup(cur))
						})
					}()
					waitForLockWait(t, a, gc2Done) // GC2 waits for the deletion
				})
			}}
			_, err := acc.DeleteTx(d, &account.Change{}, "u", account.BySCIM)
			return deadlocked.saw("delete", err)
		})
	}()
	waitForLockWait(t, c, delDone) // the deletion waits for GC1's lock on u
	close(release)
	gc1Err, delErr := <-gc1Done, <-delDone
	gc2Err := <-gc2Done
	t.Logf("GC1: %v; delete: %v; GC2: %v; 40P01 met by %v; reruns GC1 %d, delete %d, GC2 %d",
		gc1Err, delErr, gc2Err, &deadlocked, c.Reruns(), a.Reruns(), b.Reruns())
	if gc1Err != nil || delErr != nil || gc2Err != nil {
		t.Fatalf("GC1: %v; delete: %v; GC2: %v", gc1Err, delErr, gc2Err)
	}
	if r := a.Reruns() + b.Reruns() + c.Reruns(); r > 0 || deadlocked.count() > 0 {
		t.Errorf("%v met a deadlock (40P01), %d reruns: the deletion held u and then locked g2, joined meanwhile, while the rename held g2 and waited for u", &deadlocked, r)
	}
	view(t, a, func(tx store.Tx) error {
		got, err := tx.Group(g.ID)
		if err != nil {
			return err
		}
		if got.DisplayName != "renamed" || !slices.Equal(got.Members, []string{"o"}) {
			t.Errorf("group %q with members %v, want %q with [o]", got.DisplayName, got.Members, "renamed")
		}
		if _, err := tx.User("u"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("user u after the deletion: %v, want ErrNotFound", err)
		}
		return nil
	})
}
