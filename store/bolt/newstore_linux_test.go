package bolt

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/stracetest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestNewStoreChild is the process TestNewStoreNameIsDurable traces: the
// first start of Caddy, which creates its store (and the directories on
// the way) and answers a first write.
func TestNewStoreChild(t *testing.T) {
	path := os.Getenv("SSO_TEST_NEWSTORE")
	if path == "" {
		t.Skip("the child process of TestNewStoreNameIsDurable")
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutUser(&store.User{Email: "ada@example.com", Active: true})
	}); err != nil {
		t.Fatal(err)
	}
	_, _ = os.Stdout.WriteString("NEWSTORE-ANSWERED\n")
}

// TestNewStoreNameIsDurable: a store Open creates is fsynced by bbolt, but
// its name lives in its directory, and that directory's in the one above
// when Open created it too. All of them are fsynced before the first write
// is answered: otherwise a power cut can leave no store at the path, and
// the next start an empty one with new keys. A process kill cannot show
// this; the test reads the system calls under strace.
func TestNewStoreNameIsDurable(t *testing.T) {
	stracetest.Require(t)
	top := t.TempDir()
	path := filepath.Join(top, "data", "caddy", "sso.db")
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command("strace", "-f", "-qq", "-e", "trace=openat,fsync,fdatasync,write,close", "-e", "signal=none",
		"-s", "40", "-o", trace, os.Args[0], "-test.run=^TestNewStoreChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SSO_TEST_NEWSTORE="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("under strace: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(trace)
	must(t, err)
	opened := regexp.MustCompile(`openat\(AT_FDCWD, "([^"]*)", [^)]*\) = (\d+)`)
	synced := regexp.MustCompile(`f(?:data)?sync\((\d+)\)\s+= 0`)
	closed := regexp.MustCompile(`close\((\d+)\)`)
	fdPath := map[string]string{}
	done := false
	syncedPaths := map[string]bool{}
	for _, line := range stracetest.Lines(string(raw)) {
		if strings.Contains(line, `write(1, "NEWSTORE-ANSWERED`) {
			done = true
			break
		}
		if m := opened.FindStringSubmatch(line); m != nil {
			fdPath[m[2]] = filepath.Clean(m[1])
		}
		if m := synced.FindStringSubmatch(line); m != nil && fdPath[m[1]] != "" {
			syncedPaths[fdPath[m[1]]] = true
		}
		if m := closed.FindStringSubmatch(line); m != nil {
			delete(fdPath, m[1])
		}
	}
	if !done {
		t.Fatalf("the first write was never answered:\n%s", raw)
	}
	for _, p := range []string{path, filepath.Dir(path), filepath.Join(top, "data"), top} {
		if !syncedPaths[p] {
			t.Errorf("%s was not fsynced before the first write was answered (a power cut can lose the new store's name)", p)
		}
	}
}
