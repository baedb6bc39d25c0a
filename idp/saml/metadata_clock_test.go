package saml

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// jumpClock is a wall clock that a test moves ahead, as a VM resumed
// after days suspended, or a clock days behind set right by hand, sees
// it: the refresher's timer (monotonic) did not move meanwhile.
type jumpClock struct{ skip atomic.Int64 }

func (c *jumpClock) now() time.Time       { return time.Now().Add(time.Duration(c.skip.Load())) }
func (c *jumpClock) jump(d time.Duration) { c.skip.Add(int64(d)) }

// TestMetadataExpiredAfterClockJump: URL metadata valid two days
// (samltest's default), refreshed every 24h, and the wall clock jumps
// three days ahead while the refresher's timer stands still. Sign-in
// fetched nothing and refused the copy held as expired ("replace it with
// the IdP's current metadata", idp_misconfigured) until the timer fired,
// though the URL served a current copy. It fetches it at sign-in, at most
// once per minRetry, and refuses only when the fresh copy has expired
// too. File metadata is not read again at sign-in.
func TestMetadataExpiredAfterClockJump(t *testing.T) {
	t.Run("a current copy at the URL", func(t *testing.T) {
		var clock jumpClock
		h := newHarness(t, func(c *Config) { c.Now = clock.now })
		h.idp.SetClock(clock.now)
		h.idp.AddUser(oktaUser)
		h.p.startRefresh()
		waitFor(t, "first fetch", func() bool { return h.p.md.Load() != nil })
		held := h.p.md.Load()
		clock.jump(72 * time.Hour)
		if res := h.login(newBrowser(t), "ada", "pw", "/app"); res.Assertion == nil {
			t.Fatalf("sign-in after the clock jumped past the copy's validUntil: %s %s (fetches: %d)",
				res.Code, res.Error, h.idp.Requests(samltest.PathMetadata))
		}
		if h.p.md.Load() == held {
			t.Error("the expired copy is still held")
		}
		if n := h.idp.Requests(samltest.PathMetadata); n != 2 {
			t.Errorf("%d metadata fetches, want 2 (the refresher's first, sign-in's)", n)
		}
	})
	t.Run("an expired copy at the URL too", func(t *testing.T) {
		var clock jumpClock
		h := newHarness(t, func(c *Config) { c.Now = clock.now })
		h.idp.SetClock(clock.now)
		if _, err := h.p.signInMetadata(context.Background()); err != nil {
			t.Fatal(err)
		}
		held := h.p.md.Load()
		clock.jump(72 * time.Hour)
		h.idp.SetMetadataValidity(-time.Minute)
		h.p.minRetry = time.Hour
		for range 3 {
			_, err := h.p.signInMetadata(context.Background())
			if codeOf(err) != idp.CodeMisconfigured || !strings.Contains(err.Error(), "expired") {
				t.Fatalf("sign-in with the URL's copy expired too: %v", err)
			}
		}
		if n := h.idp.Requests(samltest.PathMetadata); n != 2 {
			t.Errorf("%d metadata fetches, want 2 (the first, then one per minRetry)", n)
		}
		if h.p.md.Load() != held {
			t.Error("the copy held was replaced by an expired one")
		}
		// Once the IdP serves a current copy, the next sign-in after
		// minRetry takes it.
		h.idp.SetMetadataValidity(48 * time.Hour)
		clock.jump(time.Hour)
		if _, err := h.p.signInMetadata(context.Background()); err != nil {
			t.Fatalf("sign-in once the URL serves a current copy: %v", err)
		}
	})
	t.Run("file metadata", func(t *testing.T) {
		var clock jumpClock
		srv, err := samltest.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		resp, err := http.Get(srv.MetadataURL())
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "idp.xml")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, func(c *Config) { c.MetadataURL, c.MetadataFile, c.Now = "", file, clock.now })
		loads := h.p.loads.Load()
		clock.jump(72 * time.Hour)
		if _, err := h.p.signInMetadata(context.Background()); codeOf(err) != idp.CodeMisconfigured || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("sign-in with expired file metadata: %v", err)
		}
		if n := h.p.loads.Load() - loads; n != 0 {
			t.Errorf("sign-in read the file %d times, want none (the refresh reads it)", n)
		}
	})
}
