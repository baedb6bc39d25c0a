package pgtest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// CommitCutter is a TCP proxy on loopback in front of a PostgreSQL server
// that, once armed, lets a COMMIT reach the server and drops the client's
// connection before the answer comes back: a connection lost during
// COMMIT, whose outcome the client cannot know (store.ErrOutcomeUnknown).
// It cuts once per Arm.
type CommitCutter struct {
	// DSN connects through the proxy, as the server's DSN did; Addr is
	// the proxy's host:port.
	DSN, Addr string
	// after, when set, must have gone through a connection since its last
	// COMMIT for that COMMIT to be cut (a session's INSERT: a sign-in).
	after []byte
	armed atomic.Bool
	cuts  atomic.Int64
}

// NewCommitCutter starts the proxy for the server dsn names (a unix socket
// or TCP), until the test ends; after is what a transaction must have sent
// to have its COMMIT cut (nil: any transaction's). It is not armed.
func NewCommitCutter(t testing.TB, dsn string, after []byte) *CommitCutter {
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
	userinfo := cfg.User
	if cfg.Password != "" {
		userinfo += ":" + cfg.Password
	}
	cc := &CommitCutter{DSN: fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", userinfo, ln.Addr(), cfg.Database),
		Addr: ln.Addr().String(), after: after}
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

// Arm makes the proxy cut the next COMMIT it sees (of a transaction that
// sent after).
func (cc *CommitCutter) Arm() { cc.armed.Store(true) }

// Cuts is how many COMMITs the proxy has cut.
func (cc *CommitCutter) Cuts() int64 { return cc.cuts.Load() }

// forward copies what the client sends to the server, and cuts the
// client off after an armed COMMIT (pgx sends it as a simple query).
//
// A transaction has sent after when one of its messages carries it (the
// Parse of a statement's first run on a connection) or names a statement
// prepared from it: pgx keeps prepared statements per connection, and a
// rerun of the transaction sends only their names. A ROLLBACK ends the
// transaction as a COMMIT does, or an unrelated transaction next on the
// connection would be cut in place of the rerun.
func (cc *CommitCutter) forward(client, server net.Conn) {
	defer server.Close()
	commit := []byte("Q\x00\x00\x00\x0bcommit\x00")
	rollback := []byte("Q\x00\x00\x00\x0drollback\x00")
	var statements [][]byte // names of statements prepared from after
	saw := cc.after == nil
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			msg := buf[:n]
			if k := bytes.Index(msg, cc.after); cc.after != nil && k >= 0 {
				saw = true
				if name := preparedName(msg[:k]); name != nil {
					statements = append(statements, name)
				}
			}
			saw = saw || slices.ContainsFunc(statements, func(name []byte) bool { return bytes.Contains(msg, name) })
			isCommit := bytes.Contains(msg, commit)
			if isCommit && saw && cc.armed.CompareAndSwap(true, false) {
				cc.cuts.Add(1)
				// The client goes first: closed after the COMMIT went on,
				// a quick answer could reach it in between (the copy back
				// runs on its own), and the cut would be no cut.
				_ = client.Close()
				if _, werr := server.Write(msg); werr != nil {
					return
				}
				// The server has the COMMIT; keep its end open while it
				// runs it, as a network that failed on the way back would.
				_, _ = io.Copy(io.Discard, server)
				return
			}
			if _, werr := server.Write(msg); werr != nil {
				return
			}
			if isCommit || bytes.Contains(msg, rollback) {
				saw = cc.after == nil
			}
		}
		if err != nil {
			return
		}
	}
}

// preparedName is the name, NUL included, of the statement whose Parse
// message's query starts where before ends: pgx names its cached
// statements stmtcache_<hash>. Nil for an unnamed statement.
func preparedName(before []byte) []byte {
	i := bytes.LastIndex(before, []byte("stmtcache_"))
	if i < 0 || before[len(before)-1] != 0 || bytes.IndexByte(before[i:], 0) != len(before)-1-i {
		return nil
	}
	return bytes.Clone(before[i:])
}
