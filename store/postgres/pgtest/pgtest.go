// Package pgtest gives tests and benchmarks a real PostgreSQL: a throwaway
// cluster started once per test binary (or the server SSO_TEST_DATABASE_URL
// names), and a fresh, empty database per test.
//
// A package that uses it runs its tests through Main, which stops and
// removes the cluster when they end:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.NewDatabase(t) // skips (fails under CI) without PostgreSQL
//		...
//	}
//
// The cluster is initdb'd in a temporary directory and started with pg_ctl,
// listening on 127.0.0.1 on a free port (password authentication) and on a
// unix socket in that directory (trusted; what NewDatabase's connection
// strings use). PostgreSQL refuses to run as root, so when the tests run as root
// the directory is given to the "postgres" OS user and initdb and pg_ctl run
// through runuser. Tests run with fsync off (they do not measure durability);
// benchmarks (-test.bench set) and StartCluster callers get the server's
// durable defaults, so commit costs are real.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/ci"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/jackc/pgx/v5"
)

// EnvDatabaseURL names a PostgreSQL server to use instead of a throwaway
// cluster. Its user must be allowed to create databases; every test gets a
// database of its own there, dropped when the test ends.
const EnvDatabaseURL = "SSO_TEST_DATABASE_URL"

// OSUser is the account the throwaway cluster runs as when the tests run as root.
const OSUser = "postgres"

// Cluster is a running throwaway PostgreSQL cluster.
type Cluster struct {
	Dir  string // the temporary directory: data/, the socket, server.log
	Port int
	// AdminDSN connects as the superuser to the "postgres" database, over
	// the unix socket.
	AdminDSN string

	bin    string // directory of initdb, pg_ctl, postgres
	asUser *user.User
	// serverOptions are pg_ctl's -o: the settings Resume starts with again.
	serverOptions string
}

// EnvBinaries names the directory of initdb and pg_ctl to use instead of
// looking for them.
const EnvBinaries = "SSO_TEST_PG_BIN"

// FindBinaries returns the directory holding initdb and pg_ctl: EnvBinaries
// when set, else the newest /usr/lib/postgresql/<version>/bin (Debian's
// layout), else the one on PATH.
func FindBinaries() (string, error) {
	if d := os.Getenv(EnvBinaries); d != "" {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
		return "", fmt.Errorf("%s=%s holds no initdb and pg_ctl", EnvBinaries, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found (install the postgresql package, or set " + EnvDatabaseURL + ")")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// ClusterOptions tune StartCluster.
type ClusterOptions struct {
	// NoFsync turns fsync and synchronous_commit off: faster, and fine for
	// tests that do not measure commits.
	NoFsync bool
	// Settings are extra "name=value" server settings.
	Settings []string
	// Log receives progress lines; nil: none.
	Log func(format string, args ...any)
}

// StartCluster initdb's a new cluster in a fresh temporary directory and
// starts it. Stop it with Stop, which also removes the directory.
func StartCluster(ctx context.Context, opt ClusterOptions) (*Cluster, error) {
	logf := opt.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	removeStale(bin, logf)
	dir, err := os.MkdirTemp("", "sso-pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(OSUser)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL will not: need the OS user %q: %w", OSUser, err)
		}
		c.asUser = u
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: give %s to %s: %w", dir, OSUser, err)
		}
	}
	// Written by us (root or not) so that a later run can tell whether the
	// process that made this cluster is still alive.
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	logf("pgtest: initdb %s", data)
	if out, err := c.run(ctx, "initdb", "-D", data, "-U", "postgres",
		// Over the socket anyone may connect as anyone (the socket is in
		// our private directory); over TCP passwords are checked, so
		// tests see authentication as a deployment does.
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	port, _, err := testport.Pick() // held until the process exits
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c.Port = port
	settings := []string{
		"listen_addresses=127.0.0.1",
		"port=" + strconv.Itoa(port),
		"unix_socket_directories=" + dir,
		"max_connections=300",
		"shared_buffers=128MB",
	}
	if opt.NoFsync {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	settings = append(settings, opt.Settings...)
	var o strings.Builder
	for _, s := range settings {
		fmt.Fprintf(&o, " -c %s", s)
	}
	logf("pgtest: starting PostgreSQL (%s) on 127.0.0.1:%d", filepath.Base(filepath.Dir(bin)), port)
	c.serverOptions = o.String()
	if err := c.Resume(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c.AdminDSN = (&url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Path:     "/postgres",
		RawQuery: url.Values{"host": {dir}, "port": {strconv.Itoa(port)}, "sslmode": {"disable"}}.Encode(),
	}).String()
	return c, nil
}

// run runs one of the cluster's binaries, as OSUser when we are root.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	bin := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asUser != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser.Username, "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.Dir = c.Dir
	// pg_ctl start leaves the server running with our stdout if we let
	// it; a file keeps `go test` from waiting on that pipe.
	out, err := os.CreateTemp("", "sso-pgtest-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return b, err
}

// Halt stops the server at once, as a crash or a lost database host would
// (pg_ctl stop -m immediate: connections are dropped, new ones refused),
// and keeps its data for Resume.
func (c *Cluster) Halt(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Resume starts the server (again, after Halt) on the same port and data,
// and waits until it accepts connections.
func (c *Cluster) Resume(ctx context.Context) error {
	data := filepath.Join(c.Dir, "data")
	if out, err := c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(c.Dir, "server.log"), "-w", "-t", "60", "-o", c.serverOptions, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
		return fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return nil
}

// Stop shuts the cluster down at once and removes its directory.
func (c *Cluster) Stop() error {
	_, err := c.run(context.Background(), "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop")
	if rmErr := os.RemoveAll(c.Dir); err == nil {
		err = rmErr
	}
	return err
}

// removeStale stops and removes the clusters of test processes that died
// without stopping theirs (killed by a timeout, say).
func removeStale(bin string, logf func(string, ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "sso-pgtest-*"))
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || processAlive(pid) {
			continue
		}
		logf("pgtest: removing the cluster of dead process %d in %s", pid, dir)
		c := &Cluster{Dir: dir, bin: bin}
		if os.Geteuid() == 0 {
			c.asUser, _ = user.Lookup(OSUser)
		}
		_ = c.Stop()
	}
}

// ---- per test binary ----

// server is what this test binary connects to: started on first use.
type server struct {
	once     sync.Once
	adminDSN string
	cluster  *Cluster // nil when EnvDatabaseURL is used
	err      error
}

// shared is the one server of this test binary. It is the package's only
// mutable state: a test binary has one cluster, started on first use and
// stopped by Main.
var shared server

func (s *server) start() {
	s.once.Do(func() {
		if dsn := os.Getenv(EnvDatabaseURL); dsn != "" {
			s.adminDSN = dsn
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		benchmarking := false
		if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
			benchmarking = true
		}
		c, err := StartCluster(ctx, ClusterOptions{
			NoFsync: !benchmarking,
			Log:     func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
		})
		if err != nil {
			s.err = err
			return
		}
		s.cluster = c
		s.adminDSN = c.AdminDSN
	})
}

// Main runs the tests and then stops the cluster, if one was started.
func Main(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		if err := shared.cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop cluster: %v\n", err)
		}
	}
	os.Exit(code)
}

// Unavailable skips t, with one line saying why, when there is no
// PostgreSQL to test against; under CI (internal/ci) it fails t instead,
// so that a CI run cannot pass by skipping.
func Unavailable(t testing.TB, why error) {
	t.Helper()
	if ci.Running() {
		t.Fatalf("PostgreSQL unavailable: %v (under CI the PostgreSQL tests must run, not skip)", why)
	}
	t.Skipf("PostgreSQL unavailable, skipping: %v", why)
}

// AdminDSN returns the superuser connection string of this binary's
// server, starting the cluster on first use; it skips t (fails under CI)
// when there is none.
func AdminDSN(t testing.TB) string {
	t.Helper()
	shared.start()
	if shared.err != nil {
		Unavailable(t, shared.err)
	}
	return shared.adminDSN
}

// NewDatabase creates an empty database for t and returns its connection
// string; the database is dropped when t ends (after t's other cleanups,
// which close its connections).
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminDSN(t)
	var raw [6]byte
	_, _ = rand.Read(raw[:])
	name := "sso_test_" + hex.EncodeToString(raw[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Unavailable(t, fmt.Errorf("connect to the test server: %w", err))
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return WithDatabase(admin, name)
}

// CreateDatabase creates an empty database on the cluster and returns its
// connection string.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.AdminDSN)
	if err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return WithDatabase(c.AdminDSN, name), nil
}

// WithDatabase returns dsn with its database replaced by name. dsn is a
// URL (postgres://...) or a key=value string.
func WithDatabase(dsn, name string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}

// OwnDatabase starts a cluster for t alone (fsync off), stopped when t
// ends, and returns it with the connection string of an empty database
// "sso" on it: for a test that changes server-wide settings or cuts its
// connections, which a database on the shared cluster (NewDatabase) would
// do to every other test. It skips t (fails under CI) when there is no
// PostgreSQL.
func OwnDatabase(t testing.TB) (*Cluster, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := StartCluster(ctx, ClusterOptions{NoFsync: true})
	if err != nil {
		Unavailable(t, err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	dsn, err := cluster.CreateDatabase(ctx, "sso")
	if err != nil {
		t.Fatal(err)
	}
	return cluster, dsn
}
