package gateway

import (
	"context"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// signerEnv is a session Manager on a clock of its own over a bolt store,
// a signer and one site.
type signerEnv struct {
	t     *testing.T
	db    *bolt.DB
	ns    atomic.Int64
	m     *session.Manager
	s     *IdentitySigner
	o     Origin
	u     *store.User
	token string
}

func newSignerEnv(t *testing.T) *signerEnv {
	t.Helper()
	db := backendtest.OpenBolt(t)
	e := &signerEnv{t: t, db: db}
	e.ns.Store(time.Now().UnixNano())
	e.m = session.New(db, session.Config{}, nil, func() time.Time { return time.Unix(0, e.ns.Load()) })
	e.u = &store.User{Email: "ada@example.com", Groups: []string{"eng"}, Active: true, Source: store.SourceJIT}
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(e.u) }); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.token, _, err = e.m.Create(context.Background(), e.u, "okta", store.LogoutInfo{}); err != nil {
		t.Fatal(err)
	}
	e.s = NewIdentitySigner(SignerConfig{})
	site, _ := url.Parse("https://app.example.com")
	e.o = Origin{Site: idp.Origin{Scheme: site.Scheme, Host: site.Host}, Vouched: true}
	return e
}

func (e *signerEnv) resolve() *session.Identity {
	e.t.Helper()
	id, err := e.m.Resolve(context.Background(), e.token)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *signerEnv) sign(id *session.Identity) string {
	e.t.Helper()
	v, err := e.s.Token(context.Background(), e.db, id, e.o)
	if err != nil {
		e.t.Fatal(err)
	}
	return v[0]
}

// TestIdentityJWTReusedAcrossCacheReload: a token "is signed once per
// session and re-signed when less than half its lifetime remains"
// (README). The session cache builds a new Identity at each re-read of
// the store (CacheTTL, 30 s): the token signed for the first still serves
// the next, which says the same, and is then served to it without a
// comparison (the entry now holds it).
func TestIdentityJWTReusedAcrossCacheReload(t *testing.T) {
	e := newSignerEnv(t)
	id1 := e.resolve()
	t1 := e.sign(id1)
	e.ns.Add(int64(session.DefaultCacheTTL + time.Second))
	id2 := e.resolve()
	if id1 == id2 {
		t.Fatal("the session cache did not build a new Identity: the test means nothing")
	}
	if t2 := e.sign(id2); t2 != t1 {
		t.Errorf("a new identity token was signed %v after the first (ttl 5m) for an unchanged identity", session.DefaultCacheTTL+time.Second)
	}
	if v, ok := e.s.cache.Load(id2.SessionHash); !ok || v.(*signedToken).id != id2 {
		t.Error("the cached token is not kept under the new Identity: each request would compare its claims")
	}
	if n := cacheLen(e.s); n != 1 {
		t.Errorf("%d cached tokens for one session, want 1", n)
	}
}

// TestIdentityJWTResignedWhenClaimsChange: a new group (or any claim) gets
// a new token at the next request that sees it, not half a token lifetime
// later.
func TestIdentityJWTResignedWhenClaimsChange(t *testing.T) {
	e := newSignerEnv(t)
	t1 := e.sign(e.resolve())
	e.u.Groups = []string{"eng", "admins"}
	if err := e.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(e.u) }); err != nil {
		t.Fatal(err)
	}
	e.m.ForgetUser(e.u.ID)
	id2 := e.resolve()
	t2 := e.sign(id2)
	if t2 == t1 {
		t.Fatal("the token signed before the user's groups changed is still handed out")
	}
	// And the same for another site: the token says which one it is for.
	other := e.o
	other.Site.Host = "other.example.com"
	v, err := e.s.Token(context.Background(), e.db, id2, other)
	if err != nil {
		t.Fatal(err)
	}
	if v[0] == t2 {
		t.Error("the token signed for one site is handed out on another")
	}
}

// TestSameClaims: every claim, and the session's end, counts.
func TestSameClaims(t *testing.T) {
	ident := func(edit func(*session.Identity)) *session.Identity {
		id := &session.Identity{UserID: "u1", Email: "a@x", FirstName: "A", LastName: "L", Groups: []string{"g1", "g2"},
			IdP: "okta", SessionHash: "h", Expires: time.Unix(1000, 0)}
		if edit != nil {
			edit(id)
		}
		return id
	}
	edits := map[string]func(*session.Identity){
		"user":      func(id *session.Identity) { id.UserID = "u2" },
		"email":     func(id *session.Identity) { id.Email = "b@x" },
		"first":     func(id *session.Identity) { id.FirstName = "B" },
		"last":      func(id *session.Identity) { id.LastName = "M" },
		"groups":    func(id *session.Identity) { id.Groups = []string{"g1"} },
		"group":     func(id *session.Identity) { id.Groups = []string{"g1", "g3"} },
		"idp":       func(id *session.Identity) { id.IdP = "entra" },
		"expires":   func(id *session.Identity) { id.Expires = id.Expires.Add(-time.Minute) },
		"no groups": func(id *session.Identity) { id.Groups = nil },
	}
	base := ident(nil)
	if !sameClaims(base, ident(nil)) {
		t.Error("equal identities differ")
	}
	for name, edit := range edits {
		if sameClaims(base, ident(edit)) {
			t.Errorf("%s changed, claims the same", name)
		}
	}
}

// TestIdentityJWTCacheSwept: a session that ends (or goes unused) leaves
// the cache once its token has expired, at the next sweep.
func TestIdentityJWTCacheSwept(t *testing.T) {
	e := newSignerEnv(t)
	e.sign(e.resolve())
	// Age the entry past its expiry and the sweep's interval.
	v, _ := e.s.cache.Load(e.resolve().SessionHash)
	t1 := v.(*signedToken)
	old := *t1
	old.expires, old.refresh = time.Now().Add(-time.Second).UnixNano(), time.Now().Add(-time.Second).UnixNano()
	e.s.cache.Store(t1.id.SessionHash, &old)
	e.s.lastSweep.Store(time.Now().Add(-DefaultIdentityJWTTTL).UnixNano())
	// Another session's sign-in triggers the sweep.
	tok, _, err := e.m.Create(context.Background(), e.u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.m.Resolve(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	e.sign(id)
	if _, ok := e.s.cache.Load(t1.id.SessionHash); ok {
		t.Error("an expired session's token is still cached after a sweep")
	}
	if n := cacheLen(e.s); n != 1 {
		t.Errorf("%d cached tokens, want 1", n)
	}
}

func cacheLen(s *IdentitySigner) int {
	n := 0
	s.cache.Range(func(any, any) bool { n++; return true })
	return n
}

// The admin API's view of sessions is the running app's: Live judges them
// by its Manager (account.SessionJudge), with the config it runs.
var _ account.SessionJudge = (*Live)(nil)

func TestLiveJudgesSessions(t *testing.T) {
	e := newSignerEnv(t)
	s := &store.Session{Hash: session.Hash(e.token), Created: time.Unix(0, e.ns.Load()), LastSeen: time.Unix(0, e.ns.Load())}
	s.Expires = s.Created.Add(8 * time.Hour)
	l := NewLive()
	if end, ended := l.SessionEnds(s); ended || !end.Equal(s.Expires) {
		t.Errorf("before the app runs: end %v ended %v, want the stored end, not ended", end, ended)
	}
	m := session.New(e.db, session.Config{Lifetime: time.Hour}, nil, func() time.Time { return time.Unix(0, e.ns.Load()) })
	l.Set(&Runtime{Store: e.db, Sessions: m})
	if end, ended := l.SessionEnds(s); ended || !end.Equal(s.Created.Add(time.Hour)) {
		t.Errorf("running (lifetime 1h): end %v ended %v, want created+1h, not ended", end, ended)
	}
	e.ns.Add(int64(time.Hour))
	if _, ended := l.SessionEnds(s); !ended {
		t.Error("running: a session past the app's lifetime is not ended")
	}
}

// TestIdentityTokenNotReSignedForAnotherForwardedSpelling: the cache keeps
// a token for the site it names (iss, aud); the same site reached through
// another spelling of X-Forwarded-Host (an appending proxy's list), or
// none, is the same site and gets the same token.
func TestIdentityTokenNotReSignedForAnotherForwardedSpelling(t *testing.T) {
	e := newSignerEnv(t)
	id := e.resolve()
	a := e.sign(id)
	e.o.Forwarded = "app.example.com, app.example.com"
	b := e.sign(id)
	e.o.Forwarded = ""
	if c := e.sign(id); a != b || b != c {
		t.Error("the same session on the same site got a new token for another spelling of X-Forwarded-Host")
	}
}

// TestIdentityJWTIssuerAndAudience: the token names the site it was
// signed on as iss and, unless an audience is configured, as aud, so that
// an app that checks aud refuses a token another site's upstream received.
func TestIdentityJWTIssuerAndAudience(t *testing.T) {
	tests := []struct {
		name     string
		audience string
		want     string // "" means the site's origin
	}{
		{"no audience: the site", "", ""},
		{"configured audience", "billing-api", "billing-api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSignerEnv(t)
			e.s = NewIdentitySigner(SignerConfig{Audience: tt.audience})
			site := e.o.Site.String()
			want := tt.want
			if want == "" {
				want = site
			}
			var c jwt.Claims
			unverifiedClaims(t, e.sign(e.resolve()), &c)
			if c.Issuer != site {
				t.Errorf("iss = %q, want the site %q", c.Issuer, site)
			}
			if len(c.Audience) != 1 || c.Audience[0] != want {
				t.Errorf("aud = %q, want [%q]", c.Audience, want)
			}
		})
	}
}

// TestIdentityJWTSignedAgainAtHalfItsLife: a cached token is served until
// half its lifetime has passed and signed again from then on, so the
// upstream never gets one about to expire (IdentitySigner).
func TestIdentityJWTSignedAgainAtHalfItsLife(t *testing.T) {
	e := newSignerEnv(t)
	e.s = NewIdentitySigner(SignerConfig{Now: func() time.Time { return time.Unix(0, e.ns.Load()) }})
	first := e.sign(e.resolve())

	e.ns.Add(int64(DefaultIdentityJWTTTL/2 - time.Second))
	if again := e.sign(e.resolve()); again != first {
		t.Fatalf("the token was signed again %v after the first, before half its lifetime (%v) had passed", DefaultIdentityJWTTTL/2-time.Second, DefaultIdentityJWTTTL)
	}

	e.ns.Add(int64(2 * time.Second))
	later := e.sign(e.resolve())
	if later == first {
		t.Fatalf("%v after it was signed (lifetime %v), the token is still served from the cache", DefaultIdentityJWTTTL/2+time.Second, DefaultIdentityJWTTTL)
	}
	var c1, c2 jwt.Claims
	unverifiedClaims(t, first, &c1)
	unverifiedClaims(t, later, &c2)
	if !c2.Expiry.Time().After(c1.Expiry.Time()) {
		t.Errorf("the token signed again expires at %v, not after the first's %v", c2.Expiry.Time(), c1.Expiry.Time())
	}
}
