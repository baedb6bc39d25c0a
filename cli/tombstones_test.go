package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestCLITombstonesAgainstRunningCaddy: a user an administrator deleted at
// an IdP SCIM manages is refused at their next sign-in (deprovisioned);
// `tombstones list` shows why, and `tombstones lift <deleted-user-id>`
// lets them sign in again, created anew by JIT.
func TestCLITombstonesAgainstRunningCaddy(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n\t\t\tscim\n").Start()
	addr := w.GW.AddressFlag()
	caddytest.UpstreamSaw(t, caddytest.NewBrowser(t).SignIn(w.GW.Base+"/", "ada", "ada-pw"))
	ada := caddytest.UserBySubject(t, "sub-ada")
	mustCLI(t, "users", "delete", ada.ID, addr)
	resp := caddytest.NewBrowser(t).SignIn(w.GW.Base+"/", "ada", "ada-pw")
	if body := caddytest.ReadBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "has been removed") {
		t.Fatalf("the deleted user's sign-in: %s %s; want refused as deprovisioned", resp.Status, body)
	}

	out := mustCLI(t, "tombstones", "list", addr)
	for _, want := range []string{"DELETED USER", "test", "sub-ada", ada.ID, "1 tombstone(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("tombstones list lacks %q:\n%s", want, out)
		}
	}
	var listed []account.TombstoneInfo
	if err := json.Unmarshal([]byte(mustCLI(t, "tombstones", "list", "--user", ada.ID, "--json", addr)), &listed); err != nil ||
		len(listed) != 1 || listed[0].Subject != "sub-ada" {
		t.Errorf("tombstones list --user --json: %+v (%v)", listed, err)
	}
	if out := mustCLI(t, "tombstones", "lift", ada.ID, addr); !strings.Contains(out, "1 tombstone(s) lifted") {
		t.Errorf("tombstones lift said:\n%s", out)
	}
	if _, err := cli(context.Background(), "tombstones", "lift", ada.ID, addr); err == nil ||
		err.Error() != `no tombstone of deleted user "`+ada.ID+`" (HTTP 404 Not Found)` {
		t.Errorf("second lift: %v", err)
	}
	caddytest.UpstreamSaw(t, caddytest.NewBrowser(t).SignIn(w.GW.Base+"/", "ada", "ada-pw"))
	if again := caddytest.UserBySubject(t, "sub-ada"); again.ID == ada.ID {
		t.Errorf("signed in as the deleted user %s", ada.ID)
	}
	out = mustCLI(t, "audit", "--type", account.EventTombstoneLifted, addr)
	if !strings.Contains(out, ada.ID) || !strings.Contains(out, "sub-ada") || !strings.Contains(out, "tombstones=1") {
		t.Errorf("audit of the lift:\n%s", out)
	}
}

// TestCLITombstonesOffline lists and lifts with --store, a bbolt file and
// a PostgreSQL database, both ways of lifting, with --json.
func TestCLITombstonesOffline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	scimDeleteTwice(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("bolt", func(t *testing.T) { offlineLift(t, "--store=bolt:"+path) })
	t.Run("postgres", func(t *testing.T) {
		dsn, pg := openPG(t)
		scimDeleteTwice(t, pg)
		t.Setenv("SSO_TEST_TOMBSTONES_DSN", dsn)
		offlineLift(t, "--store=postgres:{env.SSO_TEST_TOMBSTONES_DSN}")
	})
}

// scimDeleteTwice has SCIM delete two users of "entra" who also signed in
// at "google": each leaves a tombstone at entra and one following it.
func scimDeleteTwice(t *testing.T, st store.Store) {
	t.Helper()
	acc := &account.Service{Store: st, SCIMManaged: func(idp string) bool { return idp == "entra" }}
	for _, id := range []string{"ada", "bob"} {
		u := &store.User{ID: id, Email: id + "@corp.example", Active: true, Source: store.SourceSCIM, IdP: "entra", ExternalID: "oid-" + id,
			Links: []store.Link{{IdP: "entra", Subject: "oid-" + id}, {IdP: "google", Subject: "g-" + id}}}
		if err := st.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
			t.Fatal(err)
		}
		if _, err := acc.Delete(context.Background(), id, account.BySCIM); err != nil {
			t.Fatal(err)
		}
	}
}

func offlineLift(t *testing.T, st string) {
	out := mustCLI(t, "tombstones", "list", st)
	for _, want := range []string{"entra: oid-ada", "g-bob", "4 tombstone(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	if out := mustCLI(t, "tombstones", "list", "--idp", "google", "--limit", "1", st); !strings.Contains(out, "g-ada") || !strings.Contains(out, "1 tombstone(s)") {
		t.Errorf("list --idp google --limit 1:\n%s", out)
	}
	var res account.LiftResult
	if err := json.Unmarshal([]byte(mustCLI(t, "tombstones", "lift", "ada", "--json", st)), &res); err != nil || len(res.Lifted) != 2 {
		t.Errorf("lift ada --json: %+v (%v)", res, err)
	}
	// One tombstone: bob's at google alone, his home one stays.
	if out := mustCLI(t, "tombstones", "lift", "--idp", "google", "--subject", "g-bob", st); !strings.Contains(out, "1 tombstone(s) lifted") {
		t.Errorf("lift --idp --subject said:\n%s", out)
	}
	var left []account.TombstoneInfo
	if err := json.Unmarshal([]byte(mustCLI(t, "tombstones", "list", "--json", st)), &left); err != nil || len(left) != 1 || left[0].Subject != "oid-bob" {
		t.Errorf("left: %+v (%v)", left, err)
	}
	if _, err := cli(context.Background(), "tombstones", "lift", "ada", st); err == nil || err.Error() != `no tombstone of deleted user "ada"` {
		t.Errorf("lift ada again: %v", err)
	}
	for _, args := range [][]string{{"lift"}, {"lift", "ada", "--idp", "google", "--subject", "g-ada"}, {"lift", "--idp", "google"}} {
		if _, err := cli(context.Background(), append(append([]string{"tombstones"}, args...), st)...); err == nil || !strings.Contains(err.Error(), "--idp and --subject") {
			t.Errorf("tombstones %v: %v", args, err)
		}
	}
}
