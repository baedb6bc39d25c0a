package session

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestParseHashRefusesOtherLengths: a store key arrives from outside the
// process too (another instance's invalidation notice, which any role that
// can connect to the PostgreSQL database can send with pg_notify), so a key
// of any length but 64 hex digits is refused, never decoded into the
// 32-byte hash: 66 digits made hex.Decode panic in the listener goroutine
// and ended every instance.
func TestParseHashRefusesOtherLengths(t *testing.T) {
	good := Hash("abcdefghijABCDEFGHIJ0123456789-_abcdefghijk")
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{good, true},
		{strings.ToUpper(good), true},
		{"", false},
		{good[:63], false},
		{good[:62], false},
		{good + "0", false},
		{good + "00", false},
		{strings.Repeat("00", 64), false},
		{good[:63] + "g", false},
	} {
		h, ok := parseHash(tc.key)
		if ok != tc.want || ok && h.String() != strings.ToLower(tc.key) {
			t.Errorf("parseHash(%d digits %.8q…) = %v, %v; want %v", len(tc.key), tc.key, h, ok, tc.want)
		}
	}
}

// TestInvalidationWithMalformedKeys: a notice naming keys of any shape is
// applied without a panic (the listener has no recover: a panic there
// ends the process).
func TestInvalidationWithMalformedKeys(t *testing.T) {
	m := New(nil, Config{}, nil, nil)
	m.apply(store.Invalidation{Sessions: []string{strings.Repeat("0", 66), strings.Repeat("f", 1000), "", "zz"}})
}

// FuzzParseHash: parseHash never panics, and accepts exactly the keys
// String prints (in either letter case).
func FuzzParseHash(f *testing.F) {
	f.Add(Hash("abcdefghijABCDEFGHIJ0123456789-_abcdefghijk"))
	f.Add(strings.Repeat("0", 66))
	f.Add(strings.Repeat("0", 63))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := parseHash(s)
		if ok != (len(s) == 64 && strings.Trim(strings.ToLower(s), "0123456789abcdef") == "") {
			t.Fatalf("parseHash(%q) ok = %v", s, ok)
		}
		if ok && h.String() != strings.ToLower(s) {
			t.Fatalf("parseHash(%q) = %s", s, h)
		}
	})
}
