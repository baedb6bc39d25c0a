package upstreamjwt

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// settle makes a caller's use of the keyring at its clock's time, and
// waits for the read of the store that starts in the background, if any:
// what a request sees once the read after a rotation is done.
func settle(t *testing.T, k *Keyring) {
	t.Helper()
	if _, err := k.current(context.Background()); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	wait := k.loading
	k.mu.Unlock()
	if wait != nil {
		<-wait.done
	}
}

// awayStore is a store whose database may go away (every transaction
// fails, as PostgreSQL's do during a failover) or hang (gate: every
// Update waits for it to close). It counts the transactions tried.
type awayStore struct {
	store.Store
	away  atomic.Bool
	tries atomic.Int64
	gate  atomic.Pointer[chan struct{}]
}

var errAway = errors.New("postgres: begin: failed to connect: connection refused")

func (s *awayStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	s.tries.Add(1)
	if g := s.gate.Load(); g != nil {
		<-*g
	}
	if s.away.Load() {
		return errAway
	}
	return s.Store.Update(ctx, fn)
}

func (s *awayStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.away.Load() {
		return errAway
	}
	return s.Store.View(ctx, fn)
}

func openAway(t *testing.T) (*awayStore, *bolt.DB) {
	t.Helper()
	db := backendtest.OpenBolt(t)
	return &awayStore{Store: db}, db
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	p, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return p.Headers[0].KeyID
}

func publishedKids(t *testing.T, k *Keyring) []string {
	t.Helper()
	raw, err := k.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, jwk := range set.Keys {
		kids = append(kids, jwk.KeyID)
	}
	return kids
}

// TestRotationWhileStoreAway (docs/cluster.md, "Failover"): at a rotation
// the key that was the next one, read from the store and published all
// the previous period, signs although the store is away; the store is
// tried once per RetryInterval, not per token, and the new set is read
// once it is back. With no key of the period in memory (the store away a
// whole period) Sign fails with ErrUnavailable.
func TestRotationWhileStoreAway(t *testing.T) {
	st, _ := openAway(t)
	ctx := context.Background()
	const day = 24 * time.Hour
	now := time.Unix(1_800_000_000, 0)
	k, err := Open(ctx, st, day, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ids0, _ := k.KeyIDs(ctx) // current and next
	published := publishedKids(t, k)
	sign := func() (string, error) {
		tok, _, err := k.Sign(ctx, "https://app.example.com", "https://app.example.com", "u1", Claims{}, 5*time.Minute)
		return tok, err
	}

	st.away.Store(true)
	st.tries.Store(0)
	now = now.Add(day)
	tok, err := sign()
	if err != nil {
		t.Fatalf("Sign at the rotation while the store is away: %v; want a token of the next key %s, in memory and published", err, ids0[1])
	}
	if kid := kidOf(t, tok); kid != ids0[1] || !slices.Contains(published, kid) {
		t.Fatalf("signed with %s; want the previous period's next key %s, published then (%v)", kid, ids0[1], published)
	}
	if c, _, err := verifyWithJWKS(t, k, tok); err != nil || c.Subject != "u1" {
		t.Fatalf("the token does not verify with the JWKS served now: %v", err)
	}
	settle(t, k)
	for range 20 {
		if _, err := sign(); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.tries.Load(); n != 1 {
		t.Errorf("%d store transactions within RetryInterval of a failure; want 1", n)
	}
	now = now.Add(RetryInterval)
	settle(t, k)
	if n := st.tries.Load(); n != 2 {
		t.Errorf("%d store transactions after RetryInterval; want 2", n)
	}

	// The store is back: the new set is read, with a new next key.
	st.away.Store(false)
	now = now.Add(RetryInterval)
	settle(t, k)
	ids1, _ := k.KeyIDs(ctx)
	if len(ids1) != 3 || ids1[0] != ids0[0] || ids1[1] != ids0[1] || ids1[2] == ids0[1] {
		t.Fatalf("once the store is back: %v, want previous %s, current %s and a new next", ids1, ids0[0], ids0[1])
	}

	// Away for a whole period: nothing in memory signs the one after.
	st.away.Store(true)
	st.tries.Store(0)
	now = now.Add(2 * day)
	if _, err := sign(); !errors.Is(err, ErrUnavailable) || !errors.Is(err, errAway) {
		t.Fatalf("no key of the period in memory, store away: %v; want ErrUnavailable wrapping the store's error", err)
	}
	st.away.Store(false)
	if _, err := sign(); err != nil {
		t.Fatalf("store back: %v", err)
	}
}

// TestOpenStoreAway: a keyring that never read its keys has nothing to
// sign with while the store is away: ErrUnavailable, and no key is made
// that the store does not hold.
func TestOpenStoreAway(t *testing.T) {
	st, db := openAway(t)
	st.away.Store(true)
	if _, err := Open(context.Background(), st, time.Hour, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Open with the store away: %v; want ErrUnavailable", err)
	}
	k := New(st, time.Hour, nil)
	if _, err := k.JWKS(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("JWKS with the store away: %v; want ErrUnavailable", err)
	}
	if names := secretNames(t, db, secretRoot); len(names) != 0 {
		t.Fatalf("keys stored: %v", names)
	}
}

// TestRotationDoesNotWaitForStore: at a rotation no token waits for the
// store (a PostgreSQL failover can leave a connection hanging for
// seconds): the keyring reads the new set in the background, holding no
// lock the signing needs.
func TestRotationDoesNotWaitForStore(t *testing.T) {
	st, _ := openAway(t)
	ctx := context.Background()
	var now atomic.Int64
	now.Store(1_800_000_000)
	k, err := Open(ctx, st, time.Hour, func() time.Time { return time.Unix(now.Load(), 0) })
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	st.gate.Store(&gate)
	now.Add(3600)
	signed := make(chan error, 2)
	for range 2 { // the first starts the read, the second comes while it hangs
		go func() {
			_, _, err := k.Sign(ctx, "i", "a", "u1", Claims{}, time.Minute)
			signed <- err
		}()
	}
	for range 2 {
		select {
		case err := <-signed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			close(gate)
			t.Fatal("Sign at a rotation waits for a store that hangs")
		}
	}
	close(gate)
	settle(t, k)
	if ids, _ := k.KeyIDs(ctx); len(ids) != 3 {
		t.Fatalf("after the store answered: %v", ids)
	}
}

// TestInstancesShareTheKey (docs/cluster.md): an instance whose store is
// away at the rotation signs with the very key the others sign with, read
// from the store: the first stored wins, and its JWKS is theirs.
func TestInstancesShareTheKey(t *testing.T) {
	a, db := openAway(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	ka, err := Open(ctx, a, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := Open(ctx, db, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	a.away.Store(true)
	now = now.Add(time.Hour)
	ta, _, err := ka.Sign(ctx, "i", "a", "u1", Claims{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tb, _, err := kb.Sign(ctx, "i", "a", "u1", Claims{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, ta) != kidOf(t, tb) {
		t.Fatalf("instance with the store away signs with %s, the other with %s", kidOf(t, ta), kidOf(t, tb))
	}
	if _, _, err := verifyWithJWKS(t, kb, ta); err != nil {
		t.Fatalf("the other instance's JWKS does not verify the token: %v", err)
	}
	settle(t, ka)
}

// TestAbandonedRotationKeysDeleted (docs/operations.md): after
// key_rotation changes, the old value's keys go once no token they signed
// can be valid (a period after their last period ended), not never; those
// of a value another route still uses stay while published.
func TestAbandonedRotationKeysDeleted(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	if _, err := Open(ctx, db, week, clock); err != nil {
		t.Fatal(err)
	}
	weekly := secretNames(t, db, "upstream-jwt-es256/604800/")
	if len(weekly) != 2 {
		t.Fatalf("weekly keys: %v", weekly)
	}
	// The operator changes key_rotation to 24h.
	k, err := Open(ctx, db, day, clock)
	if err != nil {
		t.Fatal(err)
	}
	// A weekly key stays until a period after its own ended: till then an
	// instance still on the weekly schedule may have signed a token it
	// verifies (the next key's period had not begun when the value changed).
	const weekSecs = int64(week / time.Second)
	last := now.Unix()/weekSecs + 1 // the weekly next key's period
	for now.Unix()/weekSecs <= last+2 {
		var want []string
		for _, name := range weekly {
			p, _ := strconv.ParseInt(name[len("upstream-jwt-es256/604800/"):], 10, 64)
			if now.Unix()/weekSecs <= p+1 {
				want = append(want, name)
			}
		}
		if got := secretNames(t, db, "upstream-jwt-es256/604800/"); !slices.Equal(got, want) {
			t.Fatalf("at %v (weekly period %d): %v, want %v", now, now.Unix()/weekSecs, got, want)
		}
		now = now.Add(day)
		settle(t, k)
	}
	if got := secretNames(t, db, "upstream-jwt-es256/604800/"); len(got) != 0 {
		t.Fatalf("a period after the last weekly period ended: %v, want none", got)
	}
	for range 365 {
		now = now.Add(day)
		settle(t, k)
	}
	names := secretNames(t, db, secretRoot)
	daily := "upstream-jwt-es256/86400/"
	p := now.Unix() / 86400
	want := []string{daily + strconv.FormatInt(p-1, 10), daily + strconv.FormatInt(p, 10), daily + strconv.FormatInt(p+1, 10)}
	if !slices.Equal(names, want) {
		t.Errorf("a year after key_rotation changed, the store holds %v; want %v", names, want)
	}
}

// TestUnionStoreAway: a union of keyrings one of which has no key in
// memory while the store is away fails as that one's JWKS does
// (ErrUnavailable), wherever it stands: a set without its keys would tell
// a verifier, which caches it, that its route's tokens are forged.
func TestUnionStoreAway(t *testing.T) {
	ctx := context.Background()
	for _, unreadFirst := range []bool{false, true} {
		st, _ := openAway(t)
		read, err := Open(ctx, st, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		st.away.Store(true)
		unread := New(st, 24*time.Hour, nil)
		rings := []*Keyring{read, unread}
		if unreadFirst {
			slices.Reverse(rings)
		}
		if b, err := Union(ctx, rings...); !errors.Is(err, ErrUnavailable) {
			t.Errorf("unread keyring first %v: Union = %.80s, %v; want ErrUnavailable", unreadFirst, b, err)
		}
	}
}
