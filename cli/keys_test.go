package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	ssocli "github.com/caddy-sso/caddy-sso/cli"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// runSplit runs `caddy sso <args>` with stdout and stderr apart.
func runSplit(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	cmd := ssocli.NewCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestKeysRotateOffline: with --store, on a stopped instance's bbolt file,
// `keys rotate` rotates every key, re-seals the sessions' tokens with its
// progress on stderr (stdout: the JSON report), and `keys finish` ends it;
// on a file a running Caddy holds it says to use the admin API.
func TestKeysRotateOffline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := session.New(db, session.Config{}, nil, nil)
	u := &store.User{Email: "ada@example.com", Active: true, Source: store.SourceJIT}
	ns, err := m.Prepare("okta", store.LogoutInfo{Subject: "ada"}, &session.Tokens{IDToken: "id-token"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		if _, err := tx.Secret(idp.FlowCookieKeySecret, 32); err != nil { // as Caddy's start makes it
			return err
		}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return ns.Write(tx, u)
	}); err != nil {
		t.Fatal(err)
	}

	// Held open, as by a running Caddy.
	if _, _, err := runSplit("keys", "rotate", "--store", path); err == nil || !strings.Contains(err.Error(), "in use by a running Caddy") {
		t.Fatalf("rotate on a store in use: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := runSplit("keys", "rotate", "--store", path, "--json")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	var rep keys.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(rep.Rotated) != 3 || rep.Tokens == nil || rep.Tokens.Resealed != 1 || !rep.Tokens.PreviousDeleted || rep.UpstreamJWT == nil {
		t.Fatalf("report %s", out)
	}
	if !strings.Contains(errOut, "re-sealing session tokens: pass 1") {
		t.Errorf("no progress on stderr: %q", errOut)
	}

	out, _, err = runSplit("keys", "finish", "--store", path)
	if err != nil || !strings.Contains(out, "the previous key is deleted") {
		t.Fatalf("finish: %v\n%s", err, out)
	}
	db, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m = session.New(db, session.Config{}, nil, nil)
	if tok, err := m.Tokens(context.Background(), ns.Session.Hash); err != nil || tok == nil || tok.IDToken != "id-token" {
		t.Errorf("the session's tokens after the rotation: %+v, %v", tok, err)
	}
}

// TestKeysRotateThroughCaddy: without --store the running Caddy rotates
// the keys (POST /sso/keys/rotate); a signed-in browser stays signed in,
// its session's tokens sealed again, and the output says what to do next.
func TestKeysRotateThroughCaddy(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	b := caddytest.NewBrowser(t)
	caddytest.UpstreamSaw(t, b.SignIn(w.GW.Base+"/", "ada", "ada-pw"))
	out := mustCLI(t, "keys", "rotate", w.GW.AddressFlag())
	for _, want := range []string{"rotated: flow, tokens, upstream-jwt", "1 session(s) sealed again", "the previous key is deleted",
		"caddy reload --force", "caddy sso keys finish"} {
		if !strings.Contains(out, want) {
			t.Errorf("keys rotate lacks %q:\n%s", want, out)
		}
	}
	resp := b.Get(w.GW.Base + "/private")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("signed in before the rotation, after it: %s", resp.Status)
	}
	resp.Body.Close()
	if out := mustCLI(t, "keys", "finish", w.GW.AddressFlag()); !strings.Contains(out, "flow-cookie-key: the previous key is deleted") {
		t.Errorf("keys finish said:\n%s", out)
	}
	if out := mustCLI(t, "audit", "--type", "store.keys_rotated", w.GW.AddressFlag()); strings.Count(out, "store.keys_rotated") != 2 {
		t.Errorf("audit of the rotation:\n%s", out)
	}
}
