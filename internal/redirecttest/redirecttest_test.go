package redirecttest

import "testing"

// The list must arrive whole: a truncated copy would let the redirect
// tests pass on a fraction of the payloads.
func TestPayloadsComplete(t *testing.T) {
	p := Payloads()
	if len(p) != 835 {
		t.Fatalf("got %d payloads, want 835", len(p))
	}
	if p[0] != "/%09/example.com" {
		t.Fatalf("first payload %q", p[0])
	}
}
