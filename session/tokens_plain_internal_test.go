package session

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// TestTokensFromPlainRefusesMalformed: a plaintext whose token lengths
// run past its end, with bytes after the expiry, or inflating past
// maxTokensPlain (a decompression bomb), is refused as a blob that does
// not open (errBadTokens), not read (nor a panic).
func TestTokensFromPlainRefusesMalformed(t *testing.T) {
	var c compressors
	good := appendToken(appendToken(appendToken(nil, "id"), "at"), "rt")
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"token length past the end", binary.AppendUvarint([]byte{tokenText}, 1<<20)},
		{"bytes after the expiry", append(binary.AppendVarint(good, 0), 7)},
		{"inflates past maxTokensPlain", binary.AppendVarint(appendToken(appendToken(appendToken(nil, strings.Repeat("a", maxTokensPlain)), "at"), "rt"), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, err := c.compress(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			var got *Tokens
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = errors.New("panic")
					}
				}()
				got, _, err = tokensFromPlain(plain)
			}()
			if !errors.Is(err, errBadTokens) {
				t.Errorf("got %+v, %v; want errBadTokens", got, err)
			}
		})
	}
}
