package saml

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMetadataURL covers URL metadata: not fetched by New, fetched on first
// use, refreshed by Start on schedule and at validUntil, the last good copy
// kept through failures, and a reload when an unknown key signs.
func TestMetadataURL(t *testing.T) {
	t.Run("lazy, and retried after the IdP comes back", func(t *testing.T) {
		h := newHarness(t)
		if n := h.idp.Requests(samltest.PathMetadata); n != 0 {
			t.Fatalf("New fetched metadata %d times", n)
		}
		h.idp.SetUnavailable(true)
		err := h.p.Begin(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), h.base, idp.SignInRequest{ReturnTo: "/"})
		if codeOf(err) != CodeMetadataUnavailable {
			t.Fatalf("IdP down: %v", err)
		}
		// Within minRetry, no new fetch.
		h.p.minRetry = time.Hour
		_ = h.p.Begin(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), h.base, idp.SignInRequest{ReturnTo: "/"})
		if n := h.idp.Requests(samltest.PathMetadata); n != 1 {
			t.Fatalf("%d fetches, want 1 (rate limited)", n)
		}
		h.p.minRetry = 0
		h.idp.SetUnavailable(false)
		if err := h.p.Begin(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), h.base, idp.SignInRequest{ReturnTo: "/"}); err != nil {
			t.Fatalf("IdP back: %v", err)
		}
	})
	t.Run("refresh on schedule keeps the last good copy", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MetadataRefresh = 30 * time.Millisecond })
		h.p.startRefresh()
		waitFor(t, "first fetch", func() bool { return h.p.md.Load() != nil })
		waitFor(t, "refreshes", func() bool { return h.idp.Requests(samltest.PathMetadata) >= 3 })
		h.idp.SetUnavailable(true)
		n := h.idp.Requests(samltest.PathMetadata)
		waitFor(t, "failed refreshes", func() bool { return h.idp.Requests(samltest.PathMetadata) >= n+2 })
		if h.p.md.Load() == nil {
			t.Fatal("last good copy dropped")
		}
		// Logins still verify against the kept copy.
		pend := h.begin(t)
		if _, _, err := h.callback(t, pend, h.forge(t, h.spec(pend), pend.relayState, nil)); err != nil {
			t.Fatalf("login with the kept copy: %v", err)
		}
		if err := h.p.Close(); err != nil {
			t.Fatal(err)
		}
		// A request sent just before Close may reach the IdP's counter
		// just after it: one straggler is allowed, then nothing more over
		// more than three refresh intervals.
		n = h.idp.Requests(samltest.PathMetadata)
		time.Sleep(100 * time.Millisecond)
		settled := h.idp.Requests(samltest.PathMetadata)
		time.Sleep(100 * time.Millisecond)
		if m := h.idp.Requests(samltest.PathMetadata); settled > n+1 || m != settled {
			t.Fatalf("refresher still running after Close: %d → %d → %d fetches", n, settled, m)
		}
	})
	t.Run("refresh at validUntil", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MetadataRefresh = time.Hour })
		h.idp.SetMetadataValidity(100 * time.Millisecond)
		h.p.startRefresh()
		waitFor(t, "refresh at validUntil", func() bool { return h.idp.Requests(samltest.PathMetadata) >= 2 })
	})
	t.Run("IdP signing key rollover", func(t *testing.T) {
		h := newHarness(t)
		pend := h.begin(t) // loads the metadata
		if err := h.idp.RotateKey(false); err != nil {
			t.Fatal(err)
		}
		before := h.idp.Requests(samltest.PathMetadata)
		if _, _, err := h.callback(t, pend, h.forge(t, h.spec(pend), pend.relayState, nil)); err != nil {
			t.Fatalf("after rollover: %v", err)
		}
		if h.idp.Requests(samltest.PathMetadata) != before+1 {
			t.Fatal("metadata not reloaded for the unknown key")
		}
		// Forged signatures do not reload again within minRetry.
		h.p.minRetry = time.Hour
		other, cert, _ := samltest.NewKeyPair("attacker")
		pend = h.begin(t)
		spec := h.spec(pend)
		spec.Key, spec.Certificate = other, cert
		for range 3 {
			_, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil))
			if codeOf(err) != CodeUntrustedKey {
				t.Fatalf("got %v", err)
			}
		}
		if n := h.idp.Requests(samltest.PathMetadata); n != before+1 {
			t.Fatalf("%d metadata fetches, want %d", n, before+1)
		}
	})
}

// TestMetadataSources covers file and inline metadata and their checks.
func TestMetadataSources(t *testing.T) {
	srv, err := samltest.NewServer("https://idp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	good, err := srv.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	entityID := srv.EntityID()
	dir := t.TempDir()
	file := filepath.Join(dir, "idp.xml")
	if err := os.WriteFile(file, good, 0o600); err != nil {
		t.Fatal(err)
	}
	entity := string(good[bytes.Index(good, []byte("<EntityDescriptor")):])
	aggregate := []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + entity + `</EntitiesDescriptor>`)
	// A federation's aggregate lists many IdPs: without an entity ID
	// none is chosen, not the first.
	twoIdPs := []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` +
		strings.Replace(entity, `entityID="`+entityID+`"`, `entityID="urn:other-idp"`, 1) + entity + `</EntitiesDescriptor>`)
	cases := []struct {
		name    string
		cfg     func(c *Config)
		wantErr string
	}{
		{name: "inline", cfg: func(c *Config) { c.MetadataXML = good }},
		{name: "file", cfg: func(c *Config) { c.MetadataFile = file }},
		{name: "aggregate with one IdP", cfg: func(c *Config) { c.MetadataXML = aggregate }},
		{name: "aggregate with two IdPs", cfg: func(c *Config) { c.MetadataXML = twoIdPs }, wantErr: "describes 2 matching identity providers"},
		{name: "aggregate with two IdPs, entity ID pinned", cfg: func(c *Config) { c.MetadataXML = twoIdPs; c.IdPEntityID = entityID }},
		{name: "entity ID pinned", cfg: func(c *Config) { c.MetadataXML = good; c.IdPEntityID = entityID }},
		{name: "entity ID mismatch", cfg: func(c *Config) { c.MetadataXML = good; c.IdPEntityID = "urn:other" }, wantErr: "want \"urn:other\""},
		{name: "missing file", cfg: func(c *Config) { c.MetadataFile = filepath.Join(dir, "nope.xml") }, wantErr: "no such file"},
		{name: "DOCTYPE", cfg: func(c *Config) { c.MetadataXML = append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), good...) }, wantErr: "DOCTYPE"},
		{name: "not metadata", cfg: func(c *Config) { c.MetadataXML = []byte(`<html/>`) }, wantErr: "root element"},
		{name: "no entityID", cfg: func(c *Config) {
			c.MetadataXML = []byte(strings.Replace(string(good), `entityID="`+entityID+`"`, ``, 1))
		}, wantErr: "metadata has no entityID"},
		// The SP's own metadata pasted where the IdP's belongs.
		{name: "no IDPSSODescriptor", cfg: func(c *Config) {
			c.MetadataXML = []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example.com">` +
				`<SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></EntityDescriptor>`)
		}, wantErr: "metadata has no IDPSSODescriptor"},
		{name: "no signing certificate", cfg: func(c *Config) {
			c.MetadataXML = []byte(strings.ReplaceAll(string(good), `use="signing"`, `use="encryption"`))
		}, wantErr: "no signing certificate"},
		{name: "two sources", cfg: func(c *Config) { c.MetadataXML = good; c.MetadataFile = file }, wantErr: "the IdP metadata is already given"},
		{name: "no source", cfg: func(c *Config) {}, wantErr: "saml needs one of metadata_url, metadata_file or metadata"},
		{name: "http metadata URL", cfg: func(c *Config) { c.MetadataURL = "http://idp.example.com/metadata" }, wantErr: "loopback"},
		{name: "ftp metadata URL", cfg: func(c *Config) { c.MetadataURL = "ftp://idp.example.com/metadata" }, wantErr: "https"},
		{name: "https metadata URL", cfg: func(c *Config) { c.MetadataURL = "https://idp.example.com/metadata" }},
		{name: "http loopback", cfg: func(c *Config) { c.MetadataURL = "http://127.0.0.2:8080/metadata" }},
		{name: "http localhost", cfg: func(c *Config) { c.MetadataURL = "http://localhost/metadata" }},
		{name: "http ::1", cfg: func(c *Config) { c.MetadataURL = "http://[::1]:9/metadata" }},
		{name: "three keys", cfg: func(c *Config) { c.MetadataXML = good; k := testKeys(); c.SPKeys = k[:] }, wantErr: "sp_cert may appear at most 2 times"},
		{name: "mismatched key pair", cfg: func(c *Config) {
			c.MetadataXML = good
			c.SPKeys = []KeyPair{{Key: testKeys()[0].Key, Certificate: testKeys()[1].Certificate}}
		}, wantErr: "does not match"},
		{name: "bad binding", cfg: func(c *Config) { c.MetadataXML = good; c.RequestBinding = "artifact" }, wantErr: "binding"},
		{name: "skew too large", cfg: func(c *Config) { c.MetadataXML = good; c.ClockSkew = 5 * time.Minute }, wantErr: "clock_skew 5m0s must be at most 3m0s"},
		{name: "response size cap too small", cfg: func(c *Config) { c.MetadataXML = good; c.MaxResponseSize = MinResponseSizeCap - 1 }, wantErr: "between 16 KiB and 16 MiB"},
		{name: "response size cap too large", cfg: func(c *Config) { c.MetadataXML = good; c.MaxResponseSize = MaxResponseSizeCap + 1 }, wantErr: "between 16 KiB and 16 MiB"},
		{name: "smallest response size cap", cfg: func(c *Config) { c.MetadataXML = good; c.MaxResponseSize = MinResponseSizeCap }},
		{name: "largest response size cap", cfg: func(c *Config) { c.MetadataXML = good; c.MaxResponseSize = MaxResponseSizeCap }},
		{name: "no name", cfg: func(c *Config) { c.MetadataXML = good; c.Name = "" }, wantErr: "name is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Name: "x", SPKeys: []KeyPair{testKeys()[0]}}
			tc.cfg(&cfg)
			p, err := New(cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				p.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
	t.Run("Start without a runtime", func(t *testing.T) {
		p, err := New(Config{Name: "x", MetadataXML: good, SPKeys: []KeyPair{testKeys()[0]}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.Start(context.Background(), idp.Runtime{}); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("no key pair and nowhere to keep one", func(t *testing.T) {
		p, err := New(Config{Name: "x", MetadataXML: good})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		flows, _ := idp.NewFlowCookies(bytes.Repeat([]byte("k"), 32))
		rt := idp.Runtime{Flows: flows, Sessions: sessionEnder{}}
		if err := p.Start(context.Background(), rt); err == nil || !strings.Contains(err.Error(), "SP key pair") {
			t.Fatalf("Start = %v", err)
		}
	})
}

// TestMetadataRedirectDowngrade: an https metadata URL must not be
// downgraded to plain http by a redirect.
func TestMetadataRedirectDowngrade(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	c := idp.SafeRedirects(nil)
	for _, loc := range []string{"http://example.com/metadata", "ftp://example.com/"} {
		req, _ := http.NewRequest(http.MethodGet, loc, nil)
		if err := c.CheckRedirect(req, nil); err == nil {
			t.Errorf("redirect to %s allowed", loc)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, target.URL, nil) // loopback http
	if err := c.CheckRedirect(req, nil); err != nil {
		t.Errorf("loopback redirect refused: %v", err)
	}
}

// TestMetadataMisconfigured: metadata that was read but cannot be trusted
// (expired, or not metadata at all) fails a sign-in with
// idp.CodeMisconfigured, which asks an administrator to act; an IdP that
// cannot be reached stays CodeMetadataUnavailable (TestMetadataURL).
func TestMetadataMisconfigured(t *testing.T) {
	begin := func(h *harness) error {
		return h.p.Begin(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), h.base, idp.SignInRequest{ReturnTo: "/"})
	}
	t.Run("expired", func(t *testing.T) {
		h := newHarness(t)
		h.idp.SetMetadataValidity(-time.Minute)
		if err := begin(h); codeOf(err) != idp.CodeMisconfigured || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("Begin with expired metadata: %v", err)
		}
		// An assertion signed with the expired metadata's key is refused
		// too, when the copy fetched again at the callback
		// (TestMetadataExpiredAfterClockJump) has expired as well.
		h.idp.SetMetadataValidity(time.Hour)
		h.p.md.Store(nil)
		h.p.lastAttempt = time.Time{}
		pend := h.begin(t)
		h.p.md.Load().validUntil = time.Now().Add(-time.Second)
		h.idp.SetMetadataValidity(-time.Minute)
		if _, _, err := h.callback(t, pend, h.forge(t, h.spec(pend), pend.relayState, nil)); codeOf(err) != idp.CodeMisconfigured {
			t.Fatalf("ACS with expired metadata: %v", err)
		}
	})
	t.Run("not metadata", func(t *testing.T) {
		page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("<html><body>Sign in to the portal</body></html>"))
		}))
		t.Cleanup(page.Close)
		h := newHarness(t, func(c *Config) { c.MetadataURL = page.URL })
		if err := begin(h); codeOf(err) != idp.CodeMisconfigured {
			t.Fatalf("Begin with a page for metadata: %v", err)
		}
	})
}

// TestMetadataValidUntil: the metadata's effective validUntil is the
// earliest of every element that vouches for the IdP: each enclosing
// EntitiesDescriptor however deeply nested, the EntityDescriptor and its
// IDPSSODescriptor. Past it, sign-in (and the SLO endpoint, which verifies
// with the same keys) refuses the metadata as expired, and `caddy sso check`
// (Probe) reports the same date.
func TestMetadataValidUntil(t *testing.T) {
	srv, err := samltest.NewServer("https://idp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	srv.SetMetadataValidity(48 * time.Hour)
	good, err := srv.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	past, soon, later := now.Add(-time.Hour), now.Add(time.Hour), now.Add(2*time.Hour)
	attr := func(vu time.Time) string {
		if vu.IsZero() {
			return ""
		}
		return ` validUntil="` + vu.UTC().Format(time.RFC3339) + `"`
	}
	validUntilAttr := regexp.MustCompile(` validUntil="[^"]*"`)
	// entity is the IdP's EntityDescriptor with validUntil vu (none when
	// zero) and its IDPSSODescriptor's set to role (none when zero).
	entity := func(vu, role time.Time) string {
		s := validUntilAttr.ReplaceAllString(string(good), "")
		s = strings.Replace(s, "<EntityDescriptor ", "<EntityDescriptor"+attr(vu)+" ", 1)
		return strings.Replace(s, "<IDPSSODescriptor ", "<IDPSSODescriptor"+attr(role)+" ", 1)
	}
	entities := func(vu time.Time, inner string) string {
		return `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"` + attr(vu) + `>` + inner + `</EntitiesDescriptor>`
	}
	var none time.Time
	cases := []struct {
		name string
		doc  string
		want time.Time // zero: none
	}{
		{name: "none", doc: entity(none, none), want: none},
		{name: "EntityDescriptor", doc: entity(later, none), want: later},
		{name: "IDPSSODescriptor earlier", doc: entity(later, soon), want: soon},
		{name: "IDPSSODescriptor past", doc: entity(later, past), want: past},
		{name: "IDPSSODescriptor only", doc: entity(none, past), want: past},
		{name: "aggregate past", doc: entities(past, entity(later, none)), want: past},
		{name: "nested: outer past", doc: entities(past, entities(none, entity(later, none))), want: past},
		{name: "nested: outer earlier than inner", doc: entities(soon, entities(later, entity(later, none))), want: soon},
		{name: "nested: inner past", doc: entities(later, entities(past, entity(none, none))), want: past},
		{name: "nested: three levels, outermost past", doc: entities(past, entities(soon, entities(later, entity(later, later)))), want: past},
		{name: "nested: IDPSSODescriptor past", doc: entities(later, entities(soon, entity(later, past))), want: past},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			md, err := parseIdPMetadata([]byte(tc.doc), "", now)
			if err != nil {
				t.Fatal(err)
			}
			if !md.validUntil.Equal(tc.want) {
				t.Fatalf("validUntil = %v, want %v", md.validUntil, tc.want)
			}
			r, err := Probe(context.Background(), nil, MetadataSource{XML: []byte(tc.doc)}, "")
			if err != nil || !r.ValidUntil.Equal(tc.want) {
				t.Fatalf("Probe: validUntil %v, want %v (%v)", r.ValidUntil, tc.want, err)
			}
			p, err := New(Config{Name: "x", MetadataXML: []byte(tc.doc), SPKeys: []KeyPair{testKeys()[0]}})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			_, err = p.signInMetadata(context.Background())
			expired := !tc.want.IsZero() && tc.want.Before(time.Now())
			if expired != (codeOf(err) == idp.CodeMisconfigured) || !expired && err != nil {
				t.Fatalf("expired = %v, signInMetadata: %v", expired, err)
			}
		})
	}
	// validUntil is the metadata's expiration time (saml-metadata
	// §2.3.2): sign-in trusts it until then, not at it.
	t.Run("at the validUntil instant", func(t *testing.T) {
		var clock atomic.Pointer[time.Time]
		clock.Store(&now)
		p, err := New(Config{Name: "x", MetadataXML: []byte(entity(later, none)), SPKeys: []KeyPair{testKeys()[0]},
			Now: func() time.Time { return *clock.Load() }})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		for _, tc := range []struct {
			at      time.Time
			expired bool
		}{
			{later.Add(-time.Nanosecond), false},
			{later, true},
			{later.Add(time.Second), true},
		} {
			clock.Store(&tc.at)
			_, err := p.signInMetadata(context.Background())
			if tc.expired != (codeOf(err) == idp.CodeMisconfigured) || !tc.expired && err != nil {
				t.Errorf("at validUntil%+v: signInMetadata = %v, want expired %v", tc.at.Sub(later), err, tc.expired)
			}
		}
	})
}

// TestNextRefresh: the wait before the next metadata load is
// MetadataRefresh; after consecutive failures minRetry doubled per failure
// after the first, capped at MetadataRefresh; never past the metadata's
// validUntil; and never less than minRetry, even when validUntil is closer
// or has passed.
func TestNextRefresh(t *testing.T) {
	at := time.Now().Truncate(time.Second)
	p, err := New(Config{Name: "test", MetadataURL: "https://idp.example/metadata", SPKeys: []KeyPair{testKeys()[0]},
		MetadataRefresh: time.Hour, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	p.minRetry = time.Minute
	for _, tc := range []struct {
		name       string
		failures   int
		validUntil time.Duration // from at; 0: metadata without validUntil
		want       time.Duration
	}{
		{"no failure", 0, 0, time.Hour},
		{"first failure", 1, 0, time.Minute},
		{"second failure", 2, 0, 2 * time.Minute},
		{"third failure", 3, 0, 4 * time.Minute},
		{"many failures, capped", 30, 0, time.Hour},
		{"validUntil before the refresh", 0, 10 * time.Minute, 10 * time.Minute},
		{"validUntil after the refresh", 0, 2 * time.Hour, time.Hour},
		{"validUntil closer than minRetry", 0, 10 * time.Second, time.Minute},
		{"validUntil passed", 0, -time.Hour, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := &idpMetadata{}
			if tc.validUntil != 0 {
				md.validUntil = at.Add(tc.validUntil)
			}
			p.md.Store(md)
			if got := p.nextRefresh(tc.failures); got != tc.want {
				t.Fatalf("nextRefresh(%d) = %v, want %v", tc.failures, got, tc.want)
			}
		})
	}
}

// TestMetadataRefreshBackoffResets: after failed loads the refresher
// retries with backoff; once a load succeeds it waits MetadataRefresh
// again, rather than keep fetching at the backoff's pace.
func TestMetadataRefreshBackoffResets(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MetadataRefresh = time.Hour })
	h.idp.SetUnavailable(true)
	h.p.startRefresh()
	waitFor(t, "failed loads", func() bool { return h.idp.Requests(samltest.PathMetadata) >= 2 })
	h.idp.SetUnavailable(false)
	waitFor(t, "a load after the IdP came back", func() bool { return h.p.md.Load() != nil })
	n := h.idp.Requests(samltest.PathMetadata)
	time.Sleep(200 * time.Millisecond) // twenty minRetry
	if m := h.idp.Requests(samltest.PathMetadata); m != n {
		t.Fatalf("%d metadata fetches within 200ms of a good load, want none before MetadataRefresh (1h)", m-n)
	}
}
