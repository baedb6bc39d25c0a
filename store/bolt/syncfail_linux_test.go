package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/stracetest"
	"github.com/caddy-sso/caddy-sso/store"
)

// syncFailResult is what TestSyncFailChild reports to its parent.
type syncFailResult struct {
	Update         string // the error of the commit whose sync failed
	OutcomeUnknown bool   // errors.Is(Update, store.ErrOutcomeUnknown)
	Visible        bool   // its user, read right after
	Next           string // the error of the next write
	NextRefused    bool   // errors.Is(Next, ErrSyncFailed)
	Again          string // the error of the write after that
	Errors         []string
	// Queued is the error of a write that queued behind that commit
	// (entered Update before the store failed closed).
	Queued        string
	QueuedRefused bool // errors.Is(Queued, ErrSyncFailed)
	// CloseWrote: Close committed (its free-page list) after all.
	CloseWrote bool
}

// fileTxID is the transaction ID of the newest valid header of the file.
func fileTxID(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return newestMeta(b[:min(len(b), 2*64<<10)]).txid
}

// TestSyncFailChild is the process TestSyncFailure runs under strace, which
// fails one of its fdatasyncs: it makes one commit on an existing store
// (which syncs nothing at Open), with a second write queued behind it
// while it runs, two more writes, and reports.
func TestSyncFailChild(t *testing.T) {
	path := os.Getenv("SSO_TEST_SYNCFAIL_STORE")
	if path == "" {
		t.Skip("the child process of TestSyncFailure")
	}
	core, logs := observer.New(zapcore.ErrorLevel)
	db, err := Open(path, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var r syncFailResult
	u := &store.User{Email: "ada@example.com", Active: true}
	// While the commit's fn runs (not its rehearsal), another write enters
	// Update, past its refused check, and queues for the next batch.
	queued, started := make(chan error, 1), make(chan struct{})
	go func() {
		<-started
		queued <- db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(&store.User{Email: "carol@example.com"}) })
	}()
	once := false
	err = db.Update(ctx, func(t store.Tx) error {
		if _, real := t.(*tx); real && !once {
			once = true
			close(started)
			for {
				db.commit.mu.Lock()
				n := len(db.commit.pending)
				db.commit.mu.Unlock()
				if n > 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		return t.PutUser(u)
	})
	r.Update, r.OutcomeUnknown = fmt.Sprint(err), errors.Is(err, store.ErrOutcomeUnknown)
	_ = db.View(ctx, func(tx store.Tx) error { _, err := tx.User(u.ID); r.Visible = err == nil; return nil })
	err = <-queued
	r.Queued, r.QueuedRefused = fmt.Sprint(err), errors.Is(err, ErrSyncFailed)
	err = db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(&store.User{Email: "bob@example.com"}) })
	r.Next, r.NextRefused = fmt.Sprint(err), errors.Is(err, ErrSyncFailed)
	err = db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(&store.User{Email: "eve@example.com"}) })
	r.Again = fmt.Sprint(err)
	for _, e := range logs.All() {
		r.Errors = append(r.Errors, e.Message+" "+fmt.Sprint(e.ContextMap()))
	}
	before := fileTxID(t, path)
	_ = db.Close()
	r.CloseWrote = fileTxID(t, path) != before
	line, _ := json.Marshal(r)
	fmt.Printf("SYNCFAIL %s\n", line)
}

// TestSyncFailure: a commit writes its pages, fdatasyncs, writes its header
// and fdatasyncs again (commitError). strace fails one of the two syncs
// with EIO (a disk error a kill cannot show).
//   - the header's sync: the change is in bbolt's mapping, and the next read
//     sees it, so Update says its outcome is unknown (store.ErrOutcomeUnknown),
//     never "nothing of this change was written";
//   - the pages' sync: nothing was written, and Update says so.
//
// Either way the store then refuses every write (ErrSyncFailed) until it is
// opened again, with one ERROR logged; opened again, it checks sound.
func TestSyncFailure(t *testing.T) {
	stracetest.Require(t)
	for _, tc := range []struct {
		name    string
		sync    int // which fdatasync of the process fails (the commit's first two)
		unknown bool
	}{
		{"header sync", 2, true},
		{"pages sync", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sso.db")
			db, err := Open(path, Options{})
			must(t, err)
			must(t, db.Close())
			// Open of an existing store syncs nothing, and a commit runs
			// on a thread of its own (countFaults), so its syncs are the
			// process's first two, however strace counts.
			cmd := exec.Command("strace", "-f", "-qq", "-o", os.DevNull,
				"-e", fmt.Sprintf("inject=fdatasync:error=EIO:when=%d", tc.sync),
				os.Args[0], "-test.run=^TestSyncFailChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SSO_TEST_SYNCFAIL_STORE="+path)
			out, err := cmd.CombinedOutput()
			_, line, ok := strings.Cut(string(out), "SYNCFAIL ")
			if !ok {
				t.Fatalf("child: %v\n%s", err, out)
			}
			line, _, _ = strings.Cut(line, "\n")
			var r syncFailResult
			must(t, json.Unmarshal([]byte(line), &r))
			if !strings.Contains(r.Update, "input/output error") {
				t.Fatalf("the commit did not fail with the injected EIO: %+v", r)
			}
			if r.Visible != tc.unknown {
				t.Fatalf("the failed commit's user visible %v, want %v (injected into the wrong sync?): %+v", r.Visible, tc.unknown, r)
			}
			if r.OutcomeUnknown != tc.unknown || strings.Contains(r.Update, "nothing of this change was written") == tc.unknown {
				t.Errorf("Update = %q (ErrOutcomeUnknown %v), with the user visible %v: want ErrOutcomeUnknown exactly when the next read sees the change",
					r.Update, r.OutcomeUnknown, r.Visible)
			}
			if !r.NextRefused || !strings.Contains(r.Next, "restart") || r.Again != r.Next {
				t.Errorf("writes after the failed sync: %q, then %q; want both refused with ErrSyncFailed, saying to restart", r.Next, r.Again)
			}
			if !r.QueuedRefused {
				t.Errorf("write queued behind the commit whose sync failed: %q; want it refused with ErrSyncFailed, writing nothing", r.Queued)
			}
			if r.CloseWrote {
				t.Error("Close of the store that failed closed committed its free-page list: it must write nothing more")
			}
			if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "failed a sync") || !strings.Contains(r.Errors[0], path) {
				t.Errorf("ERROR log lines %q; want one naming the store and the failed sync", r.Errors)
			}

			db, err = Open(path, Options{})
			must(t, err)
			defer func() { _ = db.Close() }()
			checkOK(t, db)
			checkIndexes(t, db)
			putUser(t, db, &store.User{Email: "after@example.com"})
		})
	}
}
