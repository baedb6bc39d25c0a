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
// transaction, which does not look at the context), calling stop half-way.
type backupIgnoringContext struct {
	client
	backup []byte
	stop   func()
}

func (c backupIgnoringContext) Backup(_ context.Context, w io.Writer) (int64, error) {
	half := len(c.backup) / 2
	n, err := w.Write(c.backup[:half])
	if err != nil {
		return int64(n), err
	}
	c.stop()
	m, err := w.Write(c.backup[half:])
	return int64(n + m), err
}

// TestBackupStoppedMidwayWritesNoFile: Ctrl-C (interruptible) during an
// offline backup let it run to its end and renamed the file into place,
// "backup written", where the operator had stopped it. Now it stops at
// the next write, and there is no file.
func TestBackupStoppedMidwayWritesNoFile(t *testing.T) {
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
	target := filepath.Join(out, "sso.jsonl.gz")
	_, _, err := writeBackup(ctx, backupIgnoringContext{backup: whole.Bytes(), stop: cancel}, target, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a backup stopped half-way: %v, want it stopped", err)
	}
	if left, _ := os.ReadDir(out); len(left) > 0 {
		t.Errorf("a backup stopped half-way left %v", left)
	}
}
