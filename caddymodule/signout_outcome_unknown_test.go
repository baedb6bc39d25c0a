package caddymodule_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// signOutWithCookie posts the sign-out with the session cookie token: a
// double click sends both POSTs with the cookie the browser held before
// either answer arrived. giveUp, when set, is how long the client waits
// for the answer (a browser drops the first POST once the second starts):
// then it returns 0 when it gave up.
func signOutWithCookie(t *testing.T, base, token string, giveUp time.Duration) (int, string) {
	t.Helper()
	req := signOutPost(t, base)
	req.AddCookie(&http.Cookie{Name: "sso_session", Value: token})
	c := &http.Client{Timeout: giveUp, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		if giveUp > 0 {
			return 0, ""
		}
		t.Fatal(err)
	}
	return resp.StatusCode, readBody(t, resp)
}

func jarSessionCookie(t *testing.T, b *browser, base string) string {
	t.Helper()
	u, _ := url.Parse(base + "/")
	for _, c := range b.jar.Cookies(u) {
		if c.Name == "sso_session" {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// signOutTrace waits for the session.logged_out event(s) and returns them
// with the "signed out" lines (raw JSON) of the gateway's log.
func signOutTrace(t *testing.T, gw *gateway) (loggedOut []store.Event, lines []string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(loggedOut) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		view(t, func(tx store.Tx) error {
			var err error
			loggedOut, err = tx.AuditEvents(store.AuditQuery{Type: store.EventSessionLoggedOut, Limit: 10})
			return err
		})
	}
	for _, l := range strings.Split(gw.logs(), "\n") {
		if strings.Contains(l, `"msg":"signed out"`) {
			lines = append(lines, l)
		}
	}
	return loggedOut, lines
}

// TestSignOutCommitAnswerLostLoggedOnce: the sign-out's COMMIT reaches
// PostgreSQL but its answer is lost (store.ErrOutcomeUnknown: the
// connection cut during COMMIT). The sign-out runs its write again, which
// finds the session ended by it: it is answered as a sign-out (on to the
// IdP's logout, not the store_unavailable page), with one "signed out"
// line saying how it was learned (outcome_unknown), beside its one
// session.logged_out event; the double click's second POST finds the
// session ended, goes on to the IdP's logout too, and logs nothing.
// Before, the first answered 503, logging only "the store failed", and
// no "signed out" line was written anywhere.
func TestSignOutCommitAnswerLostLoggedOnce(t *testing.T) {
	_, dsn := pgtest.OwnDatabase(t)
	cut := pgtest.NewCommitCutter(t, dsn, []byte("INSERT INTO sso_sessions"))

	w := newOIDCWorld(t, "\t\t\tjit\n")
	o := caddytest.OIDC{IdP: w.idp, GW: w.gw.Gateway, IdPBlock: w.idpBlock}
	w.gw.start("{\n" + w.gw.globalOptions() + "\tsso {\n\t\tstore postgres " + cut.DSN + "\n" + o.IdPConfig() + "\t}\n}\n\n" + w.sites)

	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	token := jarSessionCookie(t, b, w.gw.base)

	cut.Arm()
	st1, body1 := signOutWithCookie(t, w.gw.base, token, 0)
	if cut.Cuts() != 1 {
		t.Fatalf("the sign-out's COMMIT was not cut (%d, %.200s): this test proves nothing", st1, body1)
	}
	st2, body2 := signOutWithCookie(t, w.gw.base, token, 0)
	for i, body := range []string{body1, body2} {
		if !strings.Contains(body, "/end_session") {
			t.Errorf("click %d's answer (%d) does not go on to the IdP's logout: %.300s", i+1, []int{st1, st2}[i], body)
		}
	}
	loggedOut, lines := signOutTrace(t, w.gw)
	if len(loggedOut) != 1 {
		t.Fatalf("session.logged_out events: %d, want 1", len(loggedOut))
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"outcome_unknown":true`) || !strings.Contains(lines[0], loggedOut[0].UserID) {
		t.Errorf("one sign-out, audited once, logged %q; want one \"signed out\" line naming %s, with outcome_unknown", lines, loggedOut[0].UserID)
	}
	if strings.Contains(w.gw.logs(), "the store failed") {
		t.Error("a sign-out that committed was logged as a store failure")
	}
}

// TestAbandonedSignOutStillCommitsAndLogs: the browser abandons the first
// POST of a double click while its COMMIT is in flight (held here by
// synchronous replication to a standby that does not exist, released once
// the client has gone). The sign-out's write does not run on the request's
// context, so the client going does not cancel it: it commits and logs
// "signed out" (before, the cancelled COMMIT left store.ErrOutcomeUnknown,
// the sign-out kept as unrecorded, and no line anywhere). The second
// click, on the same instance, finds the session ended and goes on to the
// IdP's logout (before, it showed the local "Signed out" page and the
// IdP's session lived on).
func TestAbandonedSignOutStillCommitsAndLogs(t *testing.T) {
	ctx := context.Background()
	_, dsn := pgtest.OwnDatabase(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	setSync := func(v string) {
		t.Helper()
		if _, err := admin.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = '"+v+"'"); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}

	w := newOIDCWorld(t, "\t\t\tjit\n")
	o := caddytest.OIDC{IdP: w.idp, GW: w.gw.Gateway, IdPBlock: w.idpBlock}
	w.gw.start("{\n" + w.gw.globalOptions() + "\tsso {\n\t\tstore postgres \"" + dsn + "\"\n" + o.IdPConfig() + "\t}\n}\n\n" + w.sites)

	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	token := jarSessionCookie(t, b, w.gw.base)

	setSync("nosuchstandby") // from now on a COMMIT waits
	if st, body := signOutWithCookie(t, w.gw.base, token, time.Second); st != 0 {
		t.Fatalf("the sign-out answered %d before the client gave up (%.200s): the COMMIT did not wait; this test proves nothing", st, body)
	}
	time.Sleep(500 * time.Millisecond) // the gateway sees the client gone
	setSync("")                        // the waiting COMMIT completes

	loggedOut, _ := signOutTrace(t, w.gw)
	st, body := signOutWithCookie(t, w.gw.base, token, 0) // the second click
	if !strings.Contains(body, "/end_session") {
		t.Errorf("the second click's answer (%d) does not go on to the IdP's logout, whose session lives on: %.400s", st, body)
	}
	_, lines := signOutTrace(t, w.gw)
	if len(loggedOut) != 1 {
		t.Fatalf("session.logged_out events: %d, want 1 (the abandoned sign-out's COMMIT applied)", len(loggedOut))
	}
	if len(lines) != 1 || !strings.Contains(lines[0], loggedOut[0].UserID) {
		t.Errorf("one sign-out, audited once, logged %q; want one \"signed out\" line naming %s", lines, loggedOut[0].UserID)
	}
	if strings.Contains(w.gw.logs(), "the store failed") {
		t.Error("an abandoned sign-out was logged as a store failure")
	}
}
