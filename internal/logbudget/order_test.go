package logbudget

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// checkOrder fails t unless b's time order holds exactly the keys of its
// map, oldest first, linked both ways.
func checkOrder(t *testing.T, b *Budget) {
	t.Helper()
	n := 0
	var prev *entry
	for e := b.oldest; e != nil; prev, e = e, e.next {
		n++
		if e.prev != prev {
			t.Fatalf("entry %q: prev link broken", e.key)
		}
		if b.keys[e.key] != e {
			t.Fatalf("entry %q in the time order is not the map's", e.key)
		}
		if prev != nil && prev.at.After(e.at) {
			t.Fatalf("entry %q (%v) after %q (%v): out of time order", e.key, e.at, prev.key, prev.at)
		}
	}
	if b.newest != prev || n != len(b.keys) {
		t.Fatalf("time order has %d entries ending at %v, the map %d", n, b.newest, len(b.keys))
	}
}

// TestFullBudgetNewKeyLooksAtOneEntry: once MaxKeys fresh keys are held,
// each line of yet another key (a refusal from a new address, which anyone
// can send 68 a second from an IPv6 /64 to keep the budget full) looks at
// one entry to learn that none has expired, not at all MaxKeys of them
// under the budget's mutex; and the key still goes to DEBUG, counted.
func TestFullBudgetNewKeyLooksAtOneEntry(t *testing.T) {
	var b Budget
	t0 := time.Unix(1_700_000_000, 0)
	for i := range MaxKeys {
		b.Take("held-"+strconv.Itoa(i), t0)
	}
	const n = 1000
	for i := range n {
		if b.Take("new-"+strconv.Itoa(i), t0.Add(time.Second)) {
			t.Fatalf("new key %d went out at its level with %d fresh keys held", i, MaxKeys)
		}
	}
	if b.looked > n {
		t.Errorf("%d new keys with the budget full of fresh ones looked at %d entries (%.0f each); want at most one each",
			n, b.looked, float64(b.looked)/n)
	}
	if b.foldedLines != n || len(b.foldedKeys) != n {
		t.Errorf("folded %d lines of %d keys, want %d of %d", b.foldedLines, len(b.foldedKeys), n, n)
	}
	checkOrder(t, &b)
}

// TestForgetTakesExpiredOffTheFront: keys taken a second apart expire one
// by one; each new key past MaxKeys forgets exactly the keys whose window
// has ended, looking at those and one more.
func TestForgetTakesExpiredOffTheFront(t *testing.T) {
	var b Budget
	t0 := time.Unix(1_700_000_000, 0)
	for i := range MaxKeys {
		b.Take("k"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	b.Take("k0", t0.Add(time.Second)) // one DEBUG line, carried when k0 is forgotten
	for i := range 100 {
		now := t0.Add(Window + time.Duration(i)*time.Millisecond)
		before := b.looked
		if !b.Take("new-"+strconv.Itoa(i), now) {
			t.Fatalf("new key %d at %v: no room, though k%d's window has ended", i, now.Sub(t0), i)
		}
		if _, kept := b.keys["k"+strconv.Itoa(i)]; kept {
			t.Fatalf("k%d kept past its window", i)
		}
		if _, kept := b.keys["k"+strconv.Itoa(i+1)]; !kept {
			t.Fatalf("k%d forgotten before its window ended", i+1)
		}
		if d := b.looked - before; d != 2 {
			t.Fatalf("new key %d looked at %d entries, want 2 (the one forgotten, the next)", i, d)
		}
	}
	if b.foldedLines != 0 || b.foldedKeys != nil {
		t.Errorf("k0's DEBUG line still folded (%d lines, %v): the first new key's line should have carried it", b.foldedLines, b.foldedKeys)
	}
	checkOrder(t, &b)
}

// TestTimeOrderFollowsTakes: a key that goes out again moves to the newest
// end, and times that come out of order (each caller takes its time before
// the lock) are put in order, so that forget drops exactly the keys whose
// window has ended, as a scan of them all would.
func TestTimeOrderFollowsTakes(t *testing.T) {
	var b Budget
	t0 := time.Unix(1_700_000_000, 0)
	b.Take("late", t0.Add(30*time.Second))
	b.Take("early", t0)
	b.Take("renewed", t0.Add(-Window))
	b.Take("renewed", t0.Add(10*time.Second)) // its window ended: out again, now
	for i := 3; i < MaxKeys; i++ {
		b.Take("filler-"+strconv.Itoa(i), t0.Add(40*time.Second))
	}
	checkOrder(t, &b)
	if b.oldest.key != "early" || b.oldest.next.key != "renewed" || b.oldest.next.next.key != "late" {
		t.Fatalf("time order starts %q, %q, %q; want early, renewed, late", b.oldest.key, b.oldest.next.key, b.oldest.next.next.key)
	}
	b.Take("new", t0.Add(Window+20*time.Second))
	for key, kept := range map[string]bool{"early": false, "renewed": false, "late": true, "new": true} {
		if _, ok := b.keys[key]; ok != kept {
			t.Errorf("%s kept %v, want %v", key, ok, kept)
		}
	}
	checkOrder(t, &b)
}

// BenchmarkTakeFull: a line of a new key with MaxKeys fresh keys held
// (every refusal from yet another address while the budget is full) costs
// what one with room does (BenchmarkTakeRoom), not a walk through the keys.
func BenchmarkTakeFull(b *testing.B) {
	var bud Budget
	t0 := time.Unix(1_700_000_000, 0)
	for i := range MaxKeys {
		bud.Take(fmt.Sprintf("idp\x00flow_missing\x002001:db8::%x", i), t0)
	}
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("idp\x00flow_missing\x002001:db8:1::%x", i)
	}
	now := t0.Add(time.Second)
	i := 0
	for b.Loop() {
		bud.Take(keys[i&(len(keys)-1)], now)
		i++
	}
}

// BenchmarkTakeRoom: lines of keys already held, with room to spare.
func BenchmarkTakeRoom(b *testing.B) {
	var bud Budget
	t0 := time.Unix(1_700_000_000, 0)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("idp\x00flow_missing\x002001:db8::%x", i)
	}
	i := 0
	for b.Loop() {
		bud.Take(keys[i%len(keys)], t0)
		i++
	}
}
