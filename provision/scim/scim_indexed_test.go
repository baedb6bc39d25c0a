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
