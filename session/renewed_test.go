package session

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"testing"
	"time"
)

// TestRenewedTimeSealedAfterTheStream: the time the IdP renewed the tokens
// is read back with them; it follows the DEFLATE stream, whose content is
// what a build without it wrote and reads, so such a build (a rolling
// upgrade, a downgrade) opens these blobs too; blobs without it read as
// renewed at an unknown time; a damaged one does not open.
func TestRenewedTimeSealedAfterTheStream(t *testing.T) {
	var c compressors
	tok := &Tokens{IDToken: "a.b.c", AccessToken: "at-1", RefreshToken: "rt-1", Expiry: time.Unix(1_800_000_060, 0)}
	at := time.Unix(1_800_000_000, 0)
	plain, err := c.renewedPlain(tok, at)
	if err != nil {
		t.Fatal(err)
	}
	got, gotAt, err := tokensFromPlain(plain)
	if err != nil || *got != *tok || !gotAt.Equal(at) {
		t.Fatalf("read back %v, %v, %v; want %v, %v", got, gotAt, err, tok, at)
	}

	before, err := c.tokensPlain(tok)
	if err != nil {
		t.Fatal(err)
	}
	inflate := func(p []byte) []byte {
		raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(p)))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	if !bytes.Equal(inflate(plain), inflate(before)) {
		t.Error("the DEFLATE stream differs from a blob without the time: older builds would not read it")
	}
	if got, gotAt, err := tokensFromPlain(before); err != nil || *got != *tok || !gotAt.IsZero() {
		t.Errorf("a blob without the time: %v, %v, %v; want the tokens and no time", got, gotAt, err)
	}
	for _, bad := range [][]byte{append(bytes.Clone(before), 0x80), append(bytes.Clone(plain), 0)} {
		if _, _, err := tokensFromPlain(bad); !errors.Is(err, errBadTokens) {
			t.Errorf("a damaged time: %v, want errBadTokens", err)
		}
	}
}
