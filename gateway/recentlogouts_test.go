package gateway

import (
	"strconv"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/session"
)

// TestRecentLogouts: a sign-out is recalled by its cookie within the
// window and not after; every new one drops the expired (none is held long
// after), and a burst beyond the bound is not remembered.
func TestRecentLogouts(t *testing.T) {
	var l recentLogouts
	t0 := time.Unix(1_800_000_000, 0)
	e := &endedSignIn{idp: "okta"}
	l.remember("tok", e, t0)
	if l.recall("tok", t0.Add(recentLogoutWindow)) != e {
		t.Error("not recalled within the window")
	}
	if l.recall("tok", t0.Add(recentLogoutWindow+time.Second)) != nil {
		t.Error("recalled after the window")
	}
	if l.recall("other", t0) != nil {
		t.Error("another cookie recalled a sign-out")
	}

	for i := range maxRecentLogouts {
		l.remember(strconv.Itoa(i), e, t0.Add(time.Second))
	}
	if len(l.ended) != maxRecentLogouts {
		t.Fatalf("%d entries, want the bound %d", len(l.ended), maxRecentLogouts)
	}
	l.remember("late", e, t0.Add(2*time.Second))
	if l.recall("late", t0.Add(2*time.Second)) != nil || len(l.ended) > maxRecentLogouts {
		t.Errorf("past the bound with nothing expired: %d entries, the newest kept: %v", len(l.ended), l.recall("late", t0.Add(2*time.Second)) != nil)
	}
	later := t0.Add(recentLogoutWindow + 2*time.Second)
	l.remember("later", e, later)
	if l.recall("later", later) != e || len(l.ended) != 1 {
		t.Errorf("expired entries not dropped for a new one: %d entries", len(l.ended))
	}
	l.remember("next", e, later.Add(recentLogoutWindow+time.Second))
	if _, kept := l.ended[session.Hash("later")]; kept {
		t.Error("an expired entry outlived the next sign-out")
	}
}
