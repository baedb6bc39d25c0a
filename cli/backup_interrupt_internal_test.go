package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// backupIgnoringContext is a client whose Backup writes a whole real
// backup, as an offline backup does (portable.Backup reads the store in one
// transaction, which does not look at the context), calling stop once it
// has written the first stopAt bytes.
type backupIgnoringContext struct {
	client
	backup []byte
	stopAt int
	stop   func()
}

func (c backupIgnoringContext) Backup(_ context.Context, w io.Writer) (int64, error) {
	n, err := w.Write(c.backup[:c.stopAt])
	c.stop()
	if err != nil || c.stopAt == len(c.backup) {
		return int64(n), err
	}
	m, err := w.Write(c.backup[c.stopAt:])
	return int64(n + m), err
}

// TestBackupStoppedWritesNoFile: Ctrl-C (interruptible) during an offline
// backup let it run to its end and renamed the file into place, "backup
// written", where the operator had stopped it. Now it stops at the next
// write, and there is no file; stopped once everything was written, but
// before the rename, it is stopped too: the operator asked for no backup.
func TestBackupStoppedWritesNoFile(t *testing.T) {
	dir := t.TempDir()
	var whole bytes.Buffer
	if _, err := (backupOfEmptyStore{dir: dir}).Backup(context.Background(), &whole); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		stopAt int
	}{
		{"half-way", whole.Len() / 2},
		{"after its last write", whole.Len()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := t.TempDir()
			_, _, err := writeBackup(ctx, backupIgnoringContext{backup: whole.Bytes(), stopAt: tc.stopAt, stop: cancel}, filepath.Join(out, "sso.jsonl.gz"), nil)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("a backup stopped %s: %v, want it stopped", tc.name, err)
			}
			if left, _ := os.ReadDir(out); len(left) > 0 {
				t.Errorf("a backup stopped %s left %v", tc.name, left)
			}
		})
	}
}

// TestProgressWriterRefusesOnceStopped: once its context is done, the
// backup's writer refuses every write, so that an offline backup, which
// does not look at the context itself, stops at its next write rather than
// read the whole store first.
func TestProgressWriterRefusesOnceStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var buf bytes.Buffer
	p := &progressWriter{w: &buf, ctx: ctx, every: 1 << 20}
	if n, err := p.Write([]byte("before")); n != 6 || err != nil {
		t.Fatalf("write before the stop: %d, %v", n, err)
	}
	cancel()
	if n, err := p.Write([]byte("after")); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("write after the stop: %d, %v; want 0 and context.Canceled", n, err)
	}
	if buf.String() != "before" {
		t.Errorf("the writer passed on %q, want only what came before the stop", buf.String())
	}
}
