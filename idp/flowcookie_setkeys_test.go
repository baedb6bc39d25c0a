package idp_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestFlowCookiesSetKeys: SetKeys replaces the keys of flow cookies in
// use (gateway.FlowKeys does, when the store's change): from then on the
// new key seals, the previous ones given open and none seals, a key given
// before and not again opens nothing, and a bad key (or previous key)
// changes nothing.
// Requests sealing and opening meanwhile see one set of keys or the other
// (run with -race).
func TestFlowCookiesSetKeys(t *testing.T) {
	now := time.Now()
	k0, k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32)
	f := newFlows(t, k0, true, &now)
	old := save(t, f, "old", flowState{Nonce: "n0"}, 0)

	if err := f.SetKeys(k1, k0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := take(f, "old", old); err != nil {
		t.Errorf("a cookie of the previous key: %v", err)
	}
	fresh := save(t, f, "fresh", flowState{Nonce: "n1"}, 0)
	if _, _, err := take(newFlows(t, k1, true, &now), "fresh", fresh); err != nil {
		t.Errorf("sealed after SetKeys, opened with the new key alone: %v", err)
	}

	if err := f.SetKeys(k2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := take(f, "old", old); !errors.Is(err, idp.ErrFlowInvalid) {
		t.Errorf("a cookie of a key no longer given: %v, want ErrFlowInvalid", err)
	}
	if err := f.SetKeys(k0[:16]); err == nil {
		t.Error("a 16-byte key was taken")
	}
	// A bad previous key fails the whole SetKeys, not that key alone:
	// gateway.FlowKeys keeps the keys it has on an error.
	if err := f.SetKeys(k1, k0[:16]); err == nil {
		t.Error("a 16-byte previous key was taken")
	}
	if _, _, err := take(newFlows(t, k2, true, &now), "after", save(t, f, "after", flowState{}, 0)); err != nil {
		t.Errorf("after a refused SetKeys, the keys before it changed: %v", err)
	}

	// Both keys open all along: one seals, the other is the previous.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				rec := httptest.NewRecorder()
				if err := f.Save(rec, f.req(), "busy", flowState{Nonce: "n"}, time.Minute, http.SameSiteLaxMode); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := take(f, "busy", rec.Result().Cookies()...); err != nil {
					t.Errorf("while the keys change: %v", err)
					return
				}
			}
		})
	}
	for i := range 200 {
		if err := f.SetKeys([][]byte{k1, k2}[i%2], [][]byte{k2, k1}[i%2]); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}
