package cli_test

// migrate into a bbolt file takes the directory lock restore takes, and
// both name what older versions left beside the store.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopWhenWriting starts cmd, waits until the file at path is there and
// not empty (the command is writing it), and stops the process (SIGSTOP):
// it holds what it holds, the directory lock, until resume. resume lets it
// go on and returns its output and error once it ends.
func stopWhenWriting(t *testing.T, cmd *exec.Cmd, path string) (resume func() (string, error)) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.After(60 * time.Second)
	for {
		if info, err := os.Stat(path); err == nil && info.Size() > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the command ended before it wrote %s: %v\n%s", path, err, out.String())
		case <-deadline:
			t.Fatalf("no %s after a minute:\n%s", path, out.String())
		case <-time.After(2 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Stopped, not already finished: its state in /proc is T, not Z.
	for range 500 {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 {
			switch stat[i+2] {
			case 'T', 't':
				return func() (string, error) {
					if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
						t.Fatal(err)
					}
					select {
					case err := <-done:
						return out.String(), err
					case <-time.After(120 * time.Second):
						t.Fatalf("the command did not end within two minutes of SIGCONT:\n%s", out.String())
						return "", nil
					}
				}
			case 'Z':
				t.Fatalf("the command had finished before it could be stopped:\n%s", out.String())
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("the command did not stop after SIGSTOP")
	return nil
}

// TestMigrateRefusedWhileAnotherWrites: `caddy sso migrate --to bolt:NEW`
// (no --force) wrote its new file in place without the directory lock
// that restore and migrate --force take. A second migrate into the
// directory, or a restore, went ahead beside it. Now, while a first
// migrate (another process, stopped while it writes) holds the directory,
// a second migrate and a restore are refused with restore's message and
// write nothing; the first then finishes, and a migrate after it works.
func TestMigrateRefusedWhileAnotherWrites(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	storeWithSecret(t, src, 2000) // a migrate that takes a while
	backup := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", "--store", src, backup)
	dir := filepath.Join(t.TempDir(), "stores")
	first, second := filepath.Join(dir, "first.db"), filepath.Join(dir, "second.db")

	resume := stopWhenWriting(t, childCommand(os.Args[0], nil, "migrate", "--from", "bolt:"+src, "--to", "bolt:"+first), first)
	const held = "another restore or migrate into a store in its directory is running (it holds the lock on "
	for _, args := range [][]string{
		{"migrate", "--from", "bolt:" + src, "--to", "bolt:" + second},
		{"restore", "--store", second, backup},
		{"migrate", "--force", "--from", "bolt:" + src, "--to", "bolt:" + second},
	} {
		out, errOut, err := run(args...)
		if err == nil || !strings.Contains(err.Error(), held+dir+")") {
			t.Errorf("%s while a migrate into %s runs: %v\n%s%s", strings.Join(args, " "), dir, err, out, errOut)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "first.db" {
			t.Errorf("the refused %s wrote in %s: %v", args[0], dir, entries)
		}
	}
	if out, err := resume(); err != nil || !strings.Contains(out, "copied 2000 users") {
		t.Fatalf("the first migrate, let go on: %v\n%s", err, out)
	}
	if out, errOut, err := run("migrate", "--from", "bolt:"+src, "--to", "bolt:"+second); err != nil {
		t.Errorf("a migrate after the first finished: %v\n%s%s", err, out, errOut)
	}
}

// TestOlderLeftoversNamed: versions before the private build directory
// built a new store at .<name>.restore<digits> (os.CreateTemp), then at
// .<name>.restore and .<name>.migrate; a run of theirs stopped part-way
// left that file, with every key of the store, and nothing since said so.
// Nothing in the file tells it from one an operator keeps at that name,
// so restore and migrate leave it and name it, once, on stderr, both at
// the store path given and where its symbolic link leads; files at other
// names are neither named nor touched.
func TestOlderLeftoversNamed(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	storeWithSecret(t, src, 1)
	backup := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", "--store", src, backup)
	dir, linkDir := t.TempDir(), t.TempDir()
	path, link := filepath.Join(dir, "sso.db"), filepath.Join(linkDir, "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	older := []string{".sso.db.migrate", ".sso.db.restore", ".sso.db.restore3141592653"}
	storeWithSecret(t, filepath.Join(dir, older[0]), 1)
	storeWithSecret(t, filepath.Join(dir, older[1]), 1)
	others := []string{".sso.db.restore.bak", ".sso.db.restore12345678901", ".sso.db.migrate1", "sso.db.restore", ".other.db.restore", "notes.txt"}
	files := map[string][]byte{}
	for _, name := range append(older[2:], others...) {
		files[name] = []byte("kept: " + name)
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range older[:2] {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = data
	}
	linkOlder := filepath.Join(linkDir, ".link.db.restore")
	if err := os.WriteFile(linkOlder, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	want := "warning: " + dir + " holds " + strings.Join(older, ", ") + ": older versions built a new store under such a name"
	wantLink := "warning: " + linkDir + " holds .link.db.restore: "
	for _, args := range [][]string{
		{"migrate", "--from", "bolt:" + src, "--to", "bolt:" + path},
		{"restore", "--store", path, backup},
		{"migrate", "--force", "--from", "bolt:" + src, "--to", "bolt:" + link},
	} {
		out, errOut, err := run(args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		linked := args[len(args)-1] == "bolt:"+link
		lines := 1
		if linked {
			lines = 2
		}
		if strings.Count(errOut, want) != 1 || strings.Count(errOut, "older versions built") != lines {
			t.Errorf("%s does not name exactly %v, once, in %s:\n%s", strings.Join(args, " "), older, dir, errOut)
		}
		if named := strings.Contains(errOut, wantLink); named != linked {
			t.Errorf("%s into %s: named %s: %v, want %v:\n%s", args[0], args[len(args)-1], linkOlder, named, linked, errOut)
		}
		for name, data := range files {
			if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s changed or removed %s (%v)", args[0], name, err)
			}
		}
	}
	if _, err := os.Stat(linkOlder); err != nil {
		t.Errorf("migrate through the link removed %s: %v", linkOlder, err)
	}
}
