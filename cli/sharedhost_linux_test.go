package cli_test

// The backup, restore and migrate commands on a host shared with other
// local users, run by root for the Caddy user, and stopped by a signal.
// The tests that switch users need root; they run the command in a child
// process (TestSharedHostCommandProcess) with another user's credentials.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/adminapi"
	ssocli "github.com/caddy-sso/caddy-sso/cli"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// hostSecret is the flow-cookie key of the stores these tests back up:
// found in a file, it is the store's keys there.
var hostSecret = []byte("shared-host-test-secret-01234567")

// storeWithSecret writes a stopped instance's bbolt store at path holding
// hostSecret and n users.
func storeWithSecret(t *testing.T, path string, n int) {
	t.Helper()
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.LoadOrStoreSecret("flow-cookie-key", hostSecret)
		return err
	})
	// In batches: one transaction of many users is slow to write.
	for first := 0; err == nil && first < n; first += 1000 {
		err = db.Update(context.Background(), func(tx store.Tx) error {
			for i := first; i < min(first+1000, n); i++ {
				u := &store.User{Email: fmt.Sprintf("user%d@host.example", i), Active: true, Source: store.SourceJIT, IdP: "test", ExternalID: fmt.Sprintf("sub-%d", i)}
				if err := tx.PutUser(u); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// localUser is a local account the tests run commands as.
type localUser struct {
	name     string
	uid, gid int
}

// asRoot skips t unless it runs as root, and returns the local users it
// names.
func asRoot(t *testing.T, names ...string) []localUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("switching to other local users needs root")
	}
	var users []localUser
	for _, name := range names {
		u, err := user.Lookup(name)
		if err != nil {
			t.Skipf("no local user %s: %v", name, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		users = append(users, localUser{name: name, uid: uid, gid: gid})
	}
	return users
}

// openTempDir is a fresh directory that every user can reach, with mode.
func openTempDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// childBinary is this test binary where other users can run it: the go
// tool's build directory is root's alone.
func childBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(openTempDir(t, 0o755), "cli.test")
	if err := os.Link(os.Args[0], bin); err == nil {
		return bin
	}
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestSharedHostCommandProcess runs the command in SSO_TEST_SHAREDHOST_ARGS
// (its arguments split on \x1f) for the tests here, and prints what it
// wrote, stdout then stderr, and its error.
func TestSharedHostCommandProcess(t *testing.T) {
	raw := os.Getenv("SSO_TEST_SHAREDHOST_ARGS")
	if raw == "" {
		t.Skip("the child process of the shared-host tests (TestRestoreInSharedDirectory …)")
	}
	out, errOut, err := run(strings.Split(raw, "\x1f")...)
	_, _ = os.Stdout.WriteString(out + errOut)
	if err != nil {
		t.Fatal(err)
	}
}

// childCommand is `caddy sso args` in a child process of bin (see
// TestSharedHostCommandProcess), as u when u is not nil.
func childCommand(bin string, u *localUser, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, "-test.run=^TestSharedHostCommandProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SSO_TEST_SHAREDHOST_ARGS="+strings.Join(args, "\x1f"))
	if u != nil {
		cmd.Dir = filepath.Dir(bin)
		cmd.Env = append(cmd.Env, "HOME="+cmd.Dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}}
	}
	return cmd
}

// runAs runs `caddy sso args` as u and returns its output.
func runAs(t *testing.T, bin string, u localUser, args ...string) (string, error) {
	t.Helper()
	out, err := childCommand(bin, &u, args...).CombinedOutput()
	return string(out), err
}

func chown(t *testing.T, u localUser, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chown(p, u.uid, u.gid); err != nil {
			t.Fatal(err)
		}
	}
}

func ownedBy(t *testing.T, path string) (uid, gid int) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid), int(st.Gid)
}

// readableBackup is a backup of a store holding hostSecret, which every
// user may read (for the test; a real one is private).
func readableBackup(t *testing.T, users int) string {
	t.Helper()
	dir := openTempDir(t, 0o755)
	src := filepath.Join(dir, "src.db")
	storeWithSecret(t, src, users)
	file := filepath.Join(dir, "sso.jsonl.gz")
	mustCLI(t, "backup", file, "--store", src)
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestRestoreInSharedDirectory: the store in a directory every user may
// write to, sticky (as /tmp). Another local user laid out a bbolt file of
// theirs, writable by all, at the name restore built its new store under
// (.sso.db.restore). The Caddy user's restore could not remove it (the
// sticky bit), opened it and wrote every key of the store into it; only
// the final rename failed. Now it builds in a directory it creates, and
// the planted file holds none of the store.
func TestRestoreInSharedDirectory(t *testing.T) {
	users := asRoot(t, "daemon", "nobody")
	caddyUser, other := users[0], users[1]
	bin := childBinary(t)
	backup := readableBackup(t, 2)
	shared := openTempDir(t, os.ModeSticky|0o777)
	dst := filepath.Join(shared, "sso.db")
	storeWithSecret(t, dst, 1)
	chown(t, caddyUser, dst)
	planted := filepath.Join(shared, ".sso.db.restore")
	db, err := bolt.Open(planted, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	chown(t, other, planted)
	if err := os.Chmod(planted, 0o666); err != nil {
		t.Fatal(err)
	}

	out, restoreErr := runAs(t, bin, caddyUser, "restore", "--store", dst, backup)
	if data, err := os.ReadFile(planted); err != nil || bytes.Contains(data, hostSecret) {
		t.Errorf("another user's file %s received the store's keys (or is gone: %v)", planted, err)
	}
	if restoreErr != nil {
		t.Fatalf("restore as %s: %v\n%s", caddyUser.name, restoreErr, out)
	}
	if uid, _ := ownedBy(t, dst); uid != caddyUser.uid {
		t.Errorf("the restored store is uid %d's, want %s's", uid, caddyUser.name)
	}
	entries, _ := os.ReadDir(shared)
	for _, e := range entries {
		if e.Name() != "sso.db" && e.Name() != ".sso.db.restore" {
			t.Errorf("restore left %s in the shared directory", e.Name())
		}
	}
}

// TestRestoreAsRootKeepsOwner: the store and its directory are the Caddy
// user's; root restores into it (sudo), and migrates into it with
// --force. The new file was root's, mode 0600, and Caddy could no longer
// open it, while the command said "start Caddy to use it". Now it gets the
// old file's owner and group, and the Caddy user opens it.
func TestRestoreAsRootKeepsOwner(t *testing.T) {
	caddyUser := asRoot(t, "daemon")[0]
	bin := childBinary(t)
	backup := readableBackup(t, 2)
	dir := filepath.Join(openTempDir(t, 0o755), "caddy")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "sso.db")
	storeWithSecret(t, dst, 1)
	chown(t, caddyUser, dir, dst)
	src := filepath.Join(t.TempDir(), "src.db")
	storeWithSecret(t, src, 3)

	for _, args := range [][]string{
		{"restore", "--store", dst, backup},
		{"migrate", "--force", "--from", "bolt:" + src, "--to", "bolt:" + dst},
	} {
		mustCLI(t, args...)
		if uid, gid := ownedBy(t, dst); uid != caddyUser.uid || gid != caddyUser.gid {
			t.Errorf("after %s as root the store is %d:%d, want the Caddy user's %d:%d", args[0], uid, gid, caddyUser.uid, caddyUser.gid)
		}
		if out, err := runAs(t, bin, caddyUser, "users", "list", "--store", dst); err != nil {
			t.Errorf("after %s as root, the Caddy user cannot open the store: %v\n%s", args[0], err, out)
		}
	}
}

// TestRestoreAsRootWhereNoStoreIs: a restore as root where the Caddy
// user's store does not exist yet (a fresh host), its directories not
// either: they and the store get the owner of the directory above them,
// which the Caddy user then opens; a store path that is a symbolic link
// (the store on a volume) is restored into the file it names, the link
// kept; a store its group may open (0660) stays so.
func TestRestoreAsRootWhereNoStoreIs(t *testing.T) {
	caddyUser := asRoot(t, "daemon")[0]
	bin := childBinary(t)
	backup := readableBackup(t, 2)
	home := filepath.Join(openTempDir(t, 0o755), "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	chown(t, caddyUser, home)

	dst := filepath.Join(home, "share", "caddy", "sso.db")
	mustCLI(t, "restore", "--store", dst, backup)
	for _, p := range []string{filepath.Join(home, "share"), filepath.Dir(dst), dst} {
		if uid, gid := ownedBy(t, p); uid != caddyUser.uid || gid != caddyUser.gid {
			t.Errorf("%s is %d:%d after a restore as root, want the Caddy user's %d:%d (its home's)", p, uid, gid, caddyUser.uid, caddyUser.gid)
		}
	}
	if out, err := runAs(t, bin, caddyUser, "users", "list", "--store", dst); err != nil {
		t.Errorf("the Caddy user cannot open the store restored as root: %v\n%s", err, out)
	}

	volume := filepath.Join(openTempDir(t, 0o755), "sso.db")
	storeWithSecret(t, volume, 1)
	link := filepath.Join(home, "linked.db")
	if err := os.Symlink(volume, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(volume, 0o660); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "restore", "--store", link, backup)
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the store's link was replaced: %v %v", info, err)
	}
	if out := mustCLI(t, "users", "list", "--store", volume); !strings.Contains(out, "user1@host.example") {
		t.Errorf("the file the link names does not hold the backup:\n%s", out)
	}
	if info, err := os.Stat(volume); err != nil || info.Mode().Perm() != 0o660 {
		t.Errorf("the store its group could open is %v after the restore, want -rw-rw---- (%v)", info.Mode(), err)
	}
}

// TestRestoreSaysWhomToChown: a user other than root cannot give the new
// store away: the restore says whom to chown it to, as it leaves a store
// the old owner cannot open.
func TestRestoreSaysWhomToChown(t *testing.T) {
	users := asRoot(t, "daemon", "nobody")
	caddyUser, operator := users[0], users[1]
	bin := childBinary(t)
	backup := readableBackup(t, 1)
	dir := openTempDir(t, 0o777) // not sticky: the operator may replace the file
	dst := filepath.Join(dir, "sso.db")
	storeWithSecret(t, dst, 1)
	chown(t, caddyUser, dst)

	out, err := runAs(t, bin, operator, "restore", "--store", dst, backup)
	if err != nil {
		t.Fatalf("restore as %s: %v\n%s", operator.name, err, out)
	}
	want := fmt.Sprintf("run chown %d:%d %s", caddyUser.uid, caddyUser.gid, dst)
	if !strings.Contains(out, want) || !strings.Contains(out, "("+caddyUser.name+")") {
		t.Errorf("restore by %s of %s's store does not say %q:\n%s", operator.name, caddyUser.name, want, out)
	}
}

// TestBackupRefusesTargetsNotFiles: `backup -` wrote a file named "-"
// (where "-" usually means stdout); a target that exists and is not a
// regular file was replaced by the backup's file (a named pipe, a link to
// one; as root, /dev/stdout's link). They are refused, saying why, and
// left as they were; a regular file is still replaced.
func TestBackupRefusesTargetsNotFiles(t *testing.T) {
	src, _, _ := stoppedStore(t)
	dir := t.TempDir()
	t.Chdir(dir)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	subdir := filepath.Join(dir, "subdir")
	if err := os.Mkdir(subdir, 0o700); err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]string{
		"-":    "never to standard output",
		fifo:   "it is a named pipe",
		link:   "it is a symbolic link to " + fifo,
		subdir: "it is a directory",
	} {
		before, _ := os.Lstat(target)
		out, err := cli(context.Background(), "backup", "--store", src, target)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("backup to %s: %v, want it refused saying %q\n%s", target, err, want, out)
		}
		if after, err := os.Lstat(target); before != nil && (err != nil || after.Mode() != before.Mode()) {
			t.Errorf("backup to %s replaced it", target)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("the refused backups left files: %v", entries)
	}
	file := filepath.Join(dir, "sso.jsonl.gz")
	if err := os.WriteFile(file, []byte("an older backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "backup", "--store", src, file)
	mustCLI(t, "restore", "--store", filepath.Join(dir, "restored.db"), file)
}

// interrupt starts cmd, waits until a file matching pattern is there and
// not empty (a command under way), sends sig, and returns the command's
// output and error once it ends.
func interrupt(t *testing.T, cmd *exec.Cmd, pattern string, sig os.Signal) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		found, _ := filepath.Glob(pattern)
		if len(found) > 0 {
			if info, err := os.Stat(found[0]); err == nil && info.Size() > 0 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the command ended before it was interrupted: %v\n%s", err, out.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("no %s after a minute:\n%s", pattern, out.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the command did not end within a minute of %v:\n%s", sig, out.String())
		return "", nil
	}
}

// TestBackupInterruptedLeavesNoFile: Ctrl-C during `caddy sso backup
// <file>` left the partial backup (it holds keys) beside the target,
// .<file>.tmpNNN, for good. Now the command stops, says so and removes it.
func TestBackupInterruptedLeavesNoFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(adminapi.MarkHeader, "1")
		w.Header().Set("Content-Type", "application/gzip")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "\x1f\x8b\x08\x00\x00\x00\x00\x00partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a backup of a large store, under way
	}))
	defer srv.Close()
	dir := t.TempDir()
	target := filepath.Join(dir, "b.jsonl.gz")
	cmd := childCommand(os.Args[0], nil, "backup", "--address", srv.Listener.Addr().String(), target)
	out, err := interrupt(t, cmd, filepath.Join(dir, ".b.jsonl.gz.tmp*"), os.Interrupt)
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("after Ctrl-C the backup left %v (%v)\n%s", left, err, out)
	}
	if err == nil || !strings.Contains(out, "interrupt signal received") {
		t.Errorf("an interrupted backup ended with %v, saying:\n%s", err, out)
	}
}

// TestRestoreTerminatedLeavesNoFile: SIGTERM (systemd stopping a unit, a
// timeout) during a restore left the half-built store, every key in it,
// beside the target. Now the restore stops, removes it, leaves the old
// store as it was and says so (TestStoppedReplaceSaysStoreUnchanged stops
// one at a known point, after its first batches).
func TestRestoreTerminatedLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "src.db")
	storeWithSecret(t, src, 5000) // a restore that takes a while
	backup := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", "--store", src, backup)
	dst := filepath.Join(dir, "sso.db")
	storeWithSecret(t, dst, 1)
	before, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	cmd := childCommand(os.Args[0], nil, "restore", "--store", dst, backup)
	out, err := interrupt(t, cmd, filepath.Join(dir, ".sso.db.restore-*", "sso.db"), syscall.SIGTERM)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("after SIGTERM the restore left %v (%v)\n%s", entries, err, out)
	}
	if err == nil || !strings.Contains(out, "terminated signal received") || !strings.Contains(out, dst+" is as it was") ||
		strings.Contains(out, "incomplete, and marked") {
		t.Errorf("a terminated restore ended with %v, saying:\n%s", err, out)
	}
	if after, err := os.ReadFile(dst); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the stopped restore changed the store (%v)", err)
	}
}

// stopAfter is a command's output that cancels its context once the
// output holds line: Ctrl-C at a known point of its work.
type stopAfter struct {
	caddytest.Output
	line string
	stop context.CancelFunc
}

func (s *stopAfter) Write(p []byte) (int, error) {
	n, err := s.Output.Write(p)
	if strings.Contains(s.String(), s.line) {
		s.stop()
	}
	return n, err
}

// TestStoppedReplaceSaysStoreUnchanged: a restore, or migrate --force,
// into bbolt stopped (Ctrl-C, SIGTERM) once it had written batches into
// its new file removes that file and leaves the old store as it was
// (TestRestoreTerminatedLeavesNoFile), but said that the target was
// incomplete and marked, refused until it was run again with --force: the
// new file's ErrPartial. Now it says the store is as it was. The stop is
// the context's cancellation, as interruptible's signal handling does,
// once "users: …" is said (past 10,000 users), after the first batches.
func TestStoppedReplaceSaysStoreUnchanged(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	storeWithSecret(t, src, 12000)
	backup := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", "--store", src, backup)
	for _, tc := range []struct {
		name string
		args func(dst string) []string
	}{
		{"restore", func(dst string) []string { return []string{"restore", "--store", dst, backup} }},
		{"migrate --force", func(dst string) []string {
			return []string{"migrate", "--force", "--from=bolt:" + src, "--to=bolt:" + dst}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "sso.db")
			storeWithSecret(t, dst, 1)
			before, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &stopAfter{line: "  users: ", stop: cancel} // said past 10,000
			cmd := ssocli.NewCommand()
			cmd.SetOut(out)
			cmd.SetErr(out)
			cmd.SetArgs(tc.args(dst))
			err = cmd.ExecuteContext(ctx)
			if err == nil || ctx.Err() == nil {
				t.Fatalf("%s was not stopped after its first batches (%v):\n%s", tc.name, err, out.String())
			}
			if after, rerr := os.ReadFile(dst); rerr != nil || !bytes.Equal(after, before) {
				t.Fatalf("the stopped %s changed the store (%v)", tc.name, rerr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("the stopped %s left %v", tc.name, entries)
			}
			if !strings.Contains(err.Error(), dst+" is as it was") || strings.Contains(err.Error(), "incomplete, and marked") ||
				strings.Contains(err.Error(), "holds part of the source") {
				t.Errorf("a stopped %s that left the old store as it was says:\n%v", tc.name, err)
			}
		})
	}
}

// TestRestoreIntoNewDirectoryIsDurable: a restore into directories that
// do not exist yet creates them; each name it creates is fsynced before it
// says restored, as when bolt.Open created them (the store is built in a
// directory of its own now, so bolt.Open does not see them).
func TestRestoreIntoNewDirectoryIsDurable(t *testing.T) {
	file := readableBackup(t, 1)
	top := t.TempDir()
	dstDir := filepath.Join(top, "new")
	tr := traceCommand(t, "restore", "--store", filepath.Join(dstDir, "sso.db"), file)
	for _, dir := range []string{dstDir, top} {
		if !tr.syncedBeforeDone(t, dir) {
			t.Errorf("restore created a name in %s and said restored without fsyncing it", dir)
		}
	}
}

// TestReplacedStoreKeepsGroupAccessOnly: the store restore and migrate
// --force build in place of the old one keeps the read and write access
// the old file gave its group, never what it gave other users: those
// would read every key of the store in it. A store restored where no
// directory was yet is in directories only its owner may enter (0700, as
// Caddy makes its own). The backup says how many records it holds, as it
// read them back.
func TestReplacedStoreKeepsGroupAccessOnly(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	storeWithSecret(t, src, 3)
	backup := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	out := mustCLI(t, "backup", backup, "--store", src, "--json")
	var written struct {
		Counts struct {
			Users   int `json:"users"`
			Secrets int `json:"secrets"`
		} `json:"counts"`
	}
	if err := json.Unmarshal([]byte(out), &written); err != nil || written.Counts.Users != 3 || written.Counts.Secrets != 1 {
		t.Errorf("backup --json says %+v (%v), want the 3 users and 1 key it holds:\n%s", written.Counts, err, out)
	}

	for _, tc := range []struct{ old, want os.FileMode }{
		{0o600, 0o600},
		{0o640, 0o640},
		{0o660, 0o660},
		{0o644, 0o640},
		{0o666, 0o660},
		{0o604, 0o600},
	} {
		for _, args := range [][]string{
			{"restore", "--store", "DST", backup},
			{"migrate", "--force", "--from", "bolt:" + src, "--to", "bolt:DST"},
		} {
			dst := filepath.Join(t.TempDir(), "sso.db")
			storeWithSecret(t, dst, 1)
			if err := os.Chmod(dst, tc.old); err != nil {
				t.Fatal(err)
			}
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "DST", dst)
			}
			mustCLI(t, args...)
			if info, err := os.Stat(dst); err != nil || info.Mode().Perm() != tc.want {
				t.Errorf("%s over a store of mode %v left one of mode %v (%v), want %v", args[0], tc.old, info.Mode().Perm(), err, tc.want)
			}
		}
	}

	dst := filepath.Join(t.TempDir(), "new", "caddy", "sso.db")
	mustCLI(t, "restore", "--store", dst, backup)
	for _, d := range []string{filepath.Dir(filepath.Dir(dst)), filepath.Dir(dst)} {
		if info, err := os.Stat(d); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("restore made %s with mode %v (%v), want 0700", d, info.Mode().Perm(), err)
		}
	}
}
