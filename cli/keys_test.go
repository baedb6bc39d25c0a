package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
// progress on stderr (stdout: the JSON report), keeping the previous
// tokens key, and `keys finish` ends it, deleting the previous flow and
// tokens keys; on a file a running Caddy holds it says to use the admin
// API.
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
	if len(rep.Rotated) != 3 || rep.Tokens == nil || rep.Tokens.Resealed != 1 || rep.Tokens.PreviousDeleted || !rep.TokensPreviousKept ||
		rep.UpstreamJWT == nil {
		t.Fatalf("report %s", out)
	}
	if !strings.Contains(errOut, "re-sealing session tokens: pass 1") {
		t.Errorf("no progress on stderr: %q", errOut)
	}

	out, _, err = runSplit("keys", "finish", "--now", "--store", path)
	if err != nil || !strings.Contains(out, "flow-cookie-key: the previous key is deleted") ||
		!strings.Contains(out, "session tokens: 0 session(s) sealed again under the new key; the previous key is deleted") {
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
// its session's tokens sealed again, and the output says what to do next
// and that the previous tokens key is kept until the finish; a second
// rotation before the finish is refused, saying what to do, and so is a
// finish before the time the rotation gave, unless --now.
func TestKeysRotateThroughCaddy(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	b := caddytest.NewBrowser(t)
	caddytest.UpstreamSaw(t, b.SignIn(w.GW.Base+"/", "ada", "ada-pw"))
	out, errOut, err := runSplit("keys", "rotate", w.GW.AddressFlag())
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{"rotated: flow, tokens, upstream-jwt", "1 session(s) sealed again", "the previous key is kept until finish",
		"within 1m0s (no reload)", "next: after", "run: caddy sso keys finish"} {
		if !strings.Contains(out, want) {
			t.Errorf("keys rotate lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"rotated in the store: flow, tokens, upstream-jwt", "'caddy sso keys finish' after",
		"re-sealing session tokens: pass 1, 1 of 1 sessions read, 1 sealed again"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("keys rotate's stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(out, "the previous key is deleted") {
		t.Errorf("keys rotate deleted a previous key:\n%s", out)
	}
	if out, errOut, err := runSplit("keys", "rotate", w.GW.AddressFlag()); err == nil ||
		!strings.Contains(err.Error(), "finish it first (caddy sso keys finish), or use --only to leave tokens out") {
		t.Errorf("a second rotation before the finish: %v\n%s%s", err, out, errOut)
	}
	resp := b.Get(w.GW.Base + "/private")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("signed in before the rotation, after it: %s", resp.Status)
	}
	resp.Body.Close()
	if out, errOut, err := runSplit("keys", "finish", w.GW.AddressFlag()); err == nil || !strings.Contains(err.Error(), "too early") ||
		!strings.Contains(err.Error(), "--now") {
		t.Errorf("a finish at once: %v\n%s%s", err, out, errOut)
	}
	if out := mustCLI(t, "keys", "finish", "--now", w.GW.AddressFlag()); !strings.Contains(out, "flow-cookie-key: the previous key is deleted") ||
		!strings.Contains(out, "session tokens: 0 session(s) sealed again under the new key; the previous key is deleted") {
		t.Errorf("keys finish said:\n%s", out)
	}
	resp = b.Get(w.GW.Base + "/private")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("signed in before the rotation, after its finish: %s", resp.Status)
	}
	resp.Body.Close()
	if out := mustCLI(t, "audit", "--type", "store.keys_rotated", w.GW.AddressFlag()); strings.Count(out, "store.keys_rotated") != 2 {
		t.Errorf("audit of the rotation:\n%s", out)
	}
}

// TestKeysRotateSlowReseal: through a running Caddy, a re-seal that takes
// far longer than --timeout (thousands of sessions, on a store whose write
// lock something else holds most of the time) succeeds: the answer begins
// once the rotation committed and its progress keeps coming, which the
// command prints on stderr, the report last. The command used to wait for
// the whole re-seal and fail with "sent no answer within 1s".
func TestKeysRotateSlowReseal(t *testing.T) {
	w := caddytest.NewOIDC(t, "").Start()
	db := caddytest.RunningStore(t)
	// Forty batches, each waiting for the busy store's transaction
	// (0 to 250 ms, 125 on average): about 5 s, under 2 s only by a chance
	// far below one in a million, whatever the machine.
	const n = 40 * session.DefaultResealBatch
	putSealedSessions(t, db, n)

	// A busy store: each of the re-seal's write transactions waits for
	// one of these.
	busy, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for busy.Err() == nil {
			_ = db.Update(context.Background(), func(store.Tx) error { time.Sleep(250 * time.Millisecond); return nil })
			time.Sleep(20 * time.Millisecond)
		}
	})
	var out, errOut, all bytes.Buffer
	cmd := ssocli.NewCommand()
	cmd.SetOut(io.MultiWriter(&out, &all))
	cmd.SetErr(io.MultiWriter(&errOut, &all))
	cmd.SetArgs([]string{"keys", "rotate", w.GW.AddressFlag(), "--timeout=2s", "--json"})
	start := time.Now()
	err := cmd.ExecuteContext(context.Background())
	took := time.Since(start)
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("after %v: %v\n%s", took, err, all.String())
	}
	if took < 2*time.Second {
		t.Fatalf("the rotation took %v, not much longer than --timeout: this test proves nothing", took)
	}
	var rep keys.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Tokens == nil || rep.Tokens.Resealed != n || !rep.TokensPreviousKept {
		t.Fatalf("report %+v, %v:\n%s", rep.Tokens, err, out.String())
	}
	if got := strings.Count(errOut.String(), "re-sealing session tokens: pass 1,"); got < 2 {
		t.Errorf("%d progress lines of pass 1 in %v:\n%s", got, took, errOut.String())
	}
	// The pass ends on a full batch, so the re-seal reports its end twice.
	if got := strings.Count(errOut.String(), fmt.Sprintf("pass 1, %d of %d", n, n)); got != 1 {
		t.Errorf("the end of pass 1 printed %d times:\n%s", got, errOut.String())
	}
	if !strings.HasPrefix(errOut.String(), "rotated in the store: flow, tokens, upstream-jwt") {
		t.Errorf("stderr does not begin saying the keys are rotated:\n%s", errOut.String())
	}
	if !strings.HasSuffix(all.String(), out.String()) {
		t.Errorf("the report is not last:\n%s", all.String())
	}
	t.Logf("%v:\n%s", took, errOut.String())
}

// TestKeysRotateOfflineProgressOnce: offline, a pass that ends on a full
// batch (the re-seal then reports its end twice) prints its end once, the
// rotation's and the finish's; and stderr says first that the keys are
// rotated, as through Caddy.
func TestKeysRotateOfflineProgressOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = session.DefaultResealBatch
	putSealedSessions(t, db, n)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runSplit("keys", "rotate", "--only", "tokens", "--store", path)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	if !strings.HasPrefix(errOut, "rotated in the store: tokens;") {
		t.Errorf("stderr does not begin saying the keys are rotated:\n%s", errOut)
	}
	if got := strings.Count(errOut, fmt.Sprintf("pass 1, %d of %d", n, n)); got != 1 {
		t.Errorf("the end of the rotation's pass printed %d times:\n%s", got, errOut)
	}
	out, errOut, err = runSplit("keys", "finish", "--now", "--store", path)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	if !strings.HasPrefix(errOut, "re-sealing what only the previous session-tokens-key opens") {
		t.Errorf("the finish's stderr does not begin saying what it does:\n%s", errOut)
	}
	if got := strings.Count(errOut, fmt.Sprintf("pass 1, %d of %d sessions read, 0 sealed again", n, n)); got != 1 {
		t.Errorf("the end of the finish's pass printed %d times:\n%s", got, errOut)
	}
}

// putSealedSessions stores n sessions with sealed tokens, 32 to a user
// (within the sessions a user may have), for a re-seal to work through.
func putSealedSessions(t *testing.T, db store.Store, n int) {
	t.Helper()
	m := session.New(db, session.Config{}, nil, nil)
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		var u *store.User
		for i := range n {
			if i%32 == 0 {
				u = &store.User{Email: fmt.Sprintf("u%d@example.com", i), Active: true, Source: store.SourceJIT}
				if err := tx.PutUser(u); err != nil {
					return err
				}
			}
			ns, err := m.Prepare("okta", store.LogoutInfo{Subject: fmt.Sprint(i)}, &session.Tokens{IDToken: "id-token"})
			if err != nil {
				return err
			}
			if err := ns.Write(tx, u); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
