package postgres

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// The store names its connections caddy-sso in pg_stat_activity unless
// the DSN names them: an operator who runs several deployments on one
// server tells them apart by the application_name they set.
func TestApplicationNameFromDSN(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	for _, c := range []struct{ name, dsn, want string }{
		{"default", dsn, "caddy-sso"},
		{"in the DSN", dsn + "&application_name=sso-eu", "sso-eu"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := openDSN(t, c.dsn)
			var got string
			if err := db.pool.QueryRow(t.Context(), "SELECT current_setting('application_name')").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("application_name = %q, want %q", got, c.want)
			}
		})
	}
}

// A connect_timeout in the DSN is the operator's and wins over the one
// the store derives from the statement timeout (see Open): against a
// server that accepts connections and never answers (a hung host), Open
// gives up after the DSN's second, not after the statement timeout plus
// answerGrace.
func TestDSNConnectTimeoutWins(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16) // held open, never answered
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c
		}
	}()
	defer func() {
		_ = ln.Close()
		for c := range held {
			_ = c.Close()
		}
	}()
	dsn := "postgres://sso@" + ln.Addr().String() + "/sso?sslmode=disable&connect_timeout=1"
	start := time.Now()
	db, err := Open(context.Background(), Config{DSN: dsn, StatementTimeout: 10 * time.Second})
	took := time.Since(start)
	if err == nil {
		db.Close()
		t.Fatal("Open on a server that never answers succeeded")
	}
	// connect_timeout=1 against the derived 11 s; room for a loaded host.
	if took > 6*time.Second {
		t.Errorf("Open gave up after %v, want about the DSN's connect_timeout of 1s: %v", took.Round(time.Millisecond), err)
	}
}
