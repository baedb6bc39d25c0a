package postgres

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestGroupChangeForgetsMembersInFewNotifications: after a SCIM change to
// a group of 5,000 members (scim's forgetUsers hands every member to
// account.Service.Committed), instance A tells the others in as few
// notifications as the members' IDs fit in, not one per member, and
// instance B still drops the cached sessions of members all through the
// list.
func TestGroupChangeForgetsMembersInFewNotifications(t *testing.T) {
	const n = 5000
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	ids := seedUsers(t, a, "okta", n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Instance B: a session manager listening for invalidations, and a
	// listener of our own that counts them.
	mb := session.New(b, session.Config{}, nil, nil)
	runDone := make(chan struct{})
	go func() { defer close(runDone); mb.Run(ctx) }()
	var notes, users atomic.Int64
	subscribed := make(chan struct{}, 1)
	listenDone := make(chan struct{})
	go func() {
		defer close(listenDone)
		b.Listen(ctx, func(inv store.Invalidation) {
			if inv.All { // sent once subscribed
				select {
				case subscribed <- struct{}{}:
				default:
				}
				return
			}
			notes.Add(1)
			users.Add(int64(len(inv.Users)))
		})
	}()
	defer func() { cancel(); <-runDone; <-listenDone }()
	<-subscribed
	// Wait for the manager's listener too (it forgets everything once
	// subscribed, so the sessions are cached after that).
	for {
		var listening int
		err := a.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = $1 AND query LIKE 'LISTEN%'`, ListenerApplicationName).Scan(&listening)
		if err != nil {
			t.Fatal(err)
		}
		if listening == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)

	// Members all through the list have sessions cached at B.
	var cached int
	for i := 0; i < n; i += n / 50 {
		var u *store.User
		view(t, b, func(tx store.Tx) error {
			var err error
			u, err = tx.User(ids[i])
			return err
		})
		token, _, err := mb.Create(ctx, u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mb.Resolve(ctx, token); err != nil {
			t.Fatal(err)
		}
		cached++
	}
	if mb.Cached() != cached {
		t.Fatalf("B caches %d sessions, want %d", mb.Cached(), cached)
	}

	ma := session.New(a, session.Config{}, nil, nil)
	acc := &account.Service{Store: a, Cache: ma}
	var c account.Change
	c.ForgetUsers(ids)
	start := time.Now()
	acc.Committed(&c)
	took := time.Since(start)
	deadline := time.Now().Add(10 * time.Second)
	for (users.Load() < n || mb.Cached() > 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	want := len(a.payloads(store.Invalidation{Users: ids}))
	t.Logf("Committed took %v; B received %d notifications naming %d users; the IDs fit in %d", took, notes.Load(), users.Load(), want)
	if got := notes.Load(); got > int64(want) {
		t.Errorf("%d notifications for %d members, want at most %d", got, n, want)
	}
	if users.Load() < n {
		t.Errorf("the notifications named %d users, want all %d members", users.Load(), n)
	}
	if left := mb.Cached(); left != 0 {
		t.Errorf("B still caches %d of the members' %d sessions", left, cached)
	}
}
