package cli

import (
	"bytes"
	"slices"
	"testing"
)

// TestProgressWriter: a backup reports how much it has written each time
// another step of bytes has gone through, however the writes are cut.
func TestProgressWriter(t *testing.T) {
	var out bytes.Buffer
	var reports []int64
	p := &progressWriter{w: &out, every: 100, report: func(n int64) { reports = append(reports, n) }}
	for _, size := range []int{60, 60, 250, 10, 5} {
		if _, err := p.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	if want := []int64{120, 370}; !slices.Equal(reports, want) {
		t.Errorf("reports at %v, want %v", reports, want)
	}
	if out.Len() != 385 {
		t.Errorf("%d bytes passed on, want 385", out.Len())
	}
}
