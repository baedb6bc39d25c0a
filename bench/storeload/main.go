//go:build linux

// Command storeload measures a big store (made by bench/genstore) under
// what production does to it, and prints figures for docs/operations.md:
//
//   - open time, cold (the file evicted from the page cache) and warm;
//   - 100,000 cold lookups (login by IdP link, SCIM userName eq): p50/p99,
//     and the process's memory after them, anonymous and file-backed;
//   - sign-ins (the JIT rules, a single-use ID, a session with its sealed
//     tokens, all in one Update, as the sign-in handler does), for
//     existing and for new users, paced at -rate, first on a quiet store;
//   - the same sign-ins while the session sweep removes the sessions due
//     and the last-seen flush writes -touch sessions, concurrently: how
//     long each write transaction held the lock (max, p99) and the
//     sign-in latencies;
//   - commit latency and open time with bbolt's free-page list written at
//     every commit against rebuilt at open, on the file the sweep and the
//     flush have just fragmented, in alternating rounds;
//   - the compact backup's time and size against the file's.
//
// It changes the store (sign-ins, sweep, flush): run it on a copy.
//
//	go run ./bench/genstore -store /work/tmp-store/1m.db -n 1000000
//	go run ./bench/storeload -store /work/tmp-store/1m.db
//	go run ./bench/storeload -store /tmp/s.db -short   # a quick run of every phase
//
// Each latency is of one operation from call to return; the fsync line at
// the top is the device's own floor, measured in the same run.
//
// Linux only: it evicts the page cache with fadvise and times fdatasync,
// and its figures are for the Linux servers docs/operations.md describes.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/bench/internal/fixture"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

var (
	path     = flag.String("store", "", "store made by bench/genstore (changed by the run: use a copy)")
	short    = flag.Bool("short", false, "a quick run of every phase, with small counts and 50 sign-ins per second")
	lookups  = flag.Int("lookups", 100_000, "cold lookups")
	touch    = flag.Int("touch", 100_000, "sessions the last-seen flush writes")
	signins  = flag.Int("signins", 2_000, "sign-ins per measured phase (half existing users, half new)")
	rate     = flag.Float64("rate", 200, "sign-ins per second")
	rounds   = flag.Int("rounds", 3, "rounds of the free-page list comparison")
	compare  = flag.Bool("freelist", true, "compare the free-page list settings")
	backupTo = flag.String("backup", "", "where to write the compact backup (default: beside the store, deleted after)")
	fragment = flag.Float64("fragment", 0, "before comparing the free-page lists, delete this fraction of the generated sessions (bulk, unsynced) to leave many free pages")
	only     = flag.String("only", "", "run only these phases, comma-separated: lookups, signins, housekeeping, freelist, backup")
	profile  = flag.String("cpuprofile", "", "write a CPU profile of the sign-in phases to this file")
	inTurn   = flag.Bool("in-turn", false, "run the flush and then the sweep, as the gateway schedules them, instead of both at once")
	memProf  = flag.String("memprofile", "", "write a heap profile (what is live, and what was allocated since the start) at the end of each sign-in phase to this file")
	cold     = flag.Bool("cold", false, "drop the store file from the page cache before opening it, so that pages come from the disk as after a reboot")
	rehearse = flag.Bool("rehearse", true, "let writes read their pages in a read transaction before they take the write lock (store/bolt's rehearsal); false measures without")
)

// runs reports whether a phase is to run.
func runs(phase string) bool {
	return *only == "" || slices.Contains(strings.Split(*only, ","), phase)
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	if *path == "" {
		return fmt.Errorf("storeload: -store is required")
	}
	if *short {
		// A slow machine (the race detector, a busy CI runner) must not
		// drown in sign-ins: the run checks that the phases work, it
		// measures nothing.
		*lookups, *touch, *signins, *rounds, *rate = 2_000, 2_000, 200, 1, 50
	}
	fmt.Printf("storeload: %s, %s, GOMAXPROCS %d\n", *path, size(*path), runtime.GOMAXPROCS(0))
	diskCosts(filepath.Dir(*path))

	l := &load{rng: mrand.New(mrand.NewPCG(7, 8))}
	if *cold {
		evict()
	}
	l.open(bolt.Options{NoRehearsal: !*rehearse})
	defer func() { _ = l.db.Close() }()
	if runs("lookups") {
		l.lookupsCold()
	}
	l.now = l.sessionsCurrentAt()
	fmt.Printf("sessions are current at %s\n", l.now.Format(time.RFC3339))
	if runs("signins") {
		l.phase("quiet store", nil)
	}
	if runs("housekeeping") {
		l.housekeeping()
	}
	if *fragment > 0 {
		l.fragmentStore()
	}
	if *compare && runs("freelist") {
		l.freelists()
	}
	if runs("backup") {
		l.backup()
	}
	start := time.Now()
	r, err := l.db.Check(context.Background())
	if err != nil {
		return err
	}
	if !r.OK() {
		return fmt.Errorf("storeload: the store is inconsistent after the run: %s", strings.Join(r.Problems, "; "))
	}
	fmt.Printf("check: the store is consistent (%+v), checked in %s\n", r.Records, time.Since(start).Round(time.Second))
	return nil
}

type load struct {
	db    *bolt.DB
	users int
	now   time.Time // the instant genstore made the sessions current at
	rng   *mrand.Rand
	newID int

	mu        sync.Mutex
	holds     []bolt.WriteHold // the write transactions of the current phase
	lastWrite time.Time
}

// watchdog prints every goroutine's stack once when no write transaction
// has ended for 30 seconds while writes are waiting: to see what holds the
// write lock when something does.
func (l *load) watchdog(ctx context.Context, waiting func() bool) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.mu.Lock()
		stalled := !l.lastWrite.IsZero() && time.Since(l.lastWrite) > 30*time.Second
		l.mu.Unlock()
		if stalled && waiting() {
			fmt.Fprintln(os.Stderr, "storeload: no commit for 30 s; goroutines:")
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
			return
		}
	}
}

func (l *load) open(opts bolt.Options) time.Duration {
	opts.OnWrite = func(w bolt.WriteHold) {
		l.mu.Lock()
		l.holds = append(l.holds, w)
		l.lastWrite = time.Now()
		l.mu.Unlock()
	}
	start := time.Now()
	db, err := bolt.Open(*path, opts)
	if err != nil {
		log.Fatal(err)
	}
	took := time.Since(start)
	l.db = db
	if l.users == 0 {
		_ = db.View(context.Background(), func(tx store.Tx) error {
			c, err := tx.Counts()
			l.users = c.Users
			fmt.Printf("store: %+v\n", c)
			return err
		})
	}
	return took
}

// evict drops the store file from the page cache, so the next reads come
// from the disk, as after a reboot.
func evict() {
	f, err := os.Open(*path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	const fadvDontNeed = 4
	if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); e != 0 {
		log.Printf("storeload: fadvise: %v", e)
	}
}

// diskCosts prints what an fdatasync of one page costs on this device
// now, the floor under every commit's latency, and what a commit's many
// pages add when they are scattered, as a fragmented store's are, or in
// one run (docs/operations.md, "Where a write's time goes on a disk").
func diskCosts(dir string) {
	f, err := os.CreateTemp(dir, "fsync-*")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const pageSize = 4096
	page := make([]byte, pageSize)
	var d []time.Duration
	for i := range 200 {
		start := time.Now()
		_, _ = f.WriteAt(page, int64(i%16)*pageSize)
		_ = syscall.Fdatasync(int(f.Fd()))
		d = append(d, time.Since(start))
	}
	fmt.Printf("fsync floor (4 KiB write + fdatasync, 200 times): %s\n", dist(d))

	// Pages already written once, as a store's are: a first write to a
	// hole would also allocate blocks.
	const span, pages = 256 << 20, 64
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < span; off += int64(len(chunk)) {
		if _, err := f.WriteAt(chunk, off); err != nil {
			log.Fatal(err)
		}
	}
	_ = syscall.Fdatasync(int(f.Fd()))
	commit := func(first func() int64, next func(int64) int64) time.Duration {
		start := time.Now()
		for i, id := 0, first(); i < pages; i, id = i+1, next(id) {
			_, _ = f.WriteAt(page, id*pageSize)
		}
		_ = syscall.Fdatasync(int(f.Fd()))
		_, _ = f.WriteAt(page, 0) // the meta page, as bbolt writes it after
		_ = syscall.Fdatasync(int(f.Fd()))
		return time.Since(start)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	const stride = span / pageSize / pages
	var scattered, run []time.Duration
	for range 50 {
		scattered = append(scattered, commit(func() int64 { return 1 + rng.Int64N(stride) },
			func(id int64) int64 { return id + 1 + rng.Int64N(stride) }))
		run = append(run, commit(func() int64 { return 1 + rng.Int64N(span/pageSize-pages-1) },
			func(id int64) int64 { return id + 1 }))
	}
	fmt.Printf("a commit of %d pages + 2 fdatasyncs, the pages scattered over %d MiB: %s\n  the same in one run of pages: %s\n",
		pages, span>>20, dist(scattered), dist(run))
}

func (l *load) lookupsCold() {
	l.close()
	evict()
	l.open(bolt.Options{})
	before := memory()
	ctx := context.Background()
	var link, name []time.Duration
	for i := range *lookups {
		u := l.rng.IntN(l.users)
		start := time.Now()
		var err error
		if i%2 == 0 {
			err = l.db.View(ctx, func(tx store.Tx) error { _, err := tx.UserByLink(fixture.IdP, fixture.Subject(u)); return err })
			link = append(link, time.Since(start))
		} else {
			err = l.db.View(ctx, func(tx store.Tx) error { _, err := tx.UserByUserName(fixture.Email(u)); return err })
			name = append(name, time.Since(start))
		}
		if err != nil {
			log.Fatalf("lookup of user %d: %v", u, err)
		}
		if (i+1)%(*lookups/4) == 0 {
			fmt.Printf("  cold lookups: %d/%d\n", i+1, *lookups)
		}
	}
	after := memory()
	fmt.Printf("cold lookups: by IdP link %s; SCIM userName eq %s\n", dist(link), dist(name))
	fmt.Printf("memory before lookups: %s\nmemory after %d cold lookups: %s\n", before, *lookups, after)
}

// sessionsCurrentAt finds genstore's -now: the latest last-seen time of
// the first sessions (they are spread over the hour before it).
func (l *load) sessionsCurrentAt() time.Time {
	var latest time.Time
	n := 0
	_ = l.db.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachSession("", func(s *store.Session) error {
			if s.LastSeen.After(latest) {
				latest = s.LastSeen
			}
			if n++; n >= 20_000 {
				return errStop
			}
			return nil
		})
	})
	return latest.Truncate(time.Second).Add(time.Second)
}

var errStop = fmt.Errorf("stop")

// takeHeld returns the current phase's hold times, and its holds broken
// down, and starts the next phase.
func (l *load) takeHeld() ([]time.Duration, string) {
	l.mu.Lock()
	holds := l.holds
	l.holds = nil
	l.mu.Unlock()
	var (
		held, bgWork      []time.Duration
		fgFaults          []int64
		longest, mostWork bolt.WriteHold
		sum               bolt.WriteHold
	)
	for _, w := range holds {
		held = append(held, w.Held)
		if w.Held > longest.Held {
			longest = w
		}
		if w.Work > mostWork.Work {
			mostWork = w
		}
		if w.Background {
			bgWork = append(bgWork, w.Work)
		} else {
			fgFaults = append(fgFaults, w.Faults)
		}
		sum.Work += w.Work
		sum.Build += w.Build
		sum.Disk += w.Disk
		sum.Pages += w.Pages
		sum.Faults += w.Faults
	}
	n := time.Duration(max(1, len(holds)))
	out := fmt.Sprintf("longest %s\n  most work in one: %s\n  mean per transaction: work %s, build %s, disk %s, %.1f pages; %d pages read from disk under the lock in all",
		holdString(longest), holdString(mostWork), ms(sum.Work/n), ms(sum.Build/n), ms(sum.Disk/n), float64(sum.Pages)/float64(n), sum.Faults)
	if len(fgFaults) > 0 {
		q := quantiles(fgFaults)
		out += fmt.Sprintf("\n  pages a foreground transaction read from disk: p50 %d  p90 %d  p99 %d  max %d  (n=%d)",
			q(0.5), q(0.9), q(0.99), q(1), len(fgFaults))
	}
	if len(bgWork) > 0 {
		var total time.Duration
		for _, d := range bgWork {
			total += d
		}
		out += fmt.Sprintf("\n  work of a background batch: mean %s, %s", ms(total/time.Duration(len(bgWork))), dist(bgWork))
	}
	return held, out
}

// holdString breaks a write-lock hold down as the slow-write log does.
func holdString(w bolt.WriteHold) string {
	kind := "sign-ins"
	if w.Background {
		kind = "background"
	}
	return fmt.Sprintf("%s: work %s (%d pages read from disk), build %s, disk %s (%d pages), %d calls, %s",
		ms(w.Held), ms(w.Work), w.Faults, ms(w.Build), ms(w.Disk), w.Pages, w.Calls, kind)
}

// phase runs *signins sign-ins paced at *rate (alternating existing and
// new users) until they are done and busy, if not nil, has returned.
func (l *load) phase(name string, busy func()) {
	ctx := context.Background()
	sessions := session.New(l.db, session.Config{}, nil, nil)
	prov := &provision.Provisioner{Store: l.db}
	rules := provision.Rules{JIT: true, Update: provision.UpdateForce}
	var (
		mu            sync.Mutex
		existing, neu []time.Duration
		wg            sync.WaitGroup
		failures      int
	)
	if *profile != "" {
		stop := startProfile(name)
		defer stop()
	}
	if *memProf != "" {
		defer writeHeapProfile(name)
	}
	busyDone := make(chan struct{})
	l.takeHeld()
	start := time.Now()
	var inFlight atomic.Int64
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go l.watchdog(wctx, func() bool { return inFlight.Load() > 0 })
	if busy != nil {
		go func() { busy(); close(busyDone) }()
	} else {
		close(busyDone)
	}
	limit := time.Hour // how long the background work may take
	if *short {
		// A hang ends here rather than at go test's timeout; the race
		// detector on a CPU-starved machine took over 5 minutes.
		limit = 15 * time.Minute
	}
	interval := time.Duration(float64(time.Second) / *rate)
	next := time.Now()
	for i := 0; ; i++ {
		select {
		case <-busyDone:
			if i >= *signins {
				goto done
			}
		default:
		}
		if time.Since(start) > limit {
			log.Fatalf("storeload: the background work has not ended in %s", limit)
		}
		isNew := i%2 == 1
		var u int
		if isNew {
			l.newID++
			u = l.newID
		} else {
			u = l.rng.IntN(l.users)
		}
		next = next.Add(time.Duration(l.rng.ExpFloat64() * float64(interval)))
		time.Sleep(time.Until(next))
		wg.Go(func() {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			t0 := time.Now()
			err := signIn(ctx, prov, rules, sessions, u, isNew)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures++
				if failures < 5 {
					log.Printf("sign-in: %v", err)
				}
				return
			}
			if isNew {
				neu = append(neu, d)
			} else {
				existing = append(existing, d)
			}
		})
	}
done:
	wg.Wait()
	held, longest := l.takeHeld()
	fmt.Printf("%s: %d sign-ins in %s (%d failed)\n  sign-in, existing user: %s\n  sign-in, new user:      %s\n  write lock held:        %s over %d transactions\n  %s\n",
		name, len(existing)+len(neu), time.Since(start).Round(time.Millisecond), failures, dist(existing), dist(neu), dist(held), len(held), longest)
}

// phaseFile is path with the phase's name added before the extension.
func phaseFile(path, phase string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + strings.ReplaceAll(phase, " ", "-") + ext
}

// startProfile profiles the phase into phaseFile(*profile, phase), and
// returns what stops it.
func startProfile(phase string) func() {
	name := phaseFile(*profile, phase)
	f, err := os.Create(name)
	if err != nil {
		log.Fatalf("storeload: cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatalf("storeload: cpu profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Printf("storeload: cpu profile: %v", err)
		}
		fmt.Printf("  cpu profile: %s\n", name)
	}
}

// writeHeapProfile writes the heap profile into phaseFile(*memProf, phase).
func writeHeapProfile(phase string) {
	name := phaseFile(*memProf, phase)
	f, err := os.Create(name)
	if err != nil {
		log.Fatalf("storeload: heap profile: %v", err)
	}
	runtime.GC() // what is live now, not at the last collection
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		log.Fatalf("storeload: heap profile: %v", err)
	}
	if err := f.Close(); err != nil {
		log.Printf("storeload: heap profile: %v", err)
	}
	fmt.Printf("  heap profile: %s\n", name)
}

// signIn does what the sign-in handler does for user i (an existing user
// of the generated store, or, when isNew, a fresh subject) in one Update.
func signIn(ctx context.Context, prov *provision.Provisioner, rules provision.Rules, sessions *session.Manager, i int, isNew bool) error {
	subject, email := fixture.Subject(i), fixture.Email(i)
	if isNew {
		subject, email = "new-"+strconv.Itoa(i)+"-"+randHex(4), "new"+strconv.Itoa(i)+"-"+randHex(4)+"@example.com"
	}
	prof := mapping.Profile{UniqueUserID: subject, FirstName: "First", LastName: fmt.Sprint("Last", i), Email: email,
		Groups: []string{"staff", fmt.Sprint("team-", i%50)}, HasGroups: true}
	fresh, err := sessions.Prepare(fixture.IdP, store.LogoutInfo{Subject: subject},
		&session.Tokens{IDToken: fixture.IDToken(subject, email, time.Now(), i%50)})
	if err != nil {
		return err
	}
	state := randHex(16)
	grant := func(tx store.Tx, u *store.User) error {
		if fresh, err := tx.Consume("oidc-state", state, time.Now().Add(10*time.Minute)); err != nil || !fresh {
			return fmt.Errorf("state: %v %v", fresh, err)
		}
		return fresh.Write(tx, u)
	}
	if _, err := prov.LoginAndGrant(ctx, fixture.IdP, rules, prof, true, grant); err != nil {
		return err
	}
	sessions.Remember(fresh)
	return nil
}

// housekeeping measures sign-ins while the sweep and the last-seen flush
// of *touch sessions run: both at once (the worst case), or with -in-turn
// one after the other, as the gateway runs them. The flush's sessions are resolved first (at the
// instant genstore made current, so none is due yet), then the clock moves
// six minutes on: sessions idle since 54 minutes before that instant
// (about a tenth) are due, and the touched ones have moved by at least the
// touch interval.
func (l *load) housekeeping() {
	ctx := context.Background()
	clock := l.now
	var clockMu sync.Mutex
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	m := session.New(l.db, session.Config{Lifetime: 8 * time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute,
		CacheSize: *touch * 2}, nil, now)
	start := time.Now()
	picked := map[int]bool{}
	for len(picked) < min(*touch, l.users) {
		picked[l.rng.IntN(l.users)] = true
	}
	n := 0
	for u := range picked {
		if _, err := m.Resolve(ctx, fixture.Token(u)); err != nil {
			log.Fatalf("resolve user %d's session: %v", u, err)
		}
		if n++; n%(*touch/4) == 0 {
			fmt.Printf("  resolving sessions to touch: %d/%d\n", n, len(picked))
		}
	}
	fmt.Printf("resolved %d sessions from the store in %s\n", len(picked), time.Since(start).Round(time.Millisecond))
	clockMu.Lock()
	clock = clock.Add(6 * time.Minute)
	clockMu.Unlock()

	sweep := func() {
		t0 := time.Now()
		n, err := m.Sweep(ctx)
		fmt.Printf("  sweep: %d sessions in %s (%v)\n", n, time.Since(t0).Round(time.Millisecond), err)
	}
	flush := func() {
		t0 := time.Now()
		err := m.Flush(ctx, false)
		fmt.Printf("  flush: %d sessions in %s (%v)\n", len(picked), time.Since(t0).Round(time.Millisecond), err)
	}
	if *inTurn {
		// As session.Manager.Run schedules them: the flush, then the sweep.
		l.phase("flush then sweep running", func() { flush(); sweep() })
		return
	}
	l.phase("sweep and flush running", func() {
		var wg sync.WaitGroup
		wg.Go(sweep)
		wg.Go(flush)
		wg.Wait()
	})
}

// freelists compares, on the file as the sweep and flush left it, bbolt's
// free-page list written at every commit (its default) with the list kept
// in memory and written at Close (this store's default), and with the
// start after a crash, when no list was written and bbolt rebuilds it by
// reading every page. Start-up is Open plus the first write, which is when
// bbolt loads or rebuilds the list.
func (l *load) freelists() {
	_ = l.db.Close()
	start := func(opts bolt.Options) time.Duration {
		t0 := time.Now()
		l.open(opts)
		if err := l.db.Update(context.Background(), func(store.Tx) error { return nil }); err != nil {
			log.Fatal(err)
		}
		return time.Since(t0)
	}
	for r := 1; r <= *rounds; r++ {
		for _, mode := range []string{"written at each commit", "written at close", "after a crash"} {
			opts := bolt.Options{SyncFreelist: mode == "written at each commit"}
			if mode == "after a crash" {
				dropFreelist()
			}
			evict()
			cold := start(opts)
			l.close()
			if mode == "after a crash" {
				dropFreelist()
			}
			warm := start(opts)
			ctx := context.Background()
			sessions := session.New(l.db, session.Config{}, nil, nil)
			prov := &provision.Provisioner{Store: l.db}
			rules := provision.Rules{JIT: true, Update: provision.UpdateForce}
			var lat []time.Duration
			l.takeHeld()
			for i := range *signins / 4 {
				t0 := time.Now()
				if err := signIn(ctx, prov, rules, sessions, l.rng.IntN(l.users), i%2 == 1); err != nil {
					log.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			held, longest := l.takeHeld()
			l.close()
			fmt.Printf("round %d, free-page list %s: start-up cold %s, warm %s; %d free pages\n  one sign-in at a time %s\n  lock held %s\n  %s\n",
				r, mode, ms(cold), ms(warm), freePages(), dist(lat), dist(held), longest)
		}
	}
	l.open(bolt.Options{})
}

// fragmentStore deletes *fragment of the generated sessions, in large
// unsynced transactions, leaving the free pages a long run of sweeps would.
func (l *load) fragmentStore() {
	l.close()
	l.open(bolt.Options{NoSync: true})
	ctx := context.Background()
	start := time.Now()

	deleted := 0
	for i := 0; i < l.users; {
		err := l.db.Update(ctx, func(tx store.Tx) error {
			for end := min(i+20_000, l.users); i < end; i++ {
				if l.rng.Float64() >= *fragment {
					continue
				}
				err := tx.DeleteSession(session.Hash(fixture.Token(i)))
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				deleted++
			}
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
		if (i/20_000)%10 == 0 {
			fmt.Printf("  fragmenting: %d/%d users\n", i, l.users)
		}
	}

	if err := l.db.Sync(); err != nil {
		log.Fatal(err)
	}
	l.close()
	fmt.Printf("fragmented: deleted %d sessions in %s; %d free pages\n", deleted, time.Since(start).Round(time.Second), freePages())
	l.open(bolt.Options{})
}

func (l *load) close() {
	if err := l.db.Close(); err != nil {
		log.Fatal(err)
	}
}

// dropFreelist leaves the file as a crash leaves it: committed with no
// free-page list written.
func dropFreelist() {
	bdb, err := bbolt.Open(*path, 0o600, &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		log.Fatal(err)
	}
	if err := bdb.Update(func(*bbolt.Tx) error { return nil }); err != nil {
		log.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		log.Fatal(err)
	}
}

// freePages reads the count of free pages from a closed store.
func freePages() int {
	bdb, err := bbolt.Open(*path, 0o600, &bbolt.Options{ReadOnly: true, PreLoadFreelist: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return -1
	}
	defer bdb.Close()
	return bdb.Stats().FreePageN
}

func (l *load) backup() {
	dst := *backupTo
	if dst == "" {
		dst = *path + ".backup"
		defer os.Remove(dst)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	n, err := l.db.Backup(f)
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("backup: %s in %s, store file %s\n", mib(n), time.Since(start).Round(time.Millisecond), size(*path))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// memory reads this process's resident memory, split as containers count
// it: anonymous (heap, stacks) and file-backed (the store's mapping).
func memory() string {
	raw, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return "unknown: " + err.Error()
	}
	kb := map[string]int{}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "kB" {
			v, _ := strconv.Atoi(f[1])
			kb[strings.TrimSuffix(f[0], ":")] = v
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("RSS %d MiB = anonymous %d MiB + file-backed %d MiB (Go heap in use %d MiB)",
		kb["Rss"]>>10, kb["Anonymous"]>>10, (kb["Rss"]-kb["Anonymous"])>>10, ms.HeapInuse>>20)
}

func dist(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	q := quantiles(d)
	return fmt.Sprintf("p50 %s  p99 %s  max %s  (n=%d)", ms(q(0.5)), ms(q(0.99)), ms(q(1)), len(d))
}

// quantiles sorts a copy of v (not empty) and returns its quantile
// function: q(0.5) the median, q(1) the largest.
func quantiles[T cmp.Ordered](v []T) func(p float64) T {
	v = slices.Clone(v)
	slices.Sort(v)
	return func(p float64) T { return v[min(len(v)-1, int(p*float64(len(v))))] }
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func size(p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		return "?"
	}
	return mib(fi.Size())
}
