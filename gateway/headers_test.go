package gateway

import (
	"net/http"
	"slices"
	"testing"
)

// TestStripOwnCookies checks what the upstream gets of the Cookie header:
// never one of ours (session or sign-in flow, in any position, on any
// line), everything else unchanged.
func TestStripOwnCookies(t *testing.T) {
	const tok = "sso_session=TOKEN"
	tests := []struct {
		name string
		in   []string
		want []string // nil: no Cookie header at all
	}{
		{"no cookie header", nil, nil},
		{"only ours", []string{tok}, nil},
		{"only ours, secure name", []string{"__Host-sso_session=TOKEN"}, nil},
		{"ours first", []string{tok + "; theme=dark; lang=en"}, []string{"theme=dark; lang=en"}},
		{"ours last", []string{"theme=dark; lang=en; " + tok}, []string{"theme=dark; lang=en"}},
		{"ours between", []string{"theme=dark; " + tok + "; lang=en"}, []string{"theme=dark; lang=en"}},
		{"ours at both ends", []string{tok + "; theme=dark;lang=en; sso_flow_abc=x"}, []string{"theme=dark;lang=en"}},
		{"several of ours between", []string{"a=1;" + tok + ";__Secure-sso_flow_x=2; b=2 ;sso_flow_y=3;c=3"}, []string{"a=1; b=2; c=3"}},
		{"spaces around the name", []string{"a=1; sso_session =TOKEN ;b=2"}, []string{"a=1; b=2"}},
		{"not ours: lookalikes", []string{"my_sso_session=1; sso_sessions=2; x=sso_session"}, []string{"my_sso_session=1; sso_sessions=2; x=sso_session"}},
		{"app cookie keeps its spelling", []string{"a=1;b=2 ; " + tok}, []string{"a=1;b=2"}},
		{"several lines", []string{"a=1", tok, "b=2; " + tok, "c=3"}, []string{"a=1", "b=2", "c=3"}},
		{"empty line kept", []string{"", "a=1"}, []string{"", "a=1"}},
		{"only separators and ours", []string{" ; " + tok + " ;; "}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Accept": {"*/*"}}
			if tt.in != nil {
				h["Cookie"] = slices.Clone(tt.in)
			}
			StripOwnCookies(h)
			got, ok := h["Cookie"]
			if tt.want == nil {
				if ok {
					t.Fatalf("Cookie = %q, want no Cookie header", got)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Cookie = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestStripOwnCookiesAllocations: the usual request (our session cookie at
// either end of the line, or no cookie of ours) costs no allocation.
func TestStripOwnCookiesAllocations(t *testing.T) {
	for _, line := range []string{"theme=dark; lang=en", "theme=dark; sso_session=TOKEN", "sso_session=TOKEN; lang=en", "sso_session=TOKEN"} {
		lines := []string{line}
		h := http.Header{"Cookie": lines}
		allocs := testing.AllocsPerRun(100, func() {
			lines[0] = line
			h["Cookie"] = lines[:1]
			StripOwnCookies(h)
		})
		if allocs != 0 {
			t.Errorf("%q: %v allocations, want 0", line, allocs)
		}
	}
}
