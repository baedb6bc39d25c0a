package gateway

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// FuzzSessionCookies feeds the cookie helpers of the hot path arbitrary
// Cookie headers (several header lines when the input has newlines).
// Properties:
//   - after StripOwnCookies, no parser finds one of our cookies: not
//     CookieValues (what the gateway authenticates with), not net/http's
//     (what a Go upstream reads), not a split on ";" and "=" (what most
//     other frameworks do);
//   - every cookie of the app's own that net/http reads from the original
//     header, it still reads after stripping, in the same order;
//   - lines without our cookies are forwarded byte for byte, and stripping
//     twice changes nothing more;
//   - the first value CookieValues finds is the one net/http finds when
//     the cookie's first copy is well-formed and not empty.
func FuzzSessionCookies(f *testing.F) {
	f.Add("theme=dark; " + SessionCookiePlain + "=tok; lang=en")
	f.Add(SessionCookieSecure + "=tok")
	f.Add("a=1; sso_flow_AbCdEfGhIjKlMnOpQrStUv=x; b=2\n" + SessionCookiePlain + "=\"tok\"")
	f.Add("__Secure-sso_flow_x=1;;  ; sso_session=; sso=1; sso_sessionx=2")
	f.Add(" sso_session =tok; c=3")
	f.Add("")
	f.Add(";")
	f.Add("session=a; sso_session_old=b; my_sso_session=c")

	f.Fuzz(func(t *testing.T, header string) {
		h := http.Header{"Cookie": strings.Split(header, "\n")}
		orig := slices.Clone(h["Cookie"])
		before := (&http.Request{Header: orig2header(orig)}).Cookies()

		for _, name := range []string{SessionCookiePlain, SessionCookieSecure} {
			var buf [MaxSessionCookies]string
			got := CookieValues(h, name, &buf)
			if c := firstPart(orig, name); c != nil && c.Value != "" && (len(got) == 0 || got[0] != c.Value) {
				t.Fatalf("CookieValues(%q) = %q, net/http reads %q first", name, got, c.Value)
			}
			for _, v := range got {
				if v == "" || strings.Contains(v, ";") {
					t.Fatalf("CookieValues(%q) = %q", name, got)
				}
			}
		}

		hadOwn := false
		for _, line := range orig {
			for _, part := range strings.Split(line, ";") {
				name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
				hadOwn = hadOwn || isOwnCookie(strings.TrimSpace(name))
			}
		}

		StripOwnCookies(h)
		lines := h["Cookie"]
		if !hadOwn && !slices.Equal(lines, orig) {
			t.Fatalf("no cookie of ours, yet the header changed: %q -> %q", orig, lines)
		}
		for _, name := range []string{SessionCookiePlain, SessionCookieSecure} {
			var buf [MaxSessionCookies]string
			if v := CookieValues(h, name, &buf); len(v) > 0 {
				t.Fatalf("after stripping, CookieValues(%q) = %q", name, v)
			}
		}
		after := (&http.Request{Header: orig2header(lines)}).Cookies()
		for _, c := range after {
			if isOwnCookie(c.Name) {
				t.Fatalf("after stripping, net/http reads our cookie %q from %q", c.Name, lines)
			}
		}
		for _, line := range lines {
			for _, part := range strings.Split(line, ";") {
				name, _, _ := strings.Cut(part, "=")
				if isOwnCookie(strings.TrimSpace(name)) {
					t.Fatalf("after stripping, %q is still in %q", name, line)
				}
			}
		}
		var kept []*http.Cookie
		for _, c := range before {
			if !isOwnCookie(c.Name) {
				kept = append(kept, c)
			}
		}
		if !subsequence(kept, after) {
			t.Fatalf("stripping lost the app's cookies: %v -> %v (header %q -> %q)", kept, after, orig, lines)
		}

		again := http.Header{"Cookie": slices.Clone(lines)}
		if lines == nil {
			again = http.Header{}
		}
		StripOwnCookies(again)
		if !slices.Equal(again["Cookie"], lines) {
			t.Fatalf("second strip changed %q to %q", lines, again["Cookie"])
		}
		if _, ok := h["Cookie"]; ok && len(lines) == 0 {
			t.Fatal("an empty Cookie header is forwarded")
		}
	})
}

func orig2header(lines []string) http.Header {
	if lines == nil {
		return http.Header{}
	}
	return http.Header{"Cookie": lines}
}

// firstPart returns the cookie net/http reads from the first part of the
// header that starts with name= (after trimming), or nil: CookieValues and
// net/http agree only when that first copy is one net/http accepts.
func firstPart(lines []string, name string) *http.Cookie {
	for _, line := range lines {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			if strings.HasPrefix(part, name+"=") {
				cs := (&http.Request{Header: http.Header{"Cookie": {part}}}).Cookies()
				if len(cs) == 1 && cs[0].Name == name {
					return cs[0]
				}
				return nil
			}
		}
	}
	return nil
}

// subsequence reports whether want appears in got in order (got may hold
// more).
func subsequence(want, got []*http.Cookie) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g.Name == want[i].Name && g.Value == want[i].Value {
			i++
		}
	}
	return i == len(want)
}
