package adminapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestKeysEndpoints: POST /sso/keys/rotate rotates the keys only= names
// (every kind without it) and answers with the report, audited as asked
// through the admin API; a second rotation of the tokens key before the
// finish is a 409 that says what to do; POST /sso/keys/finish before the
// time the rotation gave is a 409 too, and with now=true deletes the flow
// cookies' and the tokens' previous keys. Other methods and unknown
// kinds are refused.
func TestKeysEndpoints(t *testing.T) {
	srv, db := apiServer(t)
	ctx := context.Background()
	sealedSessions(t, db, 1) // the flow key, and a tokens key to rotate
	cl := testClient(srv)
	rep, err := cl.RotateKeys(ctx, []keys.Kind{keys.Flow, keys.UpstreamJWT}, adminapi.KeysWatch{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rotated) != 2 || !rep.FlowPreviousKept || rep.Tokens != nil || rep.UpstreamJWT == nil || rep.FinishAfter.IsZero() {
		t.Fatalf("rotate report %+v", rep)
	}
	if status, body := apiGet(t, srv, http.MethodGet, adminapi.Prefix+"keys/rotate"); status != http.StatusMethodNotAllowed {
		t.Errorf("GET keys/rotate: %d %s", status, body)
	}
	if status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+"keys/rotate?only=saml"); status != http.StatusBadRequest || !strings.Contains(body, "unknown key") {
		t.Errorf("only=saml: %d %s", status, body)
	}
	if status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+"keys/finish?only=flow"); status != http.StatusBadRequest {
		t.Errorf("finish with only=: %d %s", status, body)
	}
	// A client that reads only the last line of the stream gets the report.
	status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+"keys/rotate")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	var last adminapi.KeysLine
	if status != http.StatusOK || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil || last.Report == nil ||
		len(last.Report.Rotated) != 3 || last.Report.Tokens == nil || !last.Report.TokensPreviousKept {
		t.Fatalf("rotate of every key: %d %s", status, body)
	}
	if status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+"keys/rotate?only=tokens"); status != http.StatusConflict ||
		!strings.Contains(body, "finish it first (caddy sso keys finish)") {
		t.Errorf("a second rotation of the tokens key before the finish: %d %s", status, body)
	}
	// Before the time the rotation gave, the finish is refused, and says
	// when to run it; now=true finishes at once.
	if status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+"keys/finish"); status != http.StatusConflict ||
		!strings.Contains(body, "too early") || !strings.Contains(body, "nothing was deleted") {
		t.Errorf("a finish at once: %d %s", status, body)
	}
	if !resealPending(t, db) {
		t.Fatal("the refused finish deleted the previous tokens key")
	}
	if status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+"keys/finish?now=soon"); status != http.StatusBadRequest {
		t.Errorf("now=soon: %d %s", status, body)
	}
	fin, err := cl.FinishKeys(ctx, true, adminapi.KeysWatch{})
	if err != nil || !fin.FlowPreviousDeleted || !fin.TokensPreviousFound || fin.Tokens == nil || !fin.Tokens.PreviousDeleted {
		t.Fatalf("finish: %+v %v", fin, err)
	}
	if resealPending(t, db) {
		t.Error("the previous tokens key is still there after the finish")
	}

	var events []store.Event
	_ = db.View(ctx, func(tx store.Tx) (err error) {
		events, err = tx.AuditEvents(store.AuditQuery{Type: account.EventStoreKeysRotated})
		return err
	})
	var steps []string
	for _, e := range events {
		if e.Reason != account.ByAdmin || e.Detail["via"] != "admin_api" || e.Detail["remote"] == "" {
			t.Errorf("event %+v", e)
		}
		steps = append(steps, e.Detail["step"]+":"+e.Detail["keys"])
	}
	if got := strings.Join(steps, " "); got != "rotate:flow,upstream-jwt rotate:flow,tokens,upstream-jwt finish:flow,tokens" {
		t.Errorf("audited steps %q", got)
	}
}

// keysServer serves the admin API over db with a re-seal slowed by
// reseal, and reports on the returned channel each time the handler
// returns.
func keysServer(t *testing.T, db store.Store, reseal session.ResealOptions) (*httptest.Server, <-chan error) {
	t.Helper()
	done := make(chan error, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := adminapi.Handler{Accounts: &account.Service{Store: db}, Reseal: reseal}
		err := h.Serve(w, r)
		if ae := (*adminapi.Error)(nil); errors.As(err, &ae) {
			w.WriteHeader(ae.Status)
		} else if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
		if err != nil {
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		}
		done <- err
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv, done
}

// sealedSessions signs n users in (a session each, its tokens sealed) and
// makes the flow cookies' key, as Caddy's start does.
func sealedSessions(t *testing.T, db store.Store, n int) {
	t.Helper()
	m := session.New(db, session.Config{}, nil, nil)
	err := db.Update(context.Background(), func(tx store.Tx) error {
		if _, err := tx.Secret(idp.FlowCookieKeySecret, 32); err != nil {
			return err
		}
		for i := range n {
			u := &store.User{Email: fmt.Sprintf("u%d@example.com", i), Active: true, Source: store.SourceJIT}
			ns, err := m.Prepare("okta", store.LogoutInfo{Subject: fmt.Sprint(i)}, &session.Tokens{IDToken: fmt.Sprint("id-token-", i)})
			if err != nil {
				return err
			}
			if err := tx.PutUser(u); err != nil {
				return err
			}
			if err := ns.Write(tx, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func resealPending(t *testing.T, db store.Store) bool {
	t.Helper()
	var pending bool
	if err := db.View(context.Background(), func(tx store.Tx) (err error) {
		pending, err = session.ResealPending(tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return pending
}

// resealRest is the pause between the re-seal's batches of one session in
// the streaming tests: 30 sessions take 3 s, long enough that what a test
// does after the first line (look at the store, leave, close the store)
// happens mid-re-seal even on a loaded machine that stalls the test.
const resealRest = 100 * time.Millisecond

// TestKeysStreamProgress: the keys endpoints answer as soon as the
// rotation's transaction has committed (the re-seal still to do), then
// stream the re-seal's progress as JSON Lines, and end with the report;
// Client.RotateKeys hands the lines to its watch.
func TestKeysStreamProgress(t *testing.T) {
	_, db := apiServer(t)
	sealedSessions(t, db, 30)
	srv, _ := keysServer(t, db, session.ResealOptions{Batch: 1, Rest: resealRest})

	resp, err := http.Post(srv.URL+adminapi.Prefix+"keys/rotate", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/jsonl" {
		t.Fatalf("%s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(resp.Body)
	var first adminapi.KeysLine
	if err := dec.Decode(&first); err != nil || first.Committed == nil || len(first.Committed.Rotated) != 3 {
		t.Fatalf("first line %+v, %v; want the committed rotation", first, err)
	}
	if !resealPending(t, db) {
		t.Fatal("the first line came only after the re-seal ended")
	}
	var (
		progress int
		last     adminapi.KeysLine
		prev     adminapi.KeysProgress
	)
	for {
		var line adminapi.KeysLine
		if err := dec.Decode(&line); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p := line.Progress; p != nil {
			progress++
			if *p == prev { // a pass ending on a full batch reports its end twice
				t.Errorf("progress %+v twice", *p)
			}
			prev = *p
		}
		last = line
	}
	if progress < 2 {
		t.Errorf("%d progress lines; want the end of the pass, and more in between", progress)
	}
	if last.Report == nil || last.Report.Tokens == nil || last.Report.Tokens.Resealed != 30 || !last.Report.TokensPreviousKept {
		t.Fatalf("last line %+v; want the report", last)
	}
	if _, err := testClient(srv).FinishKeys(context.Background(), true, adminapi.KeysWatch{}); err != nil {
		t.Fatal(err)
	}

	// Through the client, with a watch.
	var committed, watched int
	rep, err := testClient(srv).RotateKeys(context.Background(), []keys.Kind{keys.Tokens}, adminapi.KeysWatch{
		Committed: func(keys.Report) { committed++ },
		Progress: func(p session.ResealProgress) {
			if committed == 1 && p.Pass > 0 {
				watched++
			}
		}})
	if err != nil || rep.Tokens == nil || rep.Tokens.Resealed != 30 || committed != 1 || watched < 2 {
		t.Fatalf("RotateKeys: %+v, %v; committed %d, progress %d", rep, err, committed, watched)
	}
}

// TestKeysClientGone: a client that leaves once the rotation committed
// leaves the keys rotated and the re-seal unfinished (the previous tokens
// key kept, so every token opens); the same request again is refused
// (409: finish first), rotating nothing anew, and the finish finishes it.
func TestKeysClientGone(t *testing.T) {
	_, db := apiServer(t)
	sealedSessions(t, db, 30)
	srv, done := keysServer(t, db, session.ResealOptions{Batch: 1, Rest: resealRest})

	resp, err := http.Post(srv.URL+adminapi.Prefix+"keys/rotate", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var first adminapi.KeysLine
	if err := json.NewDecoder(resp.Body).Decode(&first); err != nil || first.Committed == nil {
		t.Fatalf("first line %+v, %v", first, err)
	}
	resp.Body.Close() // closes the connection: the transport keeps none with a body unread
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the re-seal went on after the client left")
	}
	if !resealPending(t, db) {
		t.Fatal("the re-seal finished although its client left")
	}
	var events []store.Event
	_ = db.View(context.Background(), func(tx store.Tx) (err error) {
		events, err = tx.AuditEvents(store.AuditQuery{Type: account.EventStoreKeysRotated})
		return err
	})
	if len(events) != 1 || events[0].Detail["keys"] != "flow,tokens,upstream-jwt" {
		t.Fatalf("audit events %+v; want the rotation's", events)
	}

	rep, err := testClient(srv).RotateKeys(context.Background(), nil, adminapi.KeysWatch{})
	if ae := (*adminapi.Error)(nil); !errors.As(err, &ae) || ae.Status != http.StatusConflict || rep != nil {
		t.Fatalf("again: %+v, %v; want a 409, nothing rotated anew", rep, err)
	}
	rep, err = testClient(srv).FinishKeys(context.Background(), true, adminapi.KeysWatch{})
	if err != nil || !rep.TokensPreviousFound || rep.Tokens == nil || !rep.Tokens.PreviousDeleted || rep.Tokens.Resealed == 0 {
		t.Fatalf("finish: %+v, %v; want the re-seal finished", rep, err)
	}
	if resealPending(t, db) {
		t.Error("the previous tokens key is still there after the finish")
	}
}

// TestKeysClientStalls: a client that takes no line within the stall
// timeout stops the re-seal as one that leaves does, although its
// connection stays open: the keys rotated, the previous tokens key kept,
// both logged. The stall timeout here is one every write
// overruns, as a client that reads nothing makes every write overrun it
// once the socket's buffers are full (which the stream's short lines take
// minutes to fill).
func TestKeysClientStalls(t *testing.T) {
	_, db := apiServer(t)
	sealedSessions(t, db, 30)
	core, logs := observer.New(zapcore.InfoLevel)
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := adminapi.Handler{Accounts: &account.Service{Store: db}, Logger: zap.New(core), BackupStall: time.Nanosecond,
			Reseal: session.ResealOptions{Batch: 1, Rest: resealRest}}
		done <- h.Serve(w, r)
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // read from never, closed only at the end
	if _, err := fmt.Fprintf(conn, "POST %skeys/rotate HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n", adminapi.Prefix); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the handler failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the re-seal went on for 10 s after its client stalled")
	}
	// The previous tokens key stays after a rotation's re-seal, finished or
	// not: the logs tell the two apart.
	if !resealPending(t, db) {
		t.Error("the previous tokens key is gone")
	}
	if n := logs.FilterMessageSnippet("the client takes no more of the answer").Len(); n != 1 {
		t.Errorf("%d warnings that the client takes no more, want 1; logs %v", n, logs.All())
	}
	failed := logs.FilterMessage("store key rotation failed").All()
	if len(failed) != 1 || !strings.Contains(fmt.Sprint(failed[0].ContextMap()["error"]), keys.ErrResealUnfinished.Error()) ||
		logs.FilterMessage("store keys rotated").Len() != 0 {
		t.Errorf("logs %v; want the re-seal stopped, unfinished", logs.All())
	}
	// The error names why it stopped, not only the request's cancellation
	// that net/http made of the failed write.
	if len(failed) == 1 && !strings.Contains(fmt.Sprint(failed[0].ContextMap()["error"]), "the client took no more of the answer") {
		t.Errorf("store key rotation failed with %v; want it to say the client took no more of the answer", failed[0].ContextMap()["error"])
	}
}

// TestKeysStreamError: a re-seal that fails once the stream has begun (the
// store closed under it) ends the stream with an error line, which
// Client.RotateKeys returns, saying the keys were rotated.
func TestKeysStreamError(t *testing.T) {
	_, db := apiServer(t)
	sealedSessions(t, db, 30)
	srv, _ := keysServer(t, db, session.ResealOptions{Batch: 1, Rest: resealRest})
	_, err := testClient(srv).RotateKeys(context.Background(), nil, adminapi.KeysWatch{
		Committed: func(keys.Report) { _ = db.Close() }})
	if err == nil || !strings.Contains(err.Error(), "the keys were rotated, but "+keys.ErrResealUnfinished.Error()) {
		t.Fatalf("RotateKeys: %v", err)
	}
}

// TestKeysRotationThatCannotCommitIsAnErrorStatus: a rotation whose store
// transaction fails (here a store opened read-only; a full disk in life)
// changed nothing, and says so with an error status, not a 200 stream.
func TestKeysRotationThatCannotCommitIsAnErrorStatus(t *testing.T) {
	db := readOnlyStore(t, func(rw store.Store) { sealedSessions(t, rw, 1) })
	srv, _ := keysServer(t, db, session.ResealOptions{})
	for _, uri := range []string{"keys/rotate", "keys/finish?now=true"} {
		status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+uri)
		if status != http.StatusInternalServerError || strings.Contains(body, `"committed"`) {
			t.Errorf("POST %s on a store that takes no write: %d %s, want 500", uri, status, body)
		}
	}
}

// TestKeysStreamOutlivesTheStallTimeout: the stall timeout bounds how long
// one line may wait on its client, not the whole answer: each line renews
// the connection's write deadline, so a re-seal that takes longer than the
// timeout, streamed to a client that reads every line, ends with its report.
func TestKeysStreamOutlivesTheStallTimeout(t *testing.T) {
	_, db := apiServer(t)
	sealedSessions(t, db, 30) // 3 s of re-seal at resealRest, three stall timeouts
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := adminapi.Handler{Accounts: &account.Service{Store: db}, BackupStall: time.Second,
			Reseal: session.ResealOptions{Batch: 1, Rest: resealRest}}
		if err := h.Serve(w, r); err != nil {
			t.Errorf("the handler failed: %v", err)
		}
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	rep, err := testClient(srv).RotateKeys(context.Background(), []keys.Kind{keys.Tokens}, adminapi.KeysWatch{})
	if err != nil || rep.Tokens == nil || rep.Tokens.Resealed != 30 {
		t.Fatalf("RotateKeys: %+v, %v; want the re-seal of 30 sessions reported", rep, err)
	}
}

// TestKeysProgressPaced: the progress lines come at most every 500 ms
// (keysProgressEvery), not one per batch, and the last before the report
// says the end of the pass (every session read).
func TestKeysProgressPaced(t *testing.T) {
	_, db := apiServer(t)
	sealedSessions(t, db, 30)
	srv, _ := keysServer(t, db, session.ResealOptions{Batch: 1, Rest: resealRest})
	var lines []session.ResealProgress
	began := time.Now()
	rep, err := testClient(srv).RotateKeys(context.Background(), []keys.Kind{keys.Tokens}, adminapi.KeysWatch{
		Progress: func(p session.ResealProgress) { lines = append(lines, p) }})
	took := time.Since(began)
	if err != nil || rep.Tokens == nil || rep.Tokens.Resealed != 30 {
		t.Fatalf("RotateKeys: %+v, %v", rep, err)
	}
	if len(lines) == 0 {
		t.Fatal("no progress line")
	}
	// One line per 500 ms the answer took, plus the end of the pass.
	if most := int(took/(500*time.Millisecond)) + 2; len(lines) > most {
		t.Errorf("%d progress lines in %s (30 batches); want at most %d, one per 500 ms and the pass's end", len(lines), took, most)
	}
	if last := lines[len(lines)-1]; last.Scanned != last.Sessions || last.Resealed != 30 {
		t.Errorf("last progress line %+v; want the end of the pass", last)
	}
}

// TestKeysFinishStreamError: a finish whose re-seal fails once the stream
// has begun says that the finish stopped (to run it again), not that keys
// were rotated, which a finish does not do.
func TestKeysFinishStreamError(t *testing.T) {
	_, db := apiServer(t)
	sealedSessions(t, db, 30)
	// A rotation whose re-seal stops at once leaves every blob to the
	// finish's re-seal, which takes 3 s at resealRest.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Tokens}, Committed: func(keys.Report) { cancel() }}); !errors.Is(err, keys.ErrResealUnfinished) {
		t.Fatalf("rotation: %v; want its re-seal stopped", err)
	}
	srv, _ := keysServer(t, db, session.ResealOptions{Batch: 1, Rest: resealRest})
	_, err := testClient(srv).FinishKeys(context.Background(), true, adminapi.KeysWatch{
		Committed: func(keys.Report) { _ = db.Close() }})
	if err == nil || !strings.Contains(err.Error(), "the finish stopped: "+keys.ErrResealUnfinished.Error()) ||
		strings.Contains(err.Error(), "the keys were rotated") {
		t.Fatalf("FinishKeys: %v; want it to say the finish stopped", err)
	}
}

// TestKeysProgressSaysThePassEnd: a re-seal quicker than the progress
// lines' pace still streams the end of its pass (every session read),
// which the pace never holds back.
func TestKeysProgressSaysThePassEnd(t *testing.T) {
	_, db := apiServer(t)
	sealedSessions(t, db, 3)
	srv, _ := keysServer(t, db, session.ResealOptions{Batch: 1})
	var lines []session.ResealProgress
	rep, err := testClient(srv).RotateKeys(context.Background(), []keys.Kind{keys.Tokens}, adminapi.KeysWatch{
		Progress: func(p session.ResealProgress) { lines = append(lines, p) }})
	if err != nil || rep.Tokens == nil || rep.Tokens.Resealed != 3 {
		t.Fatalf("RotateKeys: %+v, %v", rep, err)
	}
	if len(lines) == 0 || lines[len(lines)-1] != (session.ResealProgress{Pass: 1, Scanned: 3, Sessions: 3, Resealed: 3}) {
		t.Errorf("progress lines %+v; want the last to say the pass's end", lines)
	}
}
