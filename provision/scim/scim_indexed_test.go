package scim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSCIMRefusesUnindexableAlikeOnBothBackends: a value the store cannot
// index gets the same answer, 400 invalidValue naming the attribute, on
// bolt and on PostgreSQL; never 201 on one backend and an error on the
// other. "ΐ" is 2 bytes and folds (store.FoldName, the form the userName,
// email and group name indexes hold) to 6.
func TestSCIMRefusesUnindexableAlikeOnBothBackends(t *testing.T) {
	folds := strings.Repeat("ΐ", 400) // 800 bytes; 2,400 folded
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	user := func(userName, email string) string {
		return fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%s,"emails":[{"value":%s}]}`, q(userName), q(email))
	}
	tests := []struct {
		name, path, body string
		status           int
		detail           string // what the detail must say: the attribute and why
	}{
		{"userName too long once folded", "/Users", user(folds, "a@example.com"), 400,
			"userName is 2400 bytes long once case-folded; at most 1024 are allowed"},
		{"email too long once folded", "/Users", user("ada", folds+"@example.com"), 400,
			"emails.value is 2412 bytes long once case-folded; at most 1024 are allowed"},
		{"group name too long once folded", "/Groups",
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":` + q(folds) + `}`, 400,
			"displayName is 2400 bytes long once case-folded; at most 1024 are allowed"},
		{"userName too long", "/Users", user(strings.Repeat("a", 1025), "a@example.com"), 400,
			"userName is 1025 bytes long; at most 1024 are allowed"},
		{"userName with NUL", "/Users", user("ada\x00", "a@example.com"), 400,
			"userName must not contain control characters"},
		{"non-ASCII userName within the limit", "/Users", user(strings.Repeat("ΐ", 150), "a@example.com"), 201, ""},
	}
	for _, be := range backendtest.All() {
		for _, tt := range tests {
			t.Run(be.Name+"/"+tt.name, func(t *testing.T) {
				srv := indexedServer(t, be.Open(t))
				req, err := http.NewRequest("POST", srv.URL+"/scim/v2"+tt.path, strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/scim+json")
				req.Header.Set("Authorization", "Bearer "+entraToken)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				raw, _ := io.ReadAll(res.Body)
				var body struct{ ScimType, Detail string }
				_ = json.Unmarshal(raw, &body)
				if res.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %.300s", res.StatusCode, tt.status, raw)
				}
				if tt.status == 400 && (body.ScimType != "invalidValue" || body.Detail != tt.detail) {
					t.Errorf("scimType %q, detail %q; want invalidValue, %q", body.ScimType, body.Detail, tt.detail)
				}
			})
		}
	}
}

// indexedServer serves SCIM for the IdP "entra" over st.
func indexedServer(t *testing.T, st store.Store) *httptest.Server {
	t.Helper()
	clock := func() time.Time { return t0 }
	sessions := session.New(st, session.Config{}, zap.NewNop(), clock)
	accounts := &account.Service{Store: st, Cache: sessions, Logger: zap.NewNop(), Now: clock,
		SCIMManaged: func(name string) bool { return name == "entra" }}
	h, err := scim.New(scim.Config{IdP: "entra", Token: entraToken, Accounts: accounts, Logger: zap.NewNop(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// TestSCIMRefusesUnmappedEmailDomains: an address whose domain has
// characters IDNA maps to others (a fullwidth letter, an ideographic full
// stop between labels) is 400 invalidValue naming emails.value and the
// spellings it takes (provision.CheckEmailDomain), for a create, a PUT
// and a PATCH on both backends: stored, the lookup of the plain
// spelling's holder would miss it, and a sign-in with that spelling would
// become a second user passing this one's `allow user` rules. The plain
// spellings are written.
func TestSCIMRefusesUnmappedEmailDomains(t *testing.T) {
	const (
		userSchema  = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`
		patchSchema = `"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`
		detail      = `emails.value: the domain must be written as "bücher.example" or "xn--bcher-kva.example"`
	)
	put := func(email string) string {
		return fmt.Sprintf(`{%s,"userName":"ada","externalId":"ada","emails":[{"value":%q,"primary":true}]}`, userSchema, email)
	}
	writes := []struct {
		name  string
		write func(id, email string) (method, path, body string)
		ok    int
	}{
		{"POST", func(_, email string) (string, string, string) { return http.MethodPost, "/Users", put(email) }, http.StatusCreated},
		{"PUT", func(id, email string) (string, string, string) { return http.MethodPut, "/Users/" + id, put(email) }, http.StatusOK},
		{"PATCH", func(id, email string) (string, string, string) {
			return http.MethodPatch, "/Users/" + id, fmt.Sprintf(`{%s,"Operations":[{"op":"replace","path":"emails[primary eq true].value","value":%q}]}`, patchSchema, email)
		}, http.StatusOK},
	}
	for _, be := range backendtest.All() {
		for _, w := range writes {
			t.Run(be.Name+"/"+w.name, func(t *testing.T) {
				srv := indexedServer(t, be.Open(t))
				id := ""
				if w.name != "POST" {
					id = postID(t, srv, "/Users", put("ada@example.com"))
				}
				for _, email := range []string{"ada@ｂücher.example", "ada@bücher\u3002example", "ada@ＢÜＣＨＥＲ.example"} {
					method, path, body := w.write(id, email)
					status, raw := scimRequest(t, srv, method, path, body)
					var doc struct{ ScimType, Detail string }
					_ = json.Unmarshal(raw, &doc)
					if status != http.StatusBadRequest || doc.ScimType != "invalidValue" || doc.Detail != detail {
						t.Errorf("%s with %+q: status %d %s; want 400 invalidValue, %q", w.name, email, status, raw, detail)
					}
				}
				// Spellings only lowerLocal's lower case tells apart ("İ",
				// which Go lowers to "i" and the store folds to "i̇";
				// Cherokee where IDNA refuses the name): the check reads
				// the address as sent, not lower-cased.
				for _, email := range []string{"ada@\u0130x.example", "ada@a\u13a0b.a_b.example"} {
					method, path, body := w.write(id, email)
					status, raw := scimRequest(t, srv, method, path, body)
					var doc struct{ ScimType, Detail string }
					_ = json.Unmarshal(raw, &doc)
					if status != http.StatusBadRequest || doc.ScimType != "invalidValue" || !strings.HasPrefix(doc.Detail, "emails.value: the domain must be written as ") {
						t.Errorf("%s with %+q: status %d %s; want 400 invalidValue naming the spelling to use", w.name, email, status, raw)
					}
				}
				for _, email := range []string{"ada@bücher.example", "ada@XN--BCHER-KVA.example."} {
					method, path, body := w.write(id, email)
					if status, raw := scimRequest(t, srv, method, path, body); status != w.ok {
						t.Errorf("%s with %q: status %d %s, want %d", w.name, email, status, raw, w.ok)
					}
					if w.name == "POST" {
						break // the second would be the same user
					}
				}
			})
		}
	}
}
