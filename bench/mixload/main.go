// Command mixload runs a Caddy process (cmd/caddy) under mixed traffic for
// a set time, samples it every -sample into a CSV, and prints a summary:
// the soak run (bench/soak.sh, fresh store, 30 minutes) and the million-
// user run (bench/million.sh, a store from bench/genstore, an hour) are
// this program with different settings.
//
// Traffic, at -rate operations per second in the proportions of -mix:
// sign-ins of new users (OIDC, every fourth over SAML) and of users the
// store already has (-users, made by bench/genstore), requests with the
// sessions those sign-ins made (served from the cache) and with sessions
// bench/genstore made (looked up in the store), SCIM `userName eq`
// lookups, SCIM writes (create, deactivate, delete), logouts, and garbage
// sent to the OIDC callback and the SAML ACS.
//
// Each sample is the process's resident memory (anonymous and file-
// backed, /proc/<pid>/smaps_rollup), goroutines (admin /debug/pprof),
// open files and the store file's size. At the end it times `caddy sso
// backup`, stops Caddy, and (with -check) times `caddy sso check --store`.
//
//	go run ./bench/mixload -duration 2m -sample 10s -csv /tmp/mix.csv
//	go run ./bench/mixload -store /data/1m.db -users 1000000 -duration 1h -csv million.csv
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sso/caddy-sso/bench/internal/fixture"
	"github.com/caddy-sso/caddy-sso/internal/caddyproc"
	"github.com/caddy-sso/caddy-sso/internal/stresstest"
)

type config struct {
	bin, store, csv   string
	users             int
	duration, sample  time.Duration
	rate              float64
	workers           int
	mix               map[string]float64
	check             bool
	liveSessionsLimit int
	// population, when set, bounds the people signing in as new users:
	// signin_new picks one of them, created by JIT on the first sign-in
	// and updated on later ones, so that the store's data stops growing
	// and what still grows is the gateway's own state (the soak).
	population int
}

// kinds of operation, in the order the summary lists them.
var kinds = []string{"signin_new", "signin_existing", "request", "request_stored", "scim_find", "scim_write", "logout", "garbage"}

const defaultMix = "signin_new=2,signin_existing=2,request=20,request_stored=4,scim_find=2,scim_write=1,logout=1,garbage=1"

func main() {
	var c config
	var mix string
	flag.StringVar(&c.bin, "caddy", "", "Caddy binary (default: build ./cmd/caddy)")
	flag.StringVar(&c.store, "store", "", "store file to run on, used in place (default: a fresh one)")
	flag.IntVar(&c.users, "users", 0, "users bench/genstore made in -store")
	flag.DurationVar(&c.duration, "duration", 2*time.Minute, "how long to run the traffic")
	flag.DurationVar(&c.sample, "sample", time.Minute, "time between samples")
	flag.StringVar(&c.csv, "csv", "mixload.csv", "CSV file the samples are written to")
	flag.Float64Var(&c.rate, "rate", 30, "operations per second")
	flag.IntVar(&c.workers, "workers", 16, "concurrent operations at most")
	flag.StringVar(&mix, "mix", defaultMix, "relative weight of each kind of operation")
	flag.BoolVar(&c.check, "check", true, "run caddy sso check --store at the end")
	flag.IntVar(&c.population, "population", 0, "people signin_new signs in, created on their first sign-in (0: a new person each time)")
	flag.Parse()
	c.liveSessionsLimit = 2000
	c.mix = map[string]float64{}
	for _, kv := range strings.Split(mix, ",") {
		k, v, _ := strings.Cut(kv, "=")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !slices.Contains(kinds, k) {
			log.Fatalf("mixload: -mix %q: want kind=weight for kinds %v", kv, kinds)
		}
		c.mix[k] = f
	}
	if c.users == 0 {
		c.mix["signin_existing"], c.mix["request_stored"] = 0, 0
	}
	if err := run(c); err != nil {
		log.Fatal("mixload: ", err)
	}
}

// stats collects latencies and failures per kind.
type stats struct {
	mu       sync.Mutex
	lat      map[string][]time.Duration
	errs     map[string]int
	firstErr map[string]string
	outcomes map[string]int // e.g. request_stored 200 vs 401
	ops      atomic.Int64
	failed   atomic.Int64
	dropped  atomic.Int64
}

func (s *stats) record(kind string, took time.Duration, err error) {
	s.ops.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat[kind] = append(s.lat[kind], took)
	if err != nil {
		s.failed.Add(1)
		s.errs[kind]++
		if s.firstErr[kind] == "" {
			s.firstErr[kind] = err.Error()
		}
	}
}

func (s *stats) outcome(name string) {
	s.mu.Lock()
	s.outcomes[name]++
	s.mu.Unlock()
}

// load is the running traffic's state.
type load struct {
	c     config
	w     *stresstest.World
	st    *stats
	tr    *http.Transport
	rng   *rand.Rand
	rngMu sync.Mutex
	seq   atomic.Int64

	mu   sync.Mutex
	live []*stresstest.Browser // browsers with a session, newest last
}

func (l *load) intn(n int) int {
	l.rngMu.Lock()
	defer l.rngMu.Unlock()
	return l.rng.IntN(n)
}

func run(c config) error {
	dir, err := os.MkdirTemp("", "sso-mixload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if c.bin == "" {
		fmt.Println("building ./cmd/caddy ...")
		if c.bin, err = caddyproc.Build(context.Background()); err != nil {
			return err
		}
	}
	w, err := stresstest.NewWorld(c.bin, dir, c.store)
	if err != nil {
		return err
	}
	defer w.Close()
	var sizeBefore int64
	if info, err := os.Stat(w.Store); err == nil {
		sizeBefore = info.Size()
	}

	// Start: until Caddy listens, and until the sso app answers.
	launched := time.Now()
	if err := w.Start(); err != nil {
		return err
	}
	listening := time.Since(launched)
	api := stresstest.NewBrowser(nil)
	for {
		p, err := api.API(context.Background(), w.Base+"/app")
		if err == nil && p.Status == http.StatusUnauthorized {
			break
		}
		if time.Since(launched) > 5*time.Minute {
			return fmt.Errorf("the sso app did not answer: %v %d", err, p.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ready := time.Since(launched)
	fmt.Printf("caddy pid %d: listening after %v, the sso app answering after %v (store %s, %.1f MiB)\n",
		w.Caddy.PID(), listening.Round(time.Millisecond), ready.Round(time.Millisecond), w.Store, mib(sizeBefore))
	if err := w.RegisterSP(); err != nil {
		return err
	}

	l := &load{c: c, w: w, tr: &http.Transport{MaxIdleConnsPerHost: 4 * c.workers, IdleConnTimeout: time.Minute},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)),
		st:  &stats{lat: map[string][]time.Duration{}, errs: map[string]int{}, firstErr: map[string]string{}, outcomes: map[string]int{}}}

	f, err := os.Create(c.csv)
	if err != nil {
		return err
	}
	defer f.Close()
	cw := csv.NewWriter(f)
	_ = cw.Write([]string{"minute", "rss_anon_mib", "rss_file_mib", "goroutines", "open_files", "store_mib", "operations", "failed"})
	start := time.Now()
	sampleNow := func() {
		s, err := stresstest.Take(w.Caddy.PID(), w.AdminPort, w.Store)
		if err != nil {
			fmt.Println("sample:", err)
			return
		}
		row := []string{fmt.Sprintf("%.2f", time.Since(start).Minutes()), fmt.Sprintf("%.1f", mib(s.RSSAnon)), fmt.Sprintf("%.1f", mib(s.RSSFile)),
			strconv.Itoa(s.Goroutines), strconv.Itoa(s.OpenFiles), fmt.Sprintf("%.2f", mib(s.StoreBytes)),
			strconv.FormatInt(l.st.ops.Load(), 10), strconv.FormatInt(l.st.failed.Load(), 10)}
		_ = cw.Write(row)
		cw.Flush()
		fmt.Printf("t=%smin anon=%sMiB file=%sMiB goroutines=%s files=%s store=%sMiB ops=%s failed=%s dropped=%d\n",
			row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], l.st.dropped.Load())
	}
	sampleNow()

	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	jobs := make(chan string, c.workers)
	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			for kind := range jobs {
				l.do(context.Background(), kind)
			}
		})
	}
	var total float64
	for _, k := range kinds {
		total += c.mix[k]
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / c.rate))
	sample := time.NewTicker(c.sample)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-sample.C:
			sampleNow()
		case <-tick.C:
			r := float64(l.intn(1_000_000)) / 1_000_000 * total
			kind := kinds[len(kinds)-1]
			for _, k := range kinds {
				if r < c.mix[k] {
					kind = k
					break
				}
				r -= c.mix[k]
			}
			select {
			case jobs <- kind:
			default:
				l.st.dropped.Add(1) // the workers are all busy: Caddy is slower than -rate
			}
		}
	}
	tick.Stop()
	sample.Stop()
	close(jobs)
	wg.Wait()
	sampleNow()
	l.summary(time.Since(start))

	// Backup, online.
	backup := filepath.Join(dir, "backup.db")
	t0 := time.Now()
	out, err := w.Caddy.Command(context.Background(), "sso", "backup", "--address", fmt.Sprintf("127.0.0.1:%d", w.AdminPort), backup)
	if err != nil {
		fmt.Printf("backup failed: %v\n%s\n", err, out)
	} else if info, err := os.Stat(backup); err == nil {
		fmt.Printf("caddy sso backup: %v, %.1f MiB\n", time.Since(t0).Round(time.Millisecond), mib(info.Size()))
	}
	// The backup reads every page of the store through Caddy's mapping.
	if anon, file, err := stresstest.Memory(w.Caddy.PID()); err == nil {
		fmt.Printf("resident memory after the backup: anonymous %.1f MiB, file-backed %.1f MiB\n", mib(anon), mib(file))
	}
	fmt.Println(longestWriteHold(w.Caddy.Output()))
	if err := w.Caddy.Stop(); err != nil {
		return err
	}
	if info, err := os.Stat(w.Store); err == nil {
		fmt.Printf("store file: %.1f MiB before, %.1f MiB after (%+.1f MiB)\n", mib(sizeBefore), mib(info.Size()), mib(info.Size()-sizeBefore))
	}
	if c.check {
		t0 := time.Now()
		out, err := w.Caddy.Command(context.Background(), "sso", "check", "--store", w.Store)
		fmt.Printf("caddy sso check --store (%v): %s", time.Since(t0).Round(time.Millisecond), out)
		if err != nil {
			return fmt.Errorf("the store is inconsistent: %v", err)
		}
	}
	if n := l.st.failed.Load(); n > 0 {
		return fmt.Errorf("%d operations failed", n)
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// do runs one operation of the kind.
func (l *load) do(ctx context.Context, kind string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	err := l.op(ctx, kind)
	l.st.record(kind, time.Since(start), err)
}

func (l *load) op(ctx context.Context, kind string) error {
	w := l.w
	switch kind {
	case "signin_new", "signin_existing":
		n := l.seq.Add(1)
		if l.c.population > 0 {
			n = int64(l.intn(l.c.population))
		}
		u := stresstest.User{Username: fmt.Sprintf("mix%d", n), Password: "pw", Subject: fmt.Sprintf("mix-sub-%d", n),
			Email: fmt.Sprintf("mix%d@example.com", n)}
		idpName := stresstest.OIDCName
		if kind == "signin_existing" {
			i := l.intn(l.c.users)
			u.Subject, u.Email = fixture.Subject(i), fixture.Email(i)
		} else if n%4 == 0 {
			idpName = stresstest.SAMLName
		}
		w.AddUser(u)
		b := stresstest.NewBrowser(l.tr)
		p, err := b.SignIn(ctx, w.Base, idpName, u.Username, u.Password, "/app")
		if err != nil {
			return err
		}
		if p.Status != http.StatusOK {
			return fmt.Errorf("%d %s", p.Status, p.Title())
		}
		l.mu.Lock()
		l.live = append(l.live, b)
		if len(l.live) > l.c.liveSessionsLimit {
			l.live = l.live[1:]
		}
		l.mu.Unlock()
		return nil
	case "request", "logout":
		l.mu.Lock()
		if len(l.live) == 0 {
			l.mu.Unlock()
			return nil
		}
		i := l.intn(len(l.live))
		b := l.live[i]
		if kind == "logout" {
			l.live = slices.Delete(l.live, i, i+1)
		}
		l.mu.Unlock()
		if kind == "logout" {
			p, err := b.Post(ctx, w.Base+"/.sso/logout", url.Values{"return_to": {"/"}})
			if err != nil {
				return err
			}
			if b.SessionCookie(w.Base) != "" || p.Status >= 400 {
				return fmt.Errorf("logout: %d %s, cookie kept", p.Status, p.Title())
			}
			return nil
		}
		_, err := stresstest.WithSession(ctx, &http.Client{Transport: l.tr}, w.Base+"/app", b.SessionCookie(w.Base))
		return err
	case "request_stored":
		// A session bench/genstore made: looked up in the store on first
		// use; those past their idle timeout are answered 401.
		i := l.intn(l.c.users)
		_, err := stresstest.WithSession(ctx, &http.Client{Transport: l.tr}, w.Base+"/app", "sso_session="+fixture.Token(i))
		if err != nil && strings.Contains(err.Error(), "401") {
			l.st.outcome("request_stored 401 (session expired)")
			return nil
		}
		if err == nil {
			l.st.outcome("request_stored 200")
		}
		return err
	case "scim_find":
		scim := w.SCIM(&http.Client{Transport: l.tr})
		name := fmt.Sprintf("nobody%d@example.com", l.intn(1_000_000))
		if l.c.users > 0 {
			name = fixture.Email(l.intn(l.c.users))
		}
		found, _, err := scim.FindByUserName(ctx, name)
		if err == nil && l.c.users > 0 && len(found) != 1 {
			return fmt.Errorf("userName eq %q found %d users", name, len(found))
		}
		return err
	case "scim_write":
		scim := w.SCIM(&http.Client{Transport: l.tr})
		n := l.seq.Add(1)
		name := fmt.Sprintf("scim%d@example.com", n)
		u, _, err := scim.CreateUser(ctx, name, fmt.Sprintf("scim-ext-%d", n), name)
		if err != nil {
			return err
		}
		if _, err := scim.SetActive(ctx, u.ID, false); err != nil {
			return err
		}
		_, err = scim.DeleteUser(ctx, u.ID)
		return err
	case "garbage":
		b := stresstest.NewBrowser(l.tr)
		p, err := b.Get(ctx, w.Base+"/.sso/oidc/"+stresstest.OIDCName+"/callback?code=garbage&state=garbage")
		if err == nil && (p.Status < 400 || p.Status >= 500) {
			err = fmt.Errorf("garbage callback: %d %s", p.Status, p.Title())
		}
		if err != nil {
			return err
		}
		p, err = b.Post(ctx, w.Base+"/.sso/saml/"+stresstest.SAMLName+"/acs", url.Values{"SAMLResponse": {"PGdhcmJhZ2U+"}, "RelayState": {"x"}})
		if err == nil && (p.Status < 400 || p.Status >= 500) {
			err = fmt.Errorf("garbage SAML response: %d %s", p.Status, p.Title())
		}
		return err
	}
	return fmt.Errorf("unknown kind %q", kind)
}

func (l *load) summary(took time.Duration) {
	s := l.st
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Printf("\n%d operations in %v (%.1f/s), %d failed, %d not sent (workers busy)\n",
		s.ops.Load(), took.Round(time.Second), float64(s.ops.Load())/took.Seconds(), s.failed.Load(), s.dropped.Load())
	fmt.Printf("%-16s %8s %8s %8s %8s %8s %6s\n", "operation", "count", "p50", "p90", "p99", "max", "failed")
	for _, k := range kinds {
		d := s.lat[k]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		q := func(p float64) string {
			return d[min(len(d)-1, int(p*float64(len(d))))].Round(100 * time.Microsecond).String()
		}
		fmt.Printf("%-16s %8d %8s %8s %8s %8s %6d\n", k, len(d), q(.5), q(.9), q(.99), d[len(d)-1].Round(100*time.Microsecond), s.errs[k])
	}
	for k, e := range s.firstErr {
		fmt.Printf("first %s failure: %.300s\n", k, e)
	}
	for k, n := range s.outcomes {
		fmt.Printf("%s: %d\n", k, n)
	}
}

// longestWriteHold reads Caddy's slow-write log lines (caddymodule logs
// each store write that held the write lock 100 ms or more, with where the
// time went) and reports the longest.
func longestWriteHold(output string) string {
	var longest slowWrite
	n := 0
	for _, line := range strings.Split(output, "\n") {
		if !strings.Contains(line, "held the write lock long") {
			continue
		}
		var w slowWrite
		if json.Unmarshal([]byte(line), &w) != nil {
			continue
		}
		n++
		if w.Held.d() > longest.Held.d() {
			longest = w
		}
	}
	if n == 0 {
		return "longest write-lock hold: every write held it less than 100 ms (no slow-write line in Caddy's log)"
	}
	kind := "foreground"
	if longest.Background {
		kind = "background"
	}
	return fmt.Sprintf("longest write-lock hold: %v (%d writes held it 100 ms or more); of it work %v, build %v, disk %v (%d pages), %d pages read from disk, %d calls, %s",
		longest.Held.d().Round(time.Millisecond), n, longest.Work.d().Round(time.Millisecond), longest.Build.d().Round(time.Millisecond),
		longest.Disk.d().Round(time.Millisecond), longest.Pages, longest.Faults, longest.Calls, kind)
}

// slowWrite is one slow-write log line (backend.SlowWrites).
type slowWrite struct {
	Held, Work, Build, Disk logDuration
	Pages, Faults           int64
	Calls                   int
	Background              bool
}

// logDuration is a duration as Caddy's log encodes it: seconds as a
// number by default, or a string with a duration_format.
type logDuration time.Duration

func (l *logDuration) UnmarshalJSON(b []byte) error {
	var secs float64
	if json.Unmarshal(b, &secs) == nil {
		*l = logDuration(secs * float64(time.Second))
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	d, err := time.ParseDuration(str)
	*l = logDuration(d)
	return err
}

func (l logDuration) d() time.Duration { return time.Duration(l) }
