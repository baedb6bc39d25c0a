package session_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestIdentityValuesHeaderSafe: the {http.auth.user.*} placeholders
// (Boxed) are the same header-safe values as the identity headers (Value):
// an IdP's control characters in a name would otherwise make a header_up
// of the placeholder fail every request of that user.
func TestIdentityValuesHeaderSafe(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, newClock().now)
	u := addUser(t, db, &store.User{Email: "zoe@example.com", FirstName: "Zo\x1b[2J\r\nX", LastName: "Do\te\x7f\u0085",
		Groups: []string{"eng\nops", " admins"}, Active: true, Source: store.SourceJIT})
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Resolve(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		field session.Field
		want  string
	}{
		{"user id", session.FieldUserID, u.ID},
		{"email", session.FieldEmail, "zoe@example.com"},
		{"first name", session.FieldFirstName, "Zo[2JX"},
		{"last name", session.FieldLastName, "Doe"},
		{"groups", session.FieldGroups, "eng%0Aops,%20admins"},
		{"idp", session.FieldIdP, "okta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := id.Value(tc.field)[0]
			if header != tc.want {
				t.Errorf("header value %q, want %q", header, tc.want)
			}
			if boxed, _ := id.Boxed(tc.field).(string); boxed != header {
				t.Errorf("placeholder value %q, header value %q", boxed, header)
			}
			if strings.ContainsFunc(header, unicode.IsControl) {
				t.Errorf("value %q holds a control character", header)
			}
		})
	}
	// The identity itself keeps the exact names (for the identity token).
	if id.FirstName != u.FirstName {
		t.Errorf("Identity.FirstName %q, want the stored %q", id.FirstName, u.FirstName)
	}
}

// TestLargeIdentityHeadersWarn: a session whose identity header values
// outgrow what common app servers take (a user in hundreds of groups) is
// named in a WARN line when an instance loads it, with its size and group
// count and never a group name; an ordinary session logs nothing.
func TestLargeIdentityHeadersWarn(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	core, logs := observer.New(zap.WarnLevel)
	m := session.New(db, session.Config{}, zap.New(core), newClock().now)
	var many []string
	for i := range 200 {
		many = append(many, fmt.Sprintf("department-%03d-with-a-long-directory-name", i))
	}
	for i, tc := range []struct {
		groups []string
		warn   bool
	}{{[]string{"eng"}, false}, {many, true}} {
		u := addUser(t, db, &store.User{Email: fmt.Sprintf("zoe%d@example.com", i), Groups: tc.groups, Active: true, Source: store.SourceJIT})
		before := logs.Len()
		token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Resolve(ctx, token); err != nil {
			t.Fatal(err)
		}
		got := logs.TakeAll()[before:]
		if (len(got) == 1) != tc.warn || len(got) > 1 {
			t.Fatalf("%d groups: %d WARN lines, want warned=%v", len(tc.groups), len(got), tc.warn)
		}
		if tc.warn {
			f := got[0].ContextMap()
			if f["user_id"] != u.ID || f["groups"] != int64(200) || f["bytes"].(int64) <= session.LargeIdentityHeaders ||
				strings.Contains(fmt.Sprint(f), "department") {
				t.Errorf("fields %v", f)
			}
		}
	}
}

// TestLargeIdentityHeadersWarnOncePerUserAnHour: the warning holds for as
// long as the user keeps those groups, and an instance re-reads a session
// in use every CacheTTL (30 s), so WARN names each user once an hour per
// instance (docs/troubleshooting.md), whatever their sessions; the rest go
// to DEBUG and the next WARN counts them.
func TestLargeIdentityHeadersWarnOncePerUserAnHour(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	core, logs := observer.New(zap.DebugLevel)
	m := session.New(db, session.Config{}, zap.New(core), clk.now)
	var many []string
	for i := range 400 {
		many = append(many, fmt.Sprintf("group-with-a-long-name-%04d", i))
	}
	var tokens []string
	for _, name := range []string{"ada", "ada", "bob"} { // ada signed in twice
		u := addUser(t, db, &store.User{ID: name, Email: name + "@example.com", Groups: many, Active: true, Source: store.SourceJIT})
		token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, token)
	}
	warned := func() (users []string, repeats []any) {
		for _, e := range logs.TakeAll() {
			if e.Level == zap.WarnLevel && strings.HasPrefix(e.Message, "identity headers too large") {
				users = append(users, e.ContextMap()["user_id"].(string))
				repeats = append(repeats, e.ContextMap()["repeated_since_last"])
			}
		}
		return users, repeats
	}
	use := func(d time.Duration) { // a request on each session every 30 s
		for end := clk.now().Add(d); clk.now().Before(end); clk.advance(session.DefaultCacheTTL + time.Millisecond) {
			for _, token := range tokens {
				if _, err := m.Resolve(ctx, token); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Flush(ctx, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	use(59 * time.Minute)
	if users, _ := warned(); fmt.Sprint(users) != "[ada bob]" {
		t.Errorf("first 59 minutes: %d WARN lines (for %v…), want one each for [ada bob]", len(users), users[:min(len(users), 6)])
	}
	use(2 * time.Minute)
	users, repeats := warned()
	if fmt.Sprint(users) != "[ada bob]" {
		t.Fatalf("past the hour: %d WARN lines (for %v…), want one each for [ada bob] again", len(users), users[:min(len(users), 6)])
	}
	if n, _ := repeats[0].(int64); n < 100 {
		t.Errorf("ada's second WARN counts %v lines sent to DEBUG, want her re-reads of the hour", repeats[0])
	}
}

// TestIdentityValuesControlBoundaries: the header values drop exactly
// Unicode's Cc (U+0000-U+001F, U+007F-U+009F) and keep the characters
// either side of each range: a space or a no-break space in a name
// stays, U+001F and U+009F (a C1 control some stacks act on) go.
func TestIdentityValuesControlBoundaries(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, newClock().now)
	for i, tc := range []struct {
		first, want string
	}{
		{"Mary Ann", "Mary Ann"},
		{"A\x00B\x1fC", "ABC"},
		{"A~B\x7fC", "A~BC"},
		{"A\u0080B\u009fC", "ABC"},
		{"A\u00a0B\u00a1C", "A\u00a0B\u00a1C"},
	} {
		u := addUser(t, db, &store.User{Email: fmt.Sprintf("ada%d@example.com", i), FirstName: tc.first, Active: true, Source: store.SourceJIT})
		token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		id, err := m.Resolve(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		if got := id.Value(session.FieldFirstName)[0]; got != tc.want {
			t.Errorf("first name %q: header value %q, want %q", tc.first, got, tc.want)
		}
	}
}
