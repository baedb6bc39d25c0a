package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/stracetest"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/portable"
)

// backupOfEmptyStore is a client whose Backup writes a real portable
// backup of an empty bbolt store in dir.
type backupOfEmptyStore struct {
	client
	dir string
}

func (c backupOfEmptyStore) Backup(ctx context.Context, w io.Writer) (int64, error) {
	db, err := bolt.Open(filepath.Join(c.dir, "src.db"), bolt.Options{})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return portable.Backup(ctx, db, w)
}

// TestBackupWriterProcess is the child TestBackupRenameIsDurable traces.
func TestBackupWriterProcess(t *testing.T) {
	dir := os.Getenv("SSO_TEST_BACKUP_DIR")
	if dir == "" {
		t.Skip("the child process of TestBackupRenameIsDurable")
	}
	if _, _, err := writeBackup(context.Background(), backupOfEmptyStore{dir: dir}, filepath.Join(dir, "out", "sso.jsonl.gz"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestBackupRenameIsDurable: `caddy sso backup` says "written" once it has
// renamed its temporary file into place, and a power cut after that must
// not lose the name: the rename lives in the directory, which is fsynced
// after it (as a restore's file is). A process kill cannot show this, so
// the test reads the system calls of a backup under strace.
func TestBackupRenameIsDurable(t *testing.T) {
	stracetest.Require(t)
	dir := t.TempDir()
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(dir, "trace")
	cmd := exec.Command("strace", "-f", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2", "-o", trace,
		os.Args[0], "-test.run=^TestBackupWriterProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SSO_TEST_BACKUP_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup under strace: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	opened := regexp.MustCompile(`openat\(AT_FDCWD, "([^"]*)", [^)]*\) = (\d+)`)
	synced := regexp.MustCompile(`f(?:data)?sync\((\d+)\)`)
	dirFDs := map[string]bool{}
	renamed, dirSynced := false, false
	for _, line := range stracetest.Lines(string(raw)) {
		if m := opened.FindStringSubmatch(line); m != nil && filepath.Clean(m[1]) == outDir {
			dirFDs[m[2]] = true
		}
		if strings.Contains(line, "rename") && strings.Contains(line, `sso.jsonl.gz"`) && strings.HasSuffix(line, "= 0") {
			renamed = true
		}
		if m := synced.FindStringSubmatch(line); m != nil && renamed && dirFDs[m[1]] {
			dirSynced = true
		}
	}
	if !renamed {
		t.Fatalf("no rename of the backup into place in the trace:\n%s", raw)
	}
	if !dirSynced {
		t.Errorf("the backup was renamed into %s, which was not fsynced after: a power cut can lose a backup reported as written", outDir)
	}
}
