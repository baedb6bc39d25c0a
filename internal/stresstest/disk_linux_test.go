package stresstest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/ci"
	"github.com/caddy-sso/caddy-sso/internal/stresstest"
)

// mountTmpfs mounts a tmpfs of the given size (e.g. "4m") for the test and
// returns its directory. Where mounting is impossible (not root, no mount
// namespace) the test is skipped, except in CI, which runs as root and
// must run it.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		ci.Skipf(t, "cannot mount a %s tmpfs for the store (%v: %s); this test needs root", size, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file on dir's file system until it is full and returns it.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 16<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

// TestFullDisk puts the store on a small file system and fills it while
// Caddy runs: sign-ins fail with a page saying so and a logged error that
// names the store file and the cause, sessions that exist keep working,
// SCIM writes are refused, and once space returns everything works again
// and the store is consistent.
func TestFullDisk(t *testing.T) {
	t.Parallel()
	disk := mountTmpfs(t, "4m")
	w := newWorld(t, nil)
	w.Store = filepath.Join(disk, "sso.db")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	type session struct{ email, cookie string }
	var existing []session
	for i := range 5 {
		name := fmt.Sprintf("before%d", i)
		b, p, err := signInAs(ctx, w, name)
		if err != nil || p.Status != http.StatusOK {
			t.Fatalf("sign-in before the disk fills: %v %d %s", err, p.Status, p.Title())
		}
		existing = append(existing, session{name + "@example.com", b.SessionCookie(w.Base)})
	}
	filler := fill(t, disk)

	// Sign-ins until the store runs out of free pages inside its file.
	failures := 0
	for i := 0; i < 60 && failures < 3; i++ {
		b, p, err := signInAs(ctx, w, fmt.Sprintf("full%d", i))
		if err != nil {
			t.Fatalf("sign-in on a full disk: %v", err)
		}
		if p.Status == http.StatusOK {
			continue
		}
		failures++
		if p.Status != http.StatusServiceUnavailable || p.Title() != "Sign-in is unavailable" || !strings.Contains(p.Body, "Reference:") {
			t.Errorf("sign-in on a full disk: %d %q, want 503 with the page saying sign-in is unavailable:\n%.600s", p.Status, p.Title(), p.Body)
		}
		if c := b.SessionCookie(w.Base); c != "" {
			t.Errorf("a failed sign-in set a session cookie")
		}
	}
	if failures == 0 {
		t.Fatal("60 sign-ins on a full disk all succeeded: the disk did not fill")
	}
	var logged string
	for _, line := range strings.Split(w.Caddy.Output(), "\n") {
		if strings.Contains(line, "sign-in could not be saved") {
			logged = line
			break
		}
	}
	if !strings.Contains(logged, w.Store) || !strings.Contains(logged, "the disk is full") {
		t.Errorf("no logged error naming the store %s and the full disk:\n%s", w.Store, tail(w.Caddy.Output(), 3000))
	}
	t.Logf("logged: %s", logged)
	// SCIM creates until one needs more room than the free pages left.
	scim := w.SCIM(http.DefaultClient)
	refused := false
	for i := 0; i < 30 && !refused; i++ {
		name := fmt.Sprintf("full%d-scim@example.com", i)
		_, status, err := scim.CreateUser(ctx, name, "ext-"+name, name)
		switch {
		case err == nil:
		case status >= 500:
			refused = true
		default:
			t.Errorf("SCIM create on a full disk: %d %v, want 201 or a 5xx refusal", status, err)
		}
	}
	if !refused {
		t.Error("30 SCIM creates on a full disk all succeeded")
	}
	for _, s := range existing {
		if e, err := stresstest.WithSession(ctx, http.DefaultClient, w.Base+"/during", s.cookie); err != nil || e.Header("X-Forwarded-Email") != s.email {
			t.Errorf("existing session of %s on a full disk: %v", s.email, err)
		}
	}
	// The failed sign-ins are counted, so that an alert on them fires.
	if got := metric(t, w, `result="not_saved"`); got != fmt.Sprint(failures) {
		t.Errorf("caddy_sso_logins_total{result=\"not_saved\"} = %q, want %d", got, failures)
	}
	// A sign-out the store cannot record: the page says so, and the
	// session is refused here at once all the same; a copy of the cookie
	// must not go on working while the disk is full.
	signedOut := existing[0]
	existing = existing[1:]
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.Base+"/.sso/logout", nil)
	req.Header.Set("Cookie", signedOut.cookie)
	req.Header.Set("Origin", w.Base)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("sign-out on a full disk: %s, want 503 (it could not be recorded)", resp.Status)
	}
	if _, err := stresstest.WithSession(ctx, http.DefaultClient, w.Base+"/signed-out", signedOut.cookie); err == nil {
		t.Errorf("the session of %s, signed out on a full disk, still works", signedOut.email)
	}

	// Space returns.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	b, p, err := signInAs(ctx, w, "after")
	if err != nil || p.Status != http.StatusOK {
		t.Fatalf("sign-in once space returned: %v %d %s\n%.600s", err, p.Status, p.Title(), p.Body)
	}
	existing = append(existing, session{"after@example.com", b.SessionCookie(w.Base)})
	if _, _, err := scim.CreateUser(ctx, "after-scim@example.com", "ext-after", "after-scim@example.com"); err != nil {
		t.Errorf("SCIM create once space returned: %v", err)
	}
	if err := w.Caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	checkStore(t, w)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	for _, s := range existing {
		if _, err := stresstest.WithSession(ctx, http.DefaultClient, w.Base+"/restarted", s.cookie); err != nil {
			t.Errorf("session of %s after a restart: %v", s.email, err)
		}
	}
	// The sign-out was recorded once space returned (at the latest by
	// the final flush at the stop), so the restart did not bring it back.
	if _, err := stresstest.WithSession(ctx, http.DefaultClient, w.Base+"/restarted", signedOut.cookie); err == nil {
		t.Errorf("the session of %s, signed out on a full disk, works again after a restart", signedOut.email)
	}
}

// metric returns the value of the caddy_sso_logins_total series whose
// labels hold match, from the admin endpoint's /metrics ("" if none).
func metric(t *testing.T, w *stresstest.World, match string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", w.AdminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "caddy_sso_logins_total{") && strings.Contains(line, match) {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return ""
}

// TestReadOnlyStore: a store on a read-only file system stops Caddy at
// start with an error naming the file and the cause, and the file is left
// as it was.
func TestReadOnlyStore(t *testing.T) {
	t.Parallel()
	disk := mountTmpfs(t, "4m")
	w := newWorld(t, nil)
	w.Store = filepath.Join(disk, "sso.db")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if err := w.Caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(w.Store)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "remount,ro", disk).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("mount", "-o", "remount,rw", disk).Run() })

	out := refusedStart(t, w)
	for _, want := range []string{w.Store, "read-only file system"} {
		if !strings.Contains(out, want) {
			t.Errorf("Caddy's refusal lacks %q:\n%s", want, out)
		}
	}
	if after, _ := os.ReadFile(w.Store); string(after) != string(before) {
		t.Error("the store changed")
	}
}

// TestReadOnlyStoreFile: a store file the user Caddy runs as may read but
// not write stops Caddy at start with an error naming the file and the
// cause. It runs Caddy as nobody, which needs root.
func TestReadOnlyStoreFile(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		ci.Skipf(t, "running Caddy as another user needs root")
	}
	w := newWorld(t, nil)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if err := w.Caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	// Caddy's directory becomes nobody's; the store stays root's, readable.
	const nobody = 65534
	for _, dir := range []string{filepath.Dir(w.Caddy.Dir), w.Caddy.Dir, filepath.Dir(w.Caddy.Bin)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(w.Caddy.Dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil || path == w.Store {
			return err
		}
		return os.Lchown(path, nobody, nobody)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(w.Store, 0o444); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(w.Store)
	if err != nil {
		t.Fatal(err)
	}
	w.Caddy.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}

	out := refusedStart(t, w)
	for _, want := range []string{w.Store, "permission denied", "read and write access"} {
		if !strings.Contains(out, want) {
			t.Errorf("Caddy's refusal lacks %q:\n%s", want, tail(out, 3000))
		}
	}
	if after, _ := os.ReadFile(w.Store); string(after) != string(before) {
		t.Error("the store changed")
	}
}
