package gateway

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSignOutEndsTheSessionItCameWith: a sign-out ends the session the
// request comes with whether the request carries its cookie or an sso
// before this route's took the cookie (outer, a stricter route inside a
// protected site), and goes on to the IdP's logout. When the store cannot
// record the end (away, or refusing writes while it still answers reads),
// the answer is the 503 page that says so (signed out in this browser),
// and the session is refused here from then on all the same, so that a
// copy of the cookie does not go on working meanwhile. Each session it
// ends gets its "signed out" line; one whose write committed though the
// store could not say so at once (store.ErrOutcomeUnknown, the write run
// again finding it ended by it) says so (outcome_unknown), and only it.
func TestSignOutEndsTheSessionItCameWith(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outer   bool   // the session comes as outer, not as a cookie
		store   string // "", "away" (closed), "read-only" (writes fail), "answer lost" (the first write's commit unconfirmed)
		status  int
		lines   int // "signed out" lines
		unknown int // of them, with outcome_unknown
	}{
		{"cookie", false, "", http.StatusSeeOther, 2, 0},
		{"outer session", true, "", http.StatusSeeOther, 1, 0},
		{"cookie, store away", false, "away", http.StatusServiceUnavailable, 0, 0},
		{"outer session, store away", true, "away", http.StatusServiceUnavailable, 0, 0},
		{"cookie, store read-only", false, "read-only", http.StatusServiceUnavailable, 0, 0},
		{"outer session, store read-only", true, "read-only", http.StatusServiceUnavailable, 0, 0},
		{"cookie, commit answer lost", false, "answer lost", http.StatusSeeOther, 2, 1},
		{"outer session, commit answer lost", true, "answer lost", http.StatusSeeOther, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			ctx := context.Background()
			id, err := world.run.Sessions.Resolve(ctx, world.token) // now in the session cache
			if err != nil {
				t.Fatal(err)
			}
			// A second session's cookie comes along (another IdP's, say):
			// when the store fails on the first, the second ends here too.
			second := verifyTokenSession(t, world.run, "corp", nil)
			switch tc.store {
			case "away":
				if err := world.run.Store.Close(); err != nil {
					t.Fatal(err)
				}
			case "read-only":
				// Reads reach the store: the session must be refused by
				// this instance, not merely unreadable.
				world.run.Store = readOnlyStore{world.run.Store}
				world.run.Sessions = session.New(world.run.Store, session.Config{}, nil, nil)
			case "answer lost":
				lost := &commitAnswerLost{Store: world.run.Store}
				lost.armed.Store(true)
				world.run.Store = lost
				world.run.Sessions = session.New(world.run.Store, session.Config{}, nil, nil)
			}
			core, logs := observer.New(zapcore.InfoLevel)
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.New(core), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC,
				Provider: &logoutProvider{name: "corp"}}}}
			tokens, outer := []string{world.token, second}, (*session.Identity)(nil)
			if tc.outer {
				tokens, outer = nil, id
			}
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			w := httptest.NewRecorder()
			err = rt.ServeEndpoint(w, r, world.run, dutyOrigin(), tokens, outer)
			status := w.Code
			if pe, ok := AsPageError(err); ok {
				status = pe.Status
				if pe.Name != PageStoreUnavailable || !pe.SignedOut {
					t.Errorf("page %s (signed out %v), want %s saying signed out", pe.Name, pe.SignedOut, PageStoreUnavailable)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tc.status {
				t.Errorf("answer %d, want %d (Location %q)", status, tc.status, w.Header().Get("Location"))
			}
			if _, err := world.run.Sessions.Resolve(ctx, world.token); err == nil {
				t.Error("the session still resolves after the sign-out")
			}
			if _, err := world.run.Sessions.Resolve(ctx, second); err == nil && !tc.outer {
				t.Error("the second cookie's session still resolves after the sign-out")
			}
			lines := logs.FilterMessage("signed out").All()
			unknown := 0
			for _, l := range lines {
				if l.ContextMap()["outcome_unknown"] == true {
					unknown++
				}
			}
			if len(lines) != tc.lines || unknown != tc.unknown {
				t.Errorf("%d \"signed out\" lines, %d with outcome_unknown; want %d, %d", len(lines), unknown, tc.lines, tc.unknown)
			}
		})
	}
}

// commitAnswerLost commits the first Update once armed and then reports
// its outcome unknown (store.ErrOutcomeUnknown), as PostgreSQL does when
// the answer to COMMIT is lost.
type commitAnswerLost struct {
	store.Store
	armed atomic.Bool
}

func (s *commitAnswerLost) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := s.Store.Update(ctx, fn)
	if err == nil && s.armed.CompareAndSwap(true, false) {
		return fmt.Errorf("commit: %w", store.ErrOutcomeUnknown)
	}
	return err
}

// readOnlyStore answers reads and refuses every write, as a store whose
// disk is full or whose database has failed over to a read-only replica.
type readOnlyStore struct{ store.Store }

func (readOnlyStore) Update(context.Context, func(store.Tx) error) error {
	return errors.New("test: the store refuses writes")
}

// TestCrossSiteSignOutLogBounded: a refused cross-site sign-out is logged
// (WARN, with the Origin and Sec-Fetch-Site the browser sent), each cut
// short: any site's page can post here, with headers of any length.
func TestCrossSiteSignOutLogBounded(t *testing.T) {
	world := newDutyWorld(t)
	core, logs := observer.New(zapcore.WarnLevel)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.New(core),
		IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &logoutProvider{name: "corp"}}}}
	r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
	origin := "https://evil.example/" + strings.Repeat("x", 5000)
	r.Header.Set("Origin", origin)
	r.Header.Set("Sec-Fetch-Site", "cross-site"+strings.Repeat("y", 5000))
	err := rt.ServeEndpoint(httptest.NewRecorder(), r, world.run, dutyOrigin(), []string{world.token}, nil)
	if pe, ok := AsPageError(err); !ok || pe.Code != "cross_site_logout" {
		t.Fatalf("answer %v, want the cross_site_logout page", err)
	}
	lines := logs.FilterMessage("sign-out refused").All()
	if len(lines) != 1 {
		t.Fatalf("log %v, want one \"sign-out refused\" line", logs.All())
	}
	f := lines[0].ContextMap()
	if f["origin"] != origin[:100]+"…" || f["sec_fetch_site"] != ("cross-site"+strings.Repeat("y", 20)+"…") || f["reason"] != "cross_site_logout" {
		t.Errorf("log fields %v: want origin and sec_fetch_site cut to 100 and 30 bytes", f)
	}
}

// TestSignOutOnInternationalizedBaseURL: a base_url written with an
// internationalized name (https://bücher.example) is the site browsers
// send as its A-label in Origin; the site's own sign-out form is
// same-origin there, not refused as cross-site.
func TestSignOutOnInternationalizedBaseURL(t *testing.T) {
	o, err := BaseOrigin("https://bücher.example")
	if err != nil {
		t.Fatalf("base_url refused: %v", err)
	}
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC,
		Provider: &logoutProvider{name: "corp"}}}}
	r := httptest.NewRequest(http.MethodPost, "https://xn--bcher-kva.example/.sso/logout", nil)
	r.Header.Set("Origin", "https://xn--bcher-kva.example") // what browsers send from the site's own page
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	err = rt.ServeEndpoint(w, r, world.run, o, []string{world.token}, nil)
	if pe, ok := AsPageError(err); ok {
		t.Errorf("the site's own sign-out got page %s (%s); origin %s", pe.Name, pe.Code, o.Site)
	} else if w.Code != http.StatusSeeOther {
		t.Errorf("sign-out answered %d, want 303", w.Code)
	}
}

// countedBody is a request body that counts what the handler read of it.
type countedBody struct {
	r    io.Reader
	read int
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *countedBody) Close() error { return nil }

// TestSignOutBodyCapped: anyone can post to the sign-out, with a body of
// any size, so its body is read as the other endpoints anyone can post to
// read theirs (idp.ReadForm): a cross-site POST is refused before any of
// it is read; only a form-encoded body is parsed, never multipart (whose
// file parts would be spooled to disk), so a multipart POST signs out
// unread; and a form over maxLogoutBody is a plain 413, logged within the
// cross-site refusals' budget, that leaves the session alone.
func TestSignOutBodyCapped(t *testing.T) {
	multipartBody := "--b\r\nContent-Disposition: form-data; name=\"return_to\"\r\n\r\n/kept\r\n--b\r\n" +
		"Content-Disposition: form-data; name=\"upload\"; filename=\"x.bin\"\r\n\r\n" + strings.Repeat("x", 1<<20) + "\r\n--b--\r\n"
	for _, tc := range []struct {
		name, contentType, body string
		crossSite               bool
		status                  int  // the answer's
		maxRead                 int  // of the body
		signedOut               bool // the session ended
		logReason               string
	}{
		{"cross-site multipart", "multipart/form-data; boundary=b", multipartBody, true, http.StatusForbidden, 0, false, "cross_site_logout"},
		{"cross-site form", "application/x-www-form-urlencoded", "return_to=/x&pad=" + strings.Repeat("x", 1<<20), true, http.StatusForbidden, 0, false, "cross_site_logout"},
		{"multipart", "multipart/form-data; boundary=b", multipartBody, false, http.StatusSeeOther, 0, true, ""},
		{"form within the cap", "application/x-www-form-urlencoded", "return_to=/x&pad=" + strings.Repeat("x", maxLogoutBody-40), false, http.StatusSeeOther, maxLogoutBody, true, ""},
		{"form over the cap", "application/x-www-form-urlencoded", "return_to=/x&pad=" + strings.Repeat("x", 1<<20), false, http.StatusRequestEntityTooLarge, maxLogoutBody + 1, false, "logout_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			core, logs := observer.New(zapcore.WarnLevel)
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.New(core),
				IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &logoutProvider{name: "corp"}}}}
			body := &countedBody{r: strings.NewReader(tc.body)}
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", body)
			r.Header.Set("Content-Type", tc.contentType)
			if tc.crossSite {
				r.Header.Set("Origin", "https://evil.example")
				r.Header.Set("Sec-Fetch-Site", "cross-site")
			}
			w := httptest.NewRecorder()
			err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil)
			status := w.Code
			var ge *Error
			if pe, ok := AsPageError(err); ok {
				status = pe.Status
			} else if errors.As(err, &ge) {
				status = ge.Status
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tc.status {
				t.Errorf("answer %d (%v), want %d", status, err, tc.status)
			}
			if body.read > tc.maxRead {
				t.Errorf("the sign-out read %d bytes of its %d-byte body, want at most %d", body.read, len(tc.body), tc.maxRead)
			}
			_, rerr := world.run.Sessions.Resolve(context.Background(), world.token)
			if signedOut := rerr != nil; signedOut != tc.signedOut {
				t.Errorf("signed out %v (%v), want %v", signedOut, rerr, tc.signedOut)
			}
			var reasons []string
			for _, l := range logs.FilterMessage("sign-out refused").All() {
				reasons = append(reasons, l.ContextMap()["reason"].(string))
			}
			if want := []string{tc.logReason}; tc.logReason == "" && len(reasons) != 0 || tc.logReason != "" && !slices.Equal(reasons, want) {
				t.Errorf("WARN \"sign-out refused\" reasons %v, want %q", reasons, tc.logReason)
			}
		})
	}
}

// returnToProvider is a logoutProvider that records the return_to its
// Logout is given; one longer than fits (when set) is too large for its
// flow cookie.
type returnToProvider struct {
	logoutProvider
	returnTo []string
	fits     int
}

func (p *returnToProvider) Logout(w http.ResponseWriter, r *http.Request, base string, info idp.LogoutInfo, returnTo string) (bool, error) {
	p.returnTo = append(p.returnTo, returnTo)
	if p.fits > 0 && len(returnTo) > p.fits {
		return false, idp.ErrFlowTooLarge
	}
	return p.logoutProvider.Logout(w, r, base, info, returnTo)
}

// TestSignOutReturnTo: the sign-out POST takes its return_to from the
// form the confirmation page posts, or from the URL's query, and hands it
// to the IdP's logout; a malformed form still signs out, coming back home.
// One too long for the logout's flow cookie is tried shorter (tried: the
// page without its query, then home) and the IdP's logout still runs.
func TestSignOutReturnTo(t *testing.T) {
	long := "/reports?" + strings.Repeat("q", 200)
	for _, tc := range []struct {
		name, target, body, want string
		tried                    []string // the return paths tried before want
	}{
		{"in the form", "https://app.example.com/.sso/logout", "return_to=%2Fform", "/form", nil},
		{"in the query", "https://app.example.com/.sso/logout?return_to=%2Fquery", "", "/query", nil},
		{"malformed form", "https://app.example.com/.sso/logout", "return_to=%zz", "/", nil},
		{"a query too long for the flow cookie", "https://app.example.com/.sso/logout", "return_to=" + url.QueryEscape(long), "/reports", []string{long}},
		{"a path too long for the flow cookie", "https://app.example.com/.sso/logout", "return_to=" + url.QueryEscape("/"+strings.Repeat("p", 200)+"?q=1"), "/", []string{"/" + strings.Repeat("p", 200) + "?q=1", "/" + strings.Repeat("p", 200)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			p := &returnToProvider{logoutProvider: logoutProvider{name: "corp"}, fits: 100}
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: p}}}
			r := httptest.NewRequest(http.MethodPost, tc.target, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			w := httptest.NewRecorder()
			if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil); err != nil || w.Code != http.StatusSeeOther {
				t.Fatalf("answer %d, %v; want 303 to the IdP's logout", w.Code, err)
			}
			if want := append(slices.Clip(tc.tried), tc.want); !slices.Equal(p.returnTo, want) {
				t.Errorf("the IdP's logout was given return_to %q, want %q", p.returnTo, want)
			}
			if _, err := world.run.Sessions.Resolve(context.Background(), world.token); err == nil {
				t.Error("the session still resolves after the sign-out")
			}
		})
	}
}

// confirmProvider is a logoutProvider whose logout takes no form post
// from another origin.
type confirmProvider struct{ logoutProvider }

func (*confirmProvider) LogoutOrigin(context.Context) string { return "" }

// TestSignOutConfirmationCarriesReturnTo: the confirmation page a GET
// shows posts the query's return_to (as a local path) back with its form.
func TestSignOutConfirmationCarriesReturnTo(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"?return_to=%2Freports%3Fq%3D1", `name="return_to" value="/reports?q=1"`},
		{"?return_to=https%3A%2F%2Fevil.example%2F", `name="return_to" value="/"`},
	} {
		world := newDutyWorld(t)
		rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &confirmProvider{logoutProvider{name: "corp"}}}}}
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/logout"+tc.query, nil)
		if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), nil, nil); err != nil || w.Code != http.StatusOK {
			t.Fatalf("%s: answer %d, %v; want the confirmation page", tc.query, w.Code, err)
		}
		if body := html.UnescapeString(w.Body.String()); !strings.Contains(body, tc.want) {
			t.Errorf("%s: the confirmation page lacks %s:\n%s", tc.query, tc.want, body)
		}
	}
}

// TestSignOutBodyCapAsDocumented: docs/security.md and
// docs/troubleshooting.md promise the sign-out's body a cap of 8 KiB: a
// form of exactly that signs out, one byte more is a 413.
func TestSignOutBodyCapAsDocumented(t *testing.T) {
	const documented = 8 << 10
	for _, tc := range []struct {
		size   int
		status int
	}{{documented, http.StatusSeeOther}, {documented + 1, http.StatusRequestEntityTooLarge}} {
		world := newDutyWorld(t)
		rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &logoutProvider{name: "corp"}}}}
		body := "return_to=%2F&pad=" + strings.Repeat("x", tc.size-len("return_to=%2F&pad="))
		r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		w := httptest.NewRecorder()
		err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil)
		status := w.Code
		var ge *Error
		if errors.As(err, &ge) {
			status = ge.Status
		} else if err != nil {
			t.Fatal(err)
		}
		if status != tc.status {
			t.Errorf("a %d-byte sign-out form: answer %d (%v), want %d", tc.size, status, err, tc.status)
		}
	}
}
