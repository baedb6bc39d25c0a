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

// backupStoppedAfter is a client whose Backup writes a whole real backup
// and then calls stop: Ctrl-C after the last write, while the backup is
// read back.
type backupStoppedAfter struct {
	client
	backup []byte
	stop   func()
}

func (c backupStoppedAfter) Backup(_ context.Context, w io.Writer) (int64, error) {
	n, err := w.Write(c.backup)
	c.stop()
	return int64(n), err
}

// TestBackupStoppedAfterLastWrite: a backup stopped once everything was
// written, but before the rename, is stopped too: the operator asked for
// no backup, and "backup written" with a file in place would say otherwise.
func TestBackupStoppedAfterLastWrite(t *testing.T) {
	dir := t.TempDir()
	var whole bytes.Buffer
	if _, err := (backupOfEmptyStore{dir: dir}).Backup(context.Background(), &whole); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	_, _, err := writeBackup(ctx, backupStoppedAfter{backup: whole.Bytes(), stop: cancel}, filepath.Join(out, "sso.jsonl.gz"), nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a backup stopped after its last write: %v, want it stopped", err)
	}
	if left, _ := os.ReadDir(out); len(left) > 0 {
		t.Errorf("a backup stopped after its last write left %v", left)
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
