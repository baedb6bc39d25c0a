package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestSynchronousCommitOn: where the server, database or role sets
// synchronous_commit = off (a tuned or managed server), a commit returns
// before its WAL is flushed, and a sign-in or SCIM write answered as done
// is lost if the database server crashes. The store's connections (the
// pool's and Listen's) set it on, and Open logs that once; stronger
// settings are left as they are, without a word.
func TestSynchronousCommitOn(t *testing.T) {
	for _, tc := range []struct {
		server, want string
		logged       bool
	}{
		{"off", "on", true},
		{"remote_apply", "remote_apply", false},
		{"on", "on", false},
	} {
		t.Run(tc.server, func(t *testing.T) {
			ctx := context.Background()
			dsn := pgtest.NewDatabase(t)
			cfg, err := pgconn.ParseConfig(dsn)
			if err != nil {
				t.Fatal(err)
			}
			admin, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			_, err = admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{cfg.Database}.Sanitize()+" SET synchronous_commit = "+tc.server)
			_ = admin.Close(ctx)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.InfoLevel)
			db, err := Open(ctx, Config{DSN: dsn, MaxConns: 3, Logger: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var conns []*pgx.Conn
			for range 3 { // held at once: at least two are new
				c, err := db.pool.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Release()
				conns = append(conns, c.Conn())
			}
			listener, err := pgx.ConnectConfig(ctx, db.conn.Copy())
			if err != nil {
				t.Fatal(err)
			}
			defer listener.Close(ctx)
			for i, c := range append(conns, listener) {
				var got string
				if err := c.QueryRow(ctx, "SHOW synchronous_commit").Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("connection %d (the last is Listen's): synchronous_commit = %s with the database's %s, want %s", i, got, tc.server, tc.want)
				}
			}
			said := logs.FilterMessageSnippet("synchronous_commit off").All()
			if n := len(said); (n == 1) != tc.logged || n > 1 {
				t.Errorf("%d log lines about synchronous_commit with the database's %s; want one exactly when it is off: %v", n, tc.server, said)
			}
			if tc.logged && len(said) == 1 && said[0].Level != zapcore.WarnLevel {
				t.Errorf("logged at %s, want WARN", said[0].Level)
			}
		})
	}
}
