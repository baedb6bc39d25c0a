package caddymodule_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// signInCommitCutter is a TCP proxy in front of a PostgreSQL server that
// lets the server run the COMMIT of the first transaction that writes a
// session (a sign-in) and drops the client's connection before the
// answer comes back: a connection lost during COMMIT, whose outcome the
// gateway cannot know (store.ErrOutcomeUnknown; docs/operations.md). It
// cuts once.
type signInCommitCutter struct {
	addr string // where the gateway connects
	cut  atomic.Bool
}

// newSignInCommitCutter forwards to the unix socket of the cluster, so
// the server sees a local connection (trusted in pgtest's clusters).
func newSignInCommitCutter(t *testing.T, c *pgtest.Cluster) *signInCommitCutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	cc := &signInCommitCutter{addr: ln.Addr().String()}
	socket := fmt.Sprintf("%s/.s.PGSQL.%d", c.Dir, c.Port)
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("unix", socket)
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

// forward copies the client's messages to the server; once this
// connection has sent a session's INSERT, its next COMMIT (pgx sends it
// as a simple query) reaches the server and the client is cut off.
func (cc *signInCommitCutter) forward(client, server net.Conn) {
	defer server.Close()
	commit := []byte("Q\x00\x00\x00\x0bcommit\x00")
	insert := []byte("INSERT INTO sso_sessions")
	sawSession := false
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			sawSession = sawSession || bytes.Contains(buf[:n], insert)
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
			if sawSession && bytes.Contains(buf[:n], commit) && cc.cut.CompareAndSwap(false, true) {
				_ = client.Close() // the answer never arrives
				// Keep the server's end open while it commits, as a
				// network that failed on the way back would.
				_, _ = io.Copy(io.Discard, server)
				return
			}
			if bytes.Contains(buf[:n], commit) {
				sawSession = false
			}
		}
		if err != nil {
			return
		}
	}
}

// TestBrowserPagesSignInOutcomeUnknown: the connection to PostgreSQL is
// lost while the sign-in's COMMIT is on its way, and the server commits
// it. Chromium shows the store_outcome_unknown page at the callback: 503,
// "Sign-in is unavailable", a message that says the sign-in may or may
// not have been saved and that this browser is not signed in (never
// "Nothing was changed": the user and the session exist), the reference
// store_outcome_unknown, and no link or button. What it asks, trying
// again, works: a new visit signs in (the IdP still has the person's
// session) and lands on the page.
func TestBrowserPagesSignInOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	cluster, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{NoFsync: true})
	if err != nil {
		pgtest.Unavailable(t, err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	if _, err := cluster.CreateDatabase(ctx, "sso"); err != nil {
		t.Fatal(err)
	}
	cut := newSignInCommitCutter(t, cluster)
	dsn := fmt.Sprintf("postgres://postgres@%s/sso?sslmode=disable", cut.addr)

	w := newOIDCWorld(t, "\t\t\tjit\n")
	o := caddytest.OIDC{IdP: w.idp, GW: w.gw.Gateway, IdPBlock: w.idpBlock}
	w.gw.start("{\n" + w.gw.globalOptions() + "\tsso {\n\t\tstore postgres " + dsn + "\n" + o.IdPConfig() + "\t}\n}\n\n" + w.sites)
	browser := newChromium(t)
	statuses := recordResponses(t, browser)

	if err := chromedp.Do(browser, chromedp.Navigate(w.gw.base+"/reports"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	p := waitForTitle(t, browser, "Sign-in is unavailable")
	if !cut.cut.Load() {
		t.Fatal("the page came without the COMMIT being cut: this test proves nothing")
	}
	if !strings.HasPrefix(p.Loc, w.gw.base+"/.sso/oidc/test/callback?") {
		t.Errorf("the page is at %s, want the callback", p.Loc)
	}
	statuses.requireStatus(t, p.Loc, http.StatusServiceUnavailable)
	for _, want := range []string{"Your sign-in may or may not have been saved, and this browser is not signed in.", "Try again"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("the page does not say %q:\n%s", want, p.Body)
		}
	}
	if strings.Contains(p.Body, "Nothing was changed") {
		t.Errorf("the page says nothing was changed, which the lost COMMIT may have:\n%s", p.Body)
	}
	if p.Code != ssogateway.CodeStoreOutcomeUnknown || !strings.Contains(p.Body, "Reference: "+ssogateway.CodeStoreOutcomeUnknown) {
		t.Errorf("reference %q, want %s:\n%s", p.Code, ssogateway.CodeStoreOutcomeUnknown, p.Body)
	}
	controls, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll("a, button, form, input").length`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Links) != 0 || controls != 0 {
		t.Errorf("the page has links %+v and %d controls, want none", p.Links, controls)
	}
	requireNoInternalText(t, p, "postgres", "commit", "conn", "sso_", cut.addr)
	// The server committed: Ada's user and the session exist, though this
	// browser has no cookie of it.
	ada := userBySubject(t, "sub-ada")
	if n := len(storedSessions(t)); n != 1 {
		t.Errorf("stored sessions after the lost COMMIT: %d, want the one it carried", n)
	}

	// Trying again, as the page says: the IdP still has Ada's session,
	// so the next visit lands on the page, signed in.
	if err := chromedp.Do(browser, chromedp.Navigate(w.gw.base+"/reports")); err != nil {
		t.Fatal(err)
	}
	body, _ := waitForPage(t, browser, w.gw.base+"/reports")
	if e := echoOf(t, body); e.header("X-Forwarded-User") != ada.ID || e.header("X-Forwarded-Email") != "ada@example.com" {
		t.Errorf("after trying again the upstream saw user %q, %q; want Ada (%s), the user the lost COMMIT created",
			e.header("X-Forwarded-User"), e.header("X-Forwarded-Email"), ada.ID)
	}
	var created int
	view(t, func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Type: store.EventUserCreated, Limit: 10})
		created = len(events)
		return err
	})
	if created != 1 {
		t.Errorf("user.created events: %d, want 1 (the second sign-in found Ada)", created)
	}
}
