package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// commitCutter is a TCP proxy in front of the test server that, once
// armed, passes a COMMIT on to the server and then drops the client's
// connection before the answer comes back: a connection lost during
// COMMIT, whose outcome the client cannot know.
type commitCutter struct {
	dsn   string // through the proxy
	armed atomic.Bool
}

// newCommitCutter starts the proxy for dsn's server, until the test ends.
func newCommitCutter(t *testing.T, dsn string) *commitCutter {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	network, addr := "tcp", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	if strings.HasPrefix(cfg.Host, "/") {
		network, addr = "unix", fmt.Sprintf("%s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	cc := &commitCutter{dsn: fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, ln.Addr(), cfg.Database)}
	if cfg.Password != "" {
		cc.dsn = fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", cfg.User, cfg.Password, ln.Addr(), cfg.Database)
	}
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial(network, addr)
			if err != nil {
				_ = client.Close()
				continue
			}
			go func() { _, _ = io.Copy(client, server); _ = client.Close() }()
			go cc.forward(client, server)
		}
	}()
	return cc
}

// forward copies what the client sends to the server, and cuts the
// client off after an armed COMMIT (pgx sends it as a simple query).
func (cc *commitCutter) forward(client, server net.Conn) {
	defer server.Close()
	commit := []byte("Q\x00\x00\x00\x0bcommit\x00")
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
			if bytes.Contains(buf[:n], commit) && cc.armed.CompareAndSwap(true, false) {
				_ = client.Close() // the answer never arrives
				// The server has the COMMIT; keep its end open while it
				// runs it, as a network that failed on the way back would.
				time.Sleep(time.Second)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestCommitLostConnection: the connection is lost once COMMIT is on its
// way, and the server commits. Update must not report it as a failure that
// wrote nothing (a sign-in page "Nothing was changed" while the user,
// session and audit event exist): it says the outcome is unknown.
func TestCommitLostConnection(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	direct := openDSN(t, dsn)
	cut := newCommitCutter(t, dsn)
	db := openDSN(t, cut.dsn)
	u := &store.User{Email: "ada@example.com", Active: true, IdP: "okta", ExternalID: "ada", Source: store.SourceJIT}
	err := db.Update(context.Background(), func(tx store.Tx) error {
		cut.armed.Store(true)
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.Audit(store.Event{Type: store.EventLoginSucceeded, UserID: u.ID})
	})
	if !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Errorf("Update with the connection lost during COMMIT = %v; want store.ErrOutcomeUnknown", err)
	}
	if err == nil || strings.Contains(err.Error(), "password") {
		t.Fatalf("Update = %v; want the lost connection reported", err)
	}
	// The server committed: the change is there for the next reader.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found error
		view(t, direct, func(tx store.Tx) error { _, found = tx.User(u.ID); return nil })
		if found == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user the lost COMMIT carried is not in the database: %v", found)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The handle goes on with a new connection.
	putUser(t, db, &store.User{Email: "bob@example.com", Active: true})
}
