package caddymodule_test

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// An instance runs for months and is reloaded often: each reload starts a
// new sso app and retires the old one (App.Stop, App.Cleanup). These tests
// reload many times and then hold the process to what it ran before:
// goroutines and open files (a bbolt file, PostgreSQL connections and
// every other socket are file descriptors) back to their baseline, and one,
// not one per reload, of each background loop a running config has.
//
// The sites answer with respond, not reverse_proxy: Caddy's own
// reverse_proxy keeps an idle upstream connection (2 goroutines, 2 fds) per
// retired config, with no sso app at all (Caddy v2.11.9), and would hide
// the sso app's numbers behind Caddy's.

// reloadRounds is how many reloads each test makes after its warm-up: a
// leak of one goroutine per reload stands well clear of the slack.
const reloadRounds = 20

// Slack over the baseline: connections a server is still closing, a
// refresh in flight. A leak per reload exceeds it by far.
const goroutineSlack, fdSlack = 6, 4

// backgroundLoops are the frames of the loops a running config has one of
// each: the session manager's (last-seen flush, sweep of expired
// sessions), the housekeeping (single-use IDs, audit retention), the flow
// cookie key check, and the SAML metadata refresh of an IdP whose metadata
// comes from a URL.
var backgroundLoops = []string{
	"caddy-sso/session.(*Manager).Run(",
	"caddy-sso/gateway.(*Housekeeper).Run(",
	"caddy-sso/gateway.FlowKeys.follow(",
	"caddy-sso/idp/saml.(*Provider).refreshLoop(",
}

// resources is what the process holds at one moment.
type resources struct {
	goroutines, fds int
	boltFiles       int            // open *.db files: the bbolt stores
	loops           map[string]int // backgroundLoops frame: goroutines running it
	stacks          string         // the goroutines in caddy-sso code, for a failure
}

func measure(t *testing.T) resources {
	t.Helper()
	runtime.GC()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	r := resources{goroutines: runtime.NumGoroutine(), fds: len(fds), loops: map[string]int{}}
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasSuffix(target, ".db") {
			r.boltFiles++
		}
	}
	var ours []string
	all := bytes.Split(buf, []byte("\n\n"))
	for _, g := range all[1:] { // all[0] is this one's
		for _, line := range strings.Split(string(g), "\n") {
			if strings.HasPrefix(line, "created by ") {
				continue // a goroutine a loop started is not the loop
			}
			for _, frame := range backgroundLoops {
				if strings.Contains(line, frame) {
					r.loops[frame]++
				}
			}
		}
		if bytes.Contains(g, []byte("caddy-sso/")) {
			ours = append(ours, string(g))
		}
	}
	r.stacks = strings.Join(ours, "\n\n")
	return r
}

// beyondOneConfig says what r holds beyond one running config's work
// over before, the process before the test started its Caddy (what other
// tests left), or lacks of it: background loops not one more of each, more
// than one bbolt file more; "" if nothing.
func (r resources) beyondOneConfig(before resources) string {
	var wrong []string
	if r.boltFiles > before.boltFiles+1 { // the running config's, if on bolt
		wrong = append(wrong, fmt.Sprintf("%d bbolt files open (%d before)", r.boltFiles, before.boltFiles))
	}
	for _, frame := range backgroundLoops {
		if n, was := r.loops[frame], before.loops[frame]; n != was+1 {
			wrong = append(wrong, fmt.Sprintf("%d of %s (%d before)", n, strings.TrimSuffix(frame, "("), was))
		}
	}
	return strings.Join(wrong, ", ")
}

// quiet is the process before a test starts its Caddy: the reading once
// two in a row hold the same background loops (another test's config
// still stopping is done), at most 5 s on; what other tests left running
// for good is counted in it.
func quiet(t *testing.T) resources {
	t.Helper()
	r := measure(t)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		next := measure(t)
		if maps.Equal(next.loops, r.loops) && next.boltFiles == r.boltFiles {
			return next
		}
		r = next
	}
	return r
}

// settledBaseline is the reading once two in a row agree and the process
// holds one config's work (connections closing, a config retiring in the
// background, are done), at most 10 s on.
func settledBaseline(t *testing.T, before resources) resources {
	t.Helper()
	r := measure(t)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		next := measure(t)
		if next.goroutines == r.goroutines && next.fds == r.fds && next.beyondOneConfig(before) == "" {
			return next
		}
		r = next
	}
	if wrong := r.beyondOneConfig(before); wrong != "" {
		t.Fatalf("baseline: %s; want one config's: one of each background loop, one bbolt file at most\ngoroutines in caddy-sso:\n%s", wrong, r.stacks)
	}
	return r
}

// backToBaseline waits, up to 15 s (a loaded machine, -race), for the
// process to be back to base within the slack, holding one config's work;
// it fails t with the last reading if it is not.
func backToBaseline(t *testing.T, before, base resources, after string) {
	t.Helper()
	var r resources
	for deadline := time.Now().Add(15 * time.Second); ; {
		r = measure(t)
		wrong := r.beyondOneConfig(before)
		if wrong == "" && r.goroutines <= base.goroutines+goroutineSlack && r.fds <= base.fds+fdSlack {
			t.Logf("%s: goroutines %d -> %d, fds %d -> %d", after, base.goroutines, r.goroutines, base.fds, r.fds)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: goroutines %d -> %d, fds %d -> %d (slack %d, %d); beyond one config: %s\ngoroutines in caddy-sso:\n%s",
				after, base.goroutines, r.goroutines, base.fds, r.fds, goroutineSlack, fdSlack, cmp.Or(wrong, "nothing"), r.stacks)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// closeIdleConnections drops the keep-alive connections of the test's
// clients (the browser's, and the sso app's to the IdPs, which use the
// default transport), so that only what the configs hold stays open.
func closeIdleConnections(b *browser) {
	b.client.CloseIdleConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// reloadWorld is an OIDC IdP that signs ada in and a SAML IdP whose
// metadata the sso app fetches from a URL (so its refresh loop runs), in
// front of a site that responds "ok" to a signed-in browser.
type reloadWorld struct {
	*oidcWorld
	saml *samltest.Server
}

func newReloadWorld(t *testing.T) *reloadWorld {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	sp, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return &reloadWorld{oidcWorld: w, saml: sp}
}

// caddyfile is the config with the store option storeOpt, the session's
// idle timeout idle, and extraSites after the signed-in site; header, when
// set, changes that site only.
func (w *reloadWorld) caddyfile(storeOpt, idle, header, extraSites string) string {
	sso := storeOpt +
		fmt.Sprintf("\t\tsession {\n\t\t\tidle_timeout %s\n\t\t}\n", idle) +
		fmt.Sprintf("\t\tidp test oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t}\n", w.idp.Issuer, clientID, clientSecret) +
		fmt.Sprintf("\t\tidp s saml {\n\t\t\tmetadata_url %s\n\t\t}\n", w.saml.MetadataURL())
	if header != "" {
		header = "\theader X-Reload " + header + "\n"
	}
	sites := fmt.Sprintf("%s {\n%s\tsso test\n\trespond \"ok\"\n}\n", w.gw.base, header) + extraSites
	return "{\n" + w.gw.globalOptions() + "\tsso {\n" + sso + "\t}\n}\n\n" + sites
}

// signedIn has b signed in (again, after a reload onto another store) and
// served by the site.
func (w *reloadWorld) signedIn(t *testing.T, b *browser, after string) {
	t.Helper()
	resp := b.signIn(w.gw.base+"/app", "ada", "ada-pw")
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("%s: %s %.200q, want 200 ok", after, resp.Status, body)
	}
}

// TestReloadsLeakNothing: reloads that change the session settings, move
// the sso app to another store handle (another bbolt file; another
// PostgreSQL pool size, so another pool) and back, or change the sites
// only, with a browser signed in and served after each, leave goroutines,
// open files (the store's: bbolt file, PostgreSQL connections) and the
// background loops as they were: every retired config's work is stopped and
// its store handle given back.
func TestReloadsLeakNothing(t *testing.T) {
	backends := []struct {
		name string
		// store returns the store option of config i: every fourth
		// config (i%4 == 2) on a new handle of the store pool, given
		// back by the next reload: a handle not closed then shows in
		// the open files.
		store func(t *testing.T, w *reloadWorld) func(i int) string
	}{
		{"bolt", func(t *testing.T, w *reloadWorld) func(i int) string {
			return func(i int) string {
				file := w.gw.StorePath()
				if i%4 == 2 {
					file = filepath.Join(w.gw.dir, fmt.Sprintf("other-%d.db", i))
				}
				return "\t\tstore bolt " + file + "\n"
			}
		}},
		{"postgres", func(t *testing.T, w *reloadWorld) func(i int) string {
			dsn := pgtest.NewDatabase(t) // dropped after Caddy stops
			return func(i int) string {
				pool := 4
				if i%4 == 2 {
					pool = 5 + i/4
				}
				return fmt.Sprintf("\t\tstore postgres %q {\n\t\t\tpool_size %d\n\t\t}\n", dsn, pool)
			}
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			w := newReloadWorld(t)
			storeOf := b.store(t, w)
			cfg := func(i int) string {
				idle, header := "30m", ""
				switch i % 4 {
				case 1:
					idle = "45m" // the sso app changes
				case 3:
					header = "on" // the sites only
				}
				return w.caddyfile(storeOf(i), idle, header, "")
			}
			before := quiet(t)
			w.gw.start(cfg(0))
			ada := newBrowser(t)
			w.signedIn(t, ada, "first config")
			// One round of every kind of reload first, so that what is
			// made once per process (pools, caches) exists already.
			for i := 1; i <= 4; i++ {
				w.gw.reload(cfg(i))
				w.signedIn(t, ada, fmt.Sprintf("warm-up reload %d", i))
			}
			closeIdleConnections(ada)
			base := settledBaseline(t, before)
			for i := 5; i < 5+reloadRounds; i++ {
				w.gw.reload(cfg(i))
				w.signedIn(t, ada, fmt.Sprintf("reload %d", i))
			}
			closeIdleConnections(ada)
			backToBaseline(t, before, base, fmt.Sprintf("after %d reloads", reloadRounds))
		})
	}
}

// TestFailedReloadsLeakNothing: reloads that fail after the new sso app
// has started (the http app cannot bind a port another listener holds)
// leave goroutines, open files and the background loops as they were,
// and the running config keeps serving the signed-in browser throughout:
// the failed config's work is stopped and its store handle given back,
// not the running config's.
func TestFailedReloadsLeakNothing(t *testing.T) {
	w := newReloadWorld(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	storeOpt := "\t\tstore bolt " + w.gw.StorePath() + "\n"
	failing := func(i int) string {
		return w.caddyfile(storeOpt, fmt.Sprintf("%dm", 30+i), "", fmt.Sprintf("http://%s {\n\trespond \"busy\"\n}\n", busy.Addr()))
	}
	before := quiet(t)
	w.gw.start(w.caddyfile(storeOpt, "30m", "", ""))
	ada := newBrowser(t)
	w.signedIn(t, ada, "first config")
	failOnce := func(i int) {
		t.Helper()
		if st, body := w.gw.tryReload(failing(i)); st == http.StatusOK {
			t.Fatalf("reload %d onto a busy port succeeded: %s", i, body)
		}
		// A failed load may reset a connection the running servers
		// kept alive, or one its own took as they stopped (Caddy's,
		// seen with v2.11.9): a browser opens another and retries.
		ada.client.CloseIdleConnections()
		resp, err := ada.TryGet(w.gw.base + "/app")
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			if resp, err = ada.TryGet(w.gw.base + "/app"); err != nil {
				t.Fatalf("after failed reload %d: %v", i, err)
			}
		}
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("after failed reload %d: %s %.200q, want the running config's 200 ok", i, resp.Status, body)
		}
	}
	for i := 1; i <= 3; i++ {
		failOnce(i)
	}
	closeIdleConnections(ada)
	base := settledBaseline(t, before)
	for i := 4; i < 4+reloadRounds; i++ {
		failOnce(i)
	}
	closeIdleConnections(ada)
	backToBaseline(t, before, base, fmt.Sprintf("after %d failed reloads", reloadRounds))
}
