package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// Channel is the LISTEN/NOTIFY channel instances tell each other on.
const Channel = "caddy_sso_invalidate"

// ListenerApplicationName is the application_name of Listen's connection
// (pg_stat_activity shows it).
const ListenerApplicationName = "caddy-sso listener"

// maxPayload keeps a NOTIFY payload under PostgreSQL's limit (8000 bytes
// in the default build) with room to spare; Broadcast splits larger
// invalidations.
const maxPayload = 7000

// Listen's timing: how often an idle listening connection is checked (a
// connection that died without a reset would otherwise wait forever), and
// the bounds of the pause between reconnection attempts.
const (
	listenPing     = 5 * time.Second
	listenPingWait = 3 * time.Second
	backoffMin     = 100 * time.Millisecond
	backoffMax     = 5 * time.Second
)

// The listener's watch on the server's NOTIFY queue (8 GB, shared by every
// database of the cluster): it fills only while a listener does not read
// (a frozen instance, anywhere on the cluster), and once full the server
// refuses, at COMMIT, every transaction that sends a notice. Above
// queueWarnAt the listener warns, at most every queueWarnEvery.
const (
	queueWarnAt    = 0.5
	queueWarnEvery = time.Minute
)

// queueWatch decides when the listener warns about the NOTIFY queue's
// usage (pg_notification_queue_usage, 0 to 1): at once when it rises
// above queueWarnAt, then at most every queueWarnEvery while it stays
// there.
type queueWatch struct {
	warned time.Time // the last warning, zero while the usage is low
}

// warn reports whether a reading of usage at now calls for a warning.
func (w *queueWatch) warn(usage float64, now time.Time) bool {
	if usage <= queueWarnAt {
		w.warned = time.Time{}
		return false
	}
	if !w.warned.IsZero() && now.Sub(w.warned) < queueWarnEvery {
		return false
	}
	w.warned = now
	return true
}

// RunningInstances counts the other connections to the database that are
// an instance's invalidation listener (ListenerApplicationName): the
// running Caddy instances on this store, as far as the role sees them
// (pg_stat_activity names another role's sessions only to a member of
// pg_read_all_stats). A database has no lock to tell an offline command
// that instances use it, as a bbolt file has: cli restore and migrate ask
// this before they write.
func (db *DB) RunningInstances(ctx context.Context) (int, error) {
	bctx, cancel := db.bound(ctx)
	defer cancel()
	var n int
	err := db.pool.QueryRow(bctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()`,
		ListenerApplicationName).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count running instances: %w", db.unanswered(ctx, err))
	}
	return n, nil
}

// notice is one NOTIFY payload.
type notice struct {
	Origin   string   `json:"o"`
	Sessions []string `json:"s,omitempty"`
	Users    []string `json:"u,omitempty"`
	All      bool     `json:"a,omitempty"`
}

// Broadcast sends inv to every listening instance (this one's Listen skips
// it). Call it after the change has committed: a NOTIFY outside a
// transaction is delivered at once. Large invalidations go out in several
// notifications, each under PostgreSQL's payload limit.
func (db *DB) Broadcast(ctx context.Context, inv store.Invalidation) error {
	bctx, cancel := db.bound(ctx)
	defer cancel()
	for _, payload := range db.payloads(inv) {
		// Right after a commit in a burst the pool may have no idle
		// connection and the server may refuse a new one: wait for one
		// (see waitRefused). A pooled connection the server has closed is
		// passed over (see begin): a lost notification leaves others
		// serving an ended session until their cache entry expires.
		err := db.waitRefused(ctx, bctx, func() error {
			return db.pastDeadConns(bctx, func() error {
				_, err := db.pool.Exec(bctx, "SELECT pg_notify($1, $2)", Channel, payload)
				return err
			})
		})
		if err != nil {
			// No connection was taken that waitRefused has not
			// accounted for: a wake-up here would send a waiter to the
			// pool in vain.
			return fmt.Errorf("postgres: broadcast invalidation: %w", db.unanswered(ctx, err))
		}
		// Exec has given the connection back: wake a waiter.
		db.connFreed()
	}
	return nil
}

// BroadcastAtCommit is Broadcast inside the transaction
// (store.TxBroadcaster): PostgreSQL delivers the notifications when it
// commits, and none when it rolls back, so a rerun of the caller's fn
// sends them once. A pg_notify the server refuses (its EXECUTE revoked,
// say) is undone to a savepoint and reported as not told: the change still
// commits and the caller broadcasts after it, as a sign-out does, since
// word that cannot go out must not cost the change itself (the other
// instances' caches forget within their time to live). The server checks
// for room in its NOTIFY queue only at COMMIT: when it is full there, the
// Update runs fn again and this reports not told (see DB.runs).
func (t *tx) BroadcastAtCommit(inv store.Invalidation) (bool, error) {
	if err := t.mustWrite("broadcast"); err != nil {
		return false, err
	}
	if t.quiet {
		return false, nil
	}
	if _, err := t.exec("SAVEPOINT sso_notify"); err != nil {
		return false, err
	}
	for _, payload := range t.db.payloads(inv) {
		ctx, cancel := t.db.bound(t.ctx)
		_, err := t.q.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, payload)
		cancel()
		var refused *pgconn.PgError
		if errors.As(err, &refused) {
			_, err = t.exec("ROLLBACK TO SAVEPOINT sso_notify")
			return false, err
		}
		if err != nil {
			return false, t.fail(fmt.Errorf("broadcast invalidation: %w", err))
		}
	}
	_, err := t.exec("RELEASE SAVEPOINT sso_notify")
	t.notified = t.notified || err == nil
	return err == nil, err
}

// payloads splits inv into JSON payloads of at most maxPayload bytes.
func (db *DB) payloads(inv store.Invalidation) []string {
	if inv.All {
		raw, _ := json.Marshal(notice{Origin: db.origin, All: true})
		return []string{string(raw)}
	}
	var out []string
	cur := notice{Origin: db.origin}
	size := len(`{"o":"","s":[],"u":[]}`) + len(db.origin)
	flush := func() {
		if len(cur.Sessions)+len(cur.Users) > 0 {
			raw, _ := json.Marshal(cur)
			out = append(out, string(raw))
		}
		cur = notice{Origin: db.origin}
		size = len(`{"o":"","s":[],"u":[]}`) + len(db.origin)
	}
	add := func(list *[]string, v string) {
		n := len(v) + 8 // quotes, comma, and room for JSON escapes of odd IDs
		if size+n > maxPayload {
			flush()
		}
		*list = append(*list, v)
		size += n
	}
	for _, h := range inv.Sessions {
		add(&cur.Sessions, h)
	}
	for _, u := range inv.Users {
		add(&cur.Users, u)
	}
	flush()
	return out
}

// Listen holds a connection of its own (not from the pool: LISTEN belongs
// to a session) and calls fn for every invalidation other instances
// broadcast, until ctx ends. Whenever it (re)subscribes, the first time
// included, it calls fn(Invalidation{All: true}): notifications sent while
// it was not listening are lost, so the caller must drop what it cached.
// Between attempts it waits with a growing, jittered pause, and while it
// waits the caller's cache TTL bounds staleness.
func (db *DB) Listen(ctx context.Context, fn func(store.Invalidation)) {
	pause := backoffMin
	for ctx.Err() == nil {
		start := time.Now()
		err := db.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > backoffMax {
			pause = backoffMin // it ran well for a while: start over
		}
		db.logger.Warn("invalidation listener disconnected; reconnecting",
			zap.String("channel", Channel), zap.Duration("retry_in", pause), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(jittered(pause)):
		}
		pause = min(pause*2, backoffMax)
	}
}

// jittered is a pause between half of pause and pause, at random, so that
// instances cut off together do not reconnect together; never more than
// pause (docs/cluster.md gives the bound).
func jittered(pause time.Duration) time.Duration {
	return pause/2 + time.Duration(mrand.Int64N(int64(pause/2)+1)) //nolint:gosec // G404: jitter, not a secret
}

// listenOnce connects, subscribes, signals All, and delivers
// notifications until the connection fails or ctx ends.
func (db *DB) listenOnce(ctx context.Context, fn func(store.Invalidation)) error {
	cfg := db.conn.Copy()
	// Named apart from the pool's connections in pg_stat_activity.
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return db.scrub(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return db.scrub(err)
	}
	db.logger.Debug("invalidation listener subscribed", zap.String("channel", Channel))
	fn(store.Invalidation{All: true})
	var watch queueWatch
	// checkQueue reads the queue's usage, which also proves the server is
	// still there (the ping). An error the server sent (the function's
	// EXECUTE revoked) is an answer: the connection is sound.
	checked := time.Now()
	checkQueue := func() error {
		checked = time.Now()
		pctx, cancel := context.WithTimeout(ctx, listenPingWait)
		defer cancel()
		var usage float64
		err := conn.QueryRow(pctx, "SELECT pg_notification_queue_usage()").Scan(&usage)
		var answered *pgconn.PgError
		if errors.As(err, &answered) {
			db.queueUsage.Store(nil) // no reading: an old one would pass for current
			return nil
		}
		if err != nil {
			return err
		}
		db.queueUsage.Store(&usage)
		if watch.warn(usage, time.Now()) {
			db.logger.Warn("the database's NOTIFY queue is filling up: a listening session (a frozen instance's, or another "+
				"application's) does not read its notifications, and once the queue is full no instance can tell the others "+
				"about ended sessions. Find it in pg_stat_activity: a LISTEN session (application_name 'caddy-sso listener', "+
				"or query LIKE 'LISTEN%') whose wait_event is 'ClientWrite'; resume or stop that process, or end the session "+
				"with pg_terminate_backend(pid): the queue empties at once",
				zap.String("channel", Channel), zap.Float64("queue_usage", usage))
		}
		return nil
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if wctx.Err() == nil {
				return db.scrub(err) // the connection failed
			}
			// Quiet for a while: make sure the server is still there.
			if err := checkQueue(); err != nil {
				return db.scrub(err)
			}
			continue
		}
		// A steady stream of notices leaves no quiet while: watch the
		// queue between them as often.
		if time.Since(checked) >= listenPing {
			if err := checkQueue(); err != nil {
				return db.scrub(err)
			}
		}
		var nt notice
		if err := json.Unmarshal([]byte(n.Payload), &nt); err != nil {
			db.logger.Warn("ignoring an unreadable invalidation", zap.String("channel", Channel), zap.Error(err))
			continue
		}
		if nt.Origin == db.origin {
			continue
		}
		fn(store.Invalidation{Sessions: nt.Sessions, Users: nt.Users, All: nt.All})
	}
}
