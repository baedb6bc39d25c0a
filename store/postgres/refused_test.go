package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// limitedRole creates a role that owns the public schema of a new
// database and may hold at most limit connections at once, and returns
// the database's connection string as that role and a function that sets
// the role's limit. PostgreSQL refuses its connections beyond the limit
// with SQLSTATE 53300, as it refuses everyone's at max_connections
// (superusers are exempt from role limits, hence the role).
func limitedRole(t *testing.T, limit int) (dsn string, setLimit func(int)) {
	t.Helper()
	admin := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(t.Context(), admin)
	if err != nil {
		t.Fatal(err)
	}
	role := fmt.Sprintf("sso_lim_%d", time.Now().UnixNano())
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN CONNECTION LIMIT %d", role, limit),
		"GRANT ALL ON DATABASE " + conn.Config().Database + " TO " + role,
		"ALTER SCHEMA public OWNER TO " + role,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = conn.Close(t.Context())
	// Runs before NewDatabase's cleanup drops the database, and after
	// the test's own, which close the role's connections.
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop role %s: %v", role, err)
			return
		}
		defer c.Close(ctx)
		for _, q := range []string{"DROP OWNED BY " + role + " CASCADE", "DROP ROLE " + role} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest's DSN is not a URL: %v", err)
	}
	u.User = url.User(role)
	return u.String(), func(n int) {
		c, err := pgx.Connect(t.Context(), admin)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(t.Context())
		if _, err := c.Exec(t.Context(), fmt.Sprintf("ALTER ROLE %s CONNECTION LIMIT %d", role, n)); err != nil {
			t.Fatal(err)
		}
	}
}

// updateBurst runs n Updates at once, each holding its transaction for
// hold, and returns their errors.
func updateBurst(ctx context.Context, db *DB, n int, hold time.Duration) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.Update(ctx, func(tx store.Tx) error {
				if err := tx.PutUser(&store.User{Email: fmt.Sprintf("burst%d@x.io", i)}); err != nil {
					return err
				}
				time.Sleep(hold)
				return nil
			})
		})
	}
	wg.Wait()
	return errs
}

// A burst beyond the connections the server lets this instance open
// waits for the instance's pooled connections (docs/cluster.md, Sizing)
// instead of failing at once with "too many connections".
func TestBurstBeyondServerLimitQueues(t *testing.T) {
	dsn, _ := limitedRole(t, 3)
	core, logs := observer.New(zap.WarnLevel)
	db, err := Open(t.Context(), Config{DSN: dsn, MaxConns: 10, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n, hold = 8, 200 * time.Millisecond
	start := time.Now()
	errs := updateBurst(t.Context(), db, n, hold)
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	// 8 transactions of 200 ms on 3 connections: three rounds.
	t.Logf("%d updates holding %v each on 3 connections took %v", n, hold, took.Round(time.Millisecond))
	if st := db.pool.Stat(); st.TotalConns() > 3 {
		t.Errorf("pool holds %d connections, more than the role may", st.TotalConns())
	}
	var count int
	if err := db.pool.QueryRow(t.Context(), "SELECT count(*) FROM sso_users").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("%d users stored, want %d", count, n)
	}
	// The operator learns why, once (the warning is throttled).
	warned := logs.FilterMessageSnippet("max_connections").All()
	if len(warned) != 1 {
		t.Errorf("%d warnings naming max_connections, want 1: %v", len(warned), logs.All())
	} else {
		t.Logf("warning: %s %v", warned[0].Message, warned[0].ContextMap())
	}
}

// Refused a new connection while holding none, an Update fails at once
// with the server's reason; holding some that stay busy, it fails at the
// bound on a transaction's wait, saying why.
func TestRefusedConnectionFailsClearly(t *testing.T) {
	dsn, setLimit := limitedRole(t, 1)
	// answerWithin: 3 s, in which even a loaded machine's server refuses
	// the connection (the test looks for its reason).
	const timeout = 2 * time.Second
	db, err := Open(t.Context(), Config{DSN: dsn, MaxConns: 10, StatementTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	noop := func(tx store.Tx) error { return nil }

	t.Run("holding one that stays busy", func(t *testing.T) {
		release := holdConn(t, db)
		start := time.Now()
		err := db.Update(t.Context(), noop)
		took := time.Since(start)
		release()
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		checkRefused(t, err)
		if want := db.answerWithin; took < want-100*time.Millisecond || took > want+time.Second {
			t.Errorf("failed after %v, want about %v (the bound on a transaction's wait)", took, want)
		}
		if err != nil && !strings.Contains(err.Error(), "free within") {
			t.Errorf("error does not say that no connection was free in time: %v", err)
		}
	})

	t.Run("holding none", func(t *testing.T) {
		setLimit(0)
		db.pool.Reset() // closes the idle connection
		start := time.Now()
		err := db.Update(t.Context(), noop)
		took := time.Since(start)
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		checkRefused(t, err)
		if took > db.answerWithin/2 {
			t.Errorf("failed after %v, want at once (well within the %v bound): no connection of the instance's will be released", took, db.answerWithin)
		}
		if err != nil && !strings.Contains(err.Error(), "holds none") {
			t.Errorf("error does not say that the instance holds no connection: %v", err)
		}
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		setLimit(1)
		release := holdConn(t, db)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := db.Update(ctx, noop)
		took := time.Since(start)
		release()
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		if !errors.Is(err, context.DeadlineExceeded) || took > time.Second {
			t.Errorf("Update with a context ending after 300 ms: %v after %v, want the context's error at once", err, took)
		}
	})
}

// checkRefused fails t unless err is the server's refusal of a connection.
func checkRefused(t *testing.T, err error) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" {
		t.Errorf("got %v, want the server's refusal (SQLSTATE 53300)", err)
	}
}

// TestRefusedBoundEndsDuringAttempt: when the bound on the wait runs out
// while a retry is under way (a connection being opened, cut short), the
// caller is still told that the server refused and nothing was free in
// time, not that the database did not answer: the refusal is why it
// waited. The retry here holds until the bound ends, as one that began
// just before it would.
func TestRefusedBoundEndsDuringAttempt(t *testing.T) {
	dsn, setLimit := limitedRole(t, 1)
	db := openConfig(t, Config{DSN: dsn, MaxConns: 10, StatementTimeout: time.Second})
	if err := db.View(t.Context(), func(store.Tx) error { return nil }); err != nil {
		t.Fatal(err) // leaves one connection of the instance's in the pool
	}
	setLimit(0)
	_, refusal := pgx.Connect(t.Context(), dsn)
	if !refusedConnection(refusal) {
		t.Fatalf("a connection over the role's limit: %v, want the server's refusal", refusal)
	}
	bctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	attempts := 0
	err := db.waitRefused(t.Context(), bctx, func() error {
		if attempts++; attempts == 1 {
			return refusal
		}
		<-bctx.Done()
		return fmt.Errorf("postgres: begin: %w", bctx.Err())
	})
	checkRefused(t, err)
	if err == nil || !strings.Contains(err.Error(), "free within") {
		t.Errorf("after %d attempts: %v, want the refusal and that no connection was free in time", attempts, err)
	}
}

// Two callers that run transactions back to back (as a sign-in runs
// several in a row) keep the role's two connections busy. A third
// caller, refused a connection of its own, must get one of theirs in
// about the time of a transaction, as it would on a full pool: a caller
// whose transaction just ended must not take back the connection it gave
// to the waiter it woke.
func TestRefusedWaiterNotStarvedByChainedTransactions(t *testing.T) {
	dsn, _ := limitedRole(t, 2)
	db, err := Open(t.Context(), Config{DSN: dsn, MaxConns: 10, StatementTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	var chained atomic.Int64
	busy := make(chan struct{}, 2)
	for range 2 {
		wg.Go(func() {
			first := true
			for ctx.Err() == nil {
				_ = db.Update(ctx, func(tx store.Tx) error {
					if first {
						first = false
						busy <- struct{}{}
					}
					time.Sleep(20 * time.Millisecond)
					return nil
				})
				chained.Add(1)
			}
		})
	}
	<-busy
	<-busy
	// Ten updates in a row, each refused a connection of its own: each
	// must get in within about two of the others' transactions. Whether
	// the line is lost here depends on the scheduler (a waiter sometimes
	// gets in on its own retry); TestRefusedReleaserDoesNotJumpTheLine
	// takes the scheduler out.
	var slowest time.Duration
	for i := range 10 {
		start := time.Now()
		err := db.Update(t.Context(), func(tx store.Tx) error { return nil })
		took := time.Since(start)
		slowest = max(slowest, took)
		if err != nil {
			stop()
			wg.Wait()
			t.Fatalf("update %d failed after %v while the others ran %d transactions: %v", i, took, chained.Load(), err)
		}
	}
	n := chained.Load()
	stop()
	wg.Wait()
	t.Logf("the slowest of ten updates took %v, while the others ran %d transactions", slowest.Round(time.Millisecond), n)
	// A few rounds of 20 ms transactions, with room for -race and a
	// loaded machine; starved, an update waits out its whole bound (2 s)
	// and fails above.
	if slowest > time.Second {
		t.Errorf("an update waited %v for a connection while the others ran %d transactions", slowest, n)
	}
}

// refusedWith returns the error pgx gives when a server refuses a
// connection with SQLSTATE code, as PostgreSQL does with 53300 at
// max_connections and 57P03 while it starts, stops or recovers.
func refusedWith(t *testing.T, code, msg string) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		be := pgproto3.NewBackend(c, c)
		for {
			m, err := be.ReceiveStartupMessage()
			if err != nil {
				return
			}
			if _, ok := m.(*pgproto3.StartupMessage); ok {
				break
			}
			_, _ = c.Write([]byte("N")) // no TLS, no GSS encryption
		}
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: msg})
		_ = be.Flush()
	}()
	_, err = pgx.Connect(t.Context(), "postgres://sso@"+ln.Addr().String()+"/sso?sslmode=disable&connect_timeout=5")
	if !refusedConnection(err) {
		t.Fatalf("the refusing server's error is not a refusal: %v", err)
	}
	return err
}

// heldPool opens a store whose pool holds one connection, taken for the
// test: callers that the server refuses have a connection to wait for,
// and none is idle. The pause before a caller in line tries the pool
// itself is an hour, so that only connFreed moves the line.
func heldPool(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.Context(), Config{DSN: pgtest.NewDatabase(t), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	c, err := db.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Release)
	db.refusal.pauseMin, db.refusal.pauseMax = time.Hour, time.Hour
	return db
}

// refusedCaller runs waitRefused with an op that the server always
// refuses, until ctx ends, and reports each try of op on the returned
// channel: a try after the first is a wake-up.
func refusedCaller(ctx context.Context, db *DB, refused error) (tries <-chan struct{}, done <-chan error) {
	tr := make(chan struct{}, 100)
	d := make(chan error, 1)
	go func() {
		d <- db.waitRefused(ctx, ctx, func() error {
			tr <- struct{}{}
			return refused
		})
	}()
	return tr, d
}

// holdConn holds a connection of db in an Update until release, which
// checks that the Update then committed.
func holdConn(t *testing.T, db *DB) (release func()) {
	t.Helper()
	free := make(chan struct{})
	held := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Update(t.Context(), func(tx store.Tx) error {
			close(held)
			<-free
			return nil
		})
	}()
	<-held
	return func() {
		t.Helper()
		close(free)
		if err := <-done; err != nil {
			t.Errorf("the update holding the connection: %v", err)
		}
	}
}

// nextInLineWoken: with one caller of db waiting (its answer to come on
// done1), a second arrives and gets in line without trying; wake ends the
// first's wait, and the second must then be woken (cancel ends it). It
// returns the first's answer.
func nextInLineWoken(t *testing.T, ctx context.Context, cancel func(), db *DB, refused error, done1 <-chan error, wake func()) error {
	t.Helper()
	queued(t, db, 1)
	tries2, done2 := refusedCaller(ctx, db, refused)
	queued(t, db, 2)
	wake()
	err := <-done1
	if !tried(tries2) {
		t.Error("the next in line was not woken")
	}
	cancel()
	<-done2
	return err
}

// queued waits until n callers wait in db's queue.
func queued(t *testing.T, db *DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		db.refusal.mu.Lock()
		got := len(db.refusal.queue)
		db.refusal.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers queued, want %d", got, n)
		}
	}
}

// tried waits for a try of op; false after a second without one.
func tried(tries <-chan struct{}) bool {
	select {
	case <-tries:
		return true
	case <-time.After(time.Second):
		return false
	}
}

// endedCtx is a context whose Err reports an end its Done channel does
// not: a waiter that selects its wake-up then finds its bound ended, as
// when both happen at once.
type endedCtx struct {
	context.Context
	ended atomic.Bool
}

func (c *endedCtx) Err() error {
	if c.ended.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

// A caller woken for a connection that it then does not take passes the
// wake-up on to the next in line, and so does one whose op took a
// connection and failed (pgxpool destroys a connection whose BEGIN
// failed): else the next waits out its pause while a connection is free.
func TestRefusedWakeUpPassedOn(t *testing.T) {
	db := heldPool(t)
	refused := refusedWith(t, "53300", "sorry, too many clients already")
	failed := errors.New("no answer")

	t.Run("woken, op fails otherwise", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var calls atomic.Int32
		done1 := make(chan error, 1)
		go func() {
			done1 <- db.waitRefused(ctx, ctx, func() error {
				if calls.Add(1) == 1 {
					return refused
				}
				return failed
			})
		}()
		if err := nextInLineWoken(t, ctx, cancel, db, refused, done1, db.connFreed); !errors.Is(err, failed) {
			t.Errorf("the woken caller: %v, want its op's error", err)
		}
	})

	t.Run("woken as its bound ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		bctx := &endedCtx{Context: ctx}
		done1 := make(chan error, 1)
		go func() {
			done1 <- db.waitRefused(ctx, bctx, func() error { return refused })
		}()
		err := nextInLineWoken(t, ctx, cancel, db, refused, done1, func() {
			bctx.ended.Store(true)
			db.connFreed()
		})
		if err == nil || !strings.Contains(err.Error(), "free within") {
			t.Errorf("the woken caller: %v, want its bound's error", err)
		}
	})

	t.Run("op took a connection and failed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		inOp, fail := make(chan struct{}), make(chan struct{})
		done1 := make(chan error, 1)
		go func() {
			done1 <- db.waitRefused(ctx, ctx, func() error {
				close(inOp)
				<-fail
				return failed
			})
		}()
		<-inOp
		tries2, done2 := refusedCaller(ctx, db, refused)
		<-tries2
		queued(t, db, 1)
		close(fail)
		if err := <-done1; !errors.Is(err, failed) {
			t.Errorf("the failing caller: %v, want its op's error", err)
		}
		if !tried(tries2) {
			t.Error("the caller in line was not woken")
		}
		cancel()
		<-done2
	})
}

// A Broadcast that gets no connection wakes no one: a waiter woken in
// vain would try the server again and, refused, keep its turn, but the
// wake-up meant for a real release is gone with it.
func TestRefusedBroadcastFailingWakesNoOne(t *testing.T) {
	db := heldPool(t)
	refused := refusedWith(t, "53300", "sorry, too many clients already")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tries, done := refusedCaller(ctx, db, refused)
	<-tries
	queued(t, db, 1)
	bctx, bcancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer bcancel()
	if err := db.Broadcast(bctx, store.Invalidation{All: true}); err == nil {
		t.Fatal("Broadcast got a connection none was free for")
	}
	if tried(tries) {
		t.Error("the failed Broadcast woke the caller in line")
	}
	cancel()
	<-done
}

// A caller that arrives while others wait gets in line; if no release
// comes (the pool holds an idle connection that no connFreed announced),
// its first pause, not its bound, is what it waits.
func TestRefusedNewcomerNotStuckBesideIdleConnection(t *testing.T) {
	// A long bound (answerWithin 6 s), which only a failing run waits
	// out: half of it is the budget for a whole Update, a scheduling
	// stall included.
	db, err := Open(t.Context(), Config{DSN: pgtest.NewDatabase(t), MaxConns: 1, StatementTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	refused := refusedWith(t, "53300", "sorry, too many clients already")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// A caller that stays in line: the server refuses it whatever the pool holds.
	tries, done := refusedCaller(ctx, db, refused)
	<-tries
	queued(t, db, 1)
	start := time.Now()
	err = db.Update(t.Context(), func(tx store.Tx) error { return nil })
	took := time.Since(start)
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if err != nil {
		t.Fatal(err)
	}
	// Waiting out its bound, or most of it, is the failure; its first
	// pause plus a whole Update is what it takes, which a loaded machine
	// stretched beyond a budget of a few hundred milliseconds.
	if took > db.answerWithin/2 {
		t.Errorf("the newcomer took %v beside an idle connection, want about its first pause (at most %v), well within its %v bound",
			took, refusedPause*3/2, db.answerWithin)
	}
	cancel()
	<-done
}

// A server that is starting up, shutting down or in recovery (a
// failover) refuses connections with 57P03: the warning and the error say
// so, and do not send the operator to max_connections.
func TestRefusedWordedBySQLSTATE(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	db := heldPool(t)
	db.logger = zap.New(core)
	db.answerWithin = 100 * time.Millisecond
	for _, c := range []struct{ code, msg, want, not string }{
		{"57P03", "the database system is starting up", "starting up", "max_connections"},
		{"53300", "sorry, too many clients already", "max_connections", "starting up"},
	} {
		refused := refusedWith(t, c.code, c.msg)
		db.refusal.warned.Store(0)
		logs.TakeAll()
		bctx, cancel := context.WithTimeout(t.Context(), db.answerWithin)
		err := db.waitRefused(t.Context(), bctx, func() error { return refused })
		cancel()
		t.Logf("%s: %v", c.code, err)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.not) {
			t.Errorf("%s: error %v, want it to say %q and not %q", c.code, err, c.want, c.not)
		}
		warned := logs.All()
		if len(warned) != 1 || !strings.Contains(warned[0].Message, c.want) || strings.Contains(warned[0].Message, c.not) {
			t.Errorf("%s: warnings %v, want one saying %q and not %q", c.code, warned, c.want, c.not)
		}
	}
}

// The line is kept: a caller that gives a connection back (connFreed)
// and goes straight on to its next transaction does not take back the
// connection before the waiter it woke gets there. Here a slot stands for
// the pool's one connection, and the server refuses everything else.
func TestRefusedReleaserDoesNotJumpTheLine(t *testing.T) {
	db := heldPool(t)
	refused := refusedWith(t, "53300", "sorry, too many clients already")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var free atomic.Bool
	take := func() error {
		if free.CompareAndSwap(true, false) {
			return nil
		}
		return refused
	}
	waiter := make(chan error, 1)
	go func() { waiter <- db.waitRefused(ctx, ctx, take) }()
	queued(t, db, 1)
	releaser := make(chan error, 1)
	go func() {
		free.Store(true)
		db.connFreed()
		releaser <- db.waitRefused(ctx, ctx, take)
	}()
	select {
	case err := <-waiter:
		if err != nil {
			t.Fatalf("the waiter: %v", err)
		}
	case err := <-releaser:
		t.Fatalf("the releaser took the connection back before the waiter it woke (%v)", err)
	case <-time.After(time.Second):
		t.Fatal("the waiter got no connection")
	}
	// The waiter gives it back: the releaser, now in line, gets it.
	free.Store(true)
	db.connFreed()
	if err := <-releaser; err != nil {
		t.Errorf("the releaser: %v", err)
	}
}
