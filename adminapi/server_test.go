package adminapi_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/portable"
)

// apiServer serves the admin API over a real bbolt store, rendering errors
// as caddymodule's admin.api.sso does ({"error": message} with the status).
func apiServer(t *testing.T) (*httptest.Server, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	acc := &account.Service{Store: db}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := adminapi.Handler{Accounts: acc,
			Backup: func(w io.Writer) (int64, error) { return portable.Backup(r.Context(), db, w) }}
		if err := h.Serve(w, r); err != nil {
			status := http.StatusInternalServerError
			var e *adminapi.Error
			if errors.As(err, &e) {
				status = e.Status
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		}
	}))
	t.Cleanup(srv.Close)
	return srv, db
}

func apiGet(t *testing.T, srv *httptest.Server, method, uri string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func putUser(t *testing.T, db store.Store, u *store.User) *store.User {
	t.Helper()
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPathUnescapedOnce: a user ID travels path-escaped (Client's userURI)
// and is unescaped once, so "100%" or "x%41" is that ID, not another one
// (the handler unescaped r.URL.Path, already unescaped, a second time:
// "x%41" became "xA", and "100%" a 400).
func TestPathUnescapedOnce(t *testing.T) {
	srv, db := apiServer(t)
	for _, id := range []string{"x%41", "100%", "a/b", "a b"} {
		putUser(t, db, &store.User{ID: id, Email: strings.NewReplacer("%", "p", "/", "s", " ", "_").Replace(id) + "@example.com", Active: true})
	}
	putUser(t, db, &store.User{ID: "xA", Email: "xa@example.com", Active: true})
	cl := testClient(srv)
	for _, id := range []string{"x%41", "100%", "a/b", "a b"} {
		d, err := cl.User(context.Background(), id, "", 0)
		if err != nil || d.User == nil || d.User.ID != id {
			got := ""
			if err == nil && d.User != nil {
				got = d.User.ID
			}
			t.Errorf("GET user %q: got user %q, error %v", id, got, err)
		}
	}
}

// TestUnknownQueryParameter: a parameter the endpoint does not take is a
// 400 naming it, not ignored (?q= for ?query= answered with every user).
func TestUnknownQueryParameter(t *testing.T) {
	srv, db := apiServer(t)
	u := putUser(t, db, &store.User{Email: "a@example.com", Active: true})
	for _, c := range []struct{ method, uri, name string }{
		{http.MethodGet, "/sso/users?q=nobody", `"q"`},
		{http.MethodGet, "/sso/users/" + u.ID + "?query=x", `"query"`},
		{http.MethodGet, "/sso/audit?user_id=nobody", `"user_id"`},
		{http.MethodGet, "/sso/backup?compress=no", `"compress"`},
		{http.MethodPost, "/sso/users/" + u.ID + "/disable?force=1", `"force"`},
		{http.MethodDelete, "/sso/users/" + u.ID + "?dry_run=1", `"dry_run"`},
	} {
		code, body := apiGet(t, srv, c.method, c.uri)
		if code != http.StatusBadRequest || !strings.Contains(body, "unknown query parameter") || !strings.Contains(body, strings.ReplaceAll(c.name, `"`, `\"`)) {
			t.Errorf("%s %s -> %d %s, want 400 naming %s", c.method, c.uri, code, body, c.name)
		}
	}
	if got, err := (&account.Service{Store: db}).User(context.Background(), u.ID, "", 0); err != nil || !got.User.Active {
		t.Errorf("a refused request changed the user: %+v, %v", got, err)
	}
	for _, uri := range []string{"/sso/users?query=a&after=&limit=1", "/sso/users/" + u.ID + "?after=0&limit=1",
		"/sso/audit?user=x&type=user.created&since=1h&until=1s&after=0&limit=1"} {
		if code, body := apiGet(t, srv, http.MethodGet, uri); code != http.StatusOK {
			t.Errorf("GET %s -> %d %s", uri, code, body)
		}
	}
}

// TestUserActionsArePostOnly: the state-changing user operations take
// POST only; another method (a GET from a link, a prefetch, a cross-site
// <img>) changes nothing and is a 405. POST disable deactivates and
// enable activates.
func TestUserActionsArePostOnly(t *testing.T) {
	srv, db := apiServer(t)
	u := putUser(t, db, &store.User{Email: "ada@example.com", IdP: "entra", ExternalID: "oid-ada", Active: true})
	active := func() bool {
		t.Helper()
		d, err := (&account.Service{Store: db}).User(context.Background(), u.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		return d.User.Active
	}
	for _, action := range []string{"disable", "sessions/revoke", "enable"} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
			if code, body := apiGet(t, srv, m, "/sso/users/"+u.ID+"/"+action); code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s -> %d %s, want 405", m, action, code, body)
			}
		}
	}
	if !active() {
		t.Fatal("a request other than POST deactivated the user")
	}
	if audit, err := (&account.Service{Store: db}).Audit(context.Background(), store.AuditQuery{}); err != nil || len(audit.Events) != 0 {
		t.Errorf("refused requests audited %+v, %v", audit, err)
	}
	for _, c := range []struct {
		action string
		active bool
	}{{"disable", false}, {"enable", true}} {
		if code, body := apiGet(t, srv, http.MethodPost, "/sso/users/"+u.ID+"/"+c.action); code != http.StatusOK {
			t.Fatalf("POST %s -> %d %s", c.action, code, body)
		}
		if active() != c.active {
			t.Errorf("after POST %s the user is active=%v", c.action, !c.active)
		}
	}
	if code, body := apiGet(t, srv, http.MethodPost, "/sso/users/"+u.ID+"/sessions/revoke"); code != http.StatusOK {
		t.Errorf("POST sessions/revoke -> %d %s", code, body)
	}
}

// TestLimitRange: a limit above a page's 1000 asks for 1000, whether it
// parses or not (99999999999999999999 was "must be a positive number"
// while 5000 got 1000), and the refusal of the others says the range.
func TestLimitRange(t *testing.T) {
	srv, _ := apiServer(t)
	for _, limit := range []string{"1", "1000", "5000", "99999999999999999999"} {
		if code, body := apiGet(t, srv, http.MethodGet, "/sso/users?limit="+limit); code != http.StatusOK {
			t.Errorf("limit=%s -> %d %s", limit, code, body)
		}
	}
	for _, limit := range []string{"0", "-1", "-99999999999999999999", "x", "1.5"} {
		code, body := apiGet(t, srv, http.MethodGet, "/sso/audit?limit="+limit)
		if code != http.StatusBadRequest || !strings.Contains(body, "limit must be a whole number of at least 1") || !strings.Contains(body, "a page holds 1 to 1000") {
			t.Errorf("limit=%s -> %d %s", limit, code, body)
		}
	}
	if n, err := adminapi.PageSize("99999999999999999999"); n != account.MaxPageSize || err != nil {
		t.Errorf("PageSize(huge) = %d, %v", n, err)
	}
}

// TestBackupAudited: every backup handed out (it holds every key of the
// store) is one store.backed_up event saying by whom and how, and nothing
// of what it holds.
func TestBackupAudited(t *testing.T) {
	srv, db := apiServer(t)
	const pem = "-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n"
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.LoadOrStoreSecret("saml-sp-key/corp", []byte(pem))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		resp, err := http.Get(srv.URL + "/sso/backup")
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(zr)
		resp.Body.Close()
		// The backup does hold the keys (the docs say so): what is audited
		// is that it was handed out.
		if !strings.Contains(string(b), "saml-sp-key/corp") {
			t.Errorf("the backup lacks the SP key")
		}
	}
	page, err := (&account.Service{Store: db}).Audit(context.Background(), store.AuditQuery{Type: account.EventStoreBackedUp})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 {
		t.Fatalf("%d store.backed_up events after 2 backups: %+v", len(page.Events), page.Events)
	}
	e := page.Events[0]
	if e.Reason != account.ByAdmin || e.Detail["via"] != "admin_api" || e.Detail["remote"] == "" || e.UserID != "" {
		t.Errorf("event %+v", e)
	}
	if raw, _ := json.Marshal(page.Events); strings.Contains(string(raw), "SECRET") {
		t.Errorf("the event holds key material: %s", raw)
	}
}

// TestBackupServedWhenAuditFails: a store that takes no write (here one
// opened read-only; a full disk in life) still gives its backup, which is
// when one is needed most, and the log records it at ERROR.
// readOnlyStore is a bbolt store that seed wrote, opened again read-only:
// one that takes no write, so each operation's commit fails.
func readOnlyStore(t *testing.T, seed func(rw store.Store)) store.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sso.db")
	rw, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	seed(rw)
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestBackupServedWhenAuditFails(t *testing.T) {
	db := readOnlyStore(t, func(rw store.Store) { putUser(t, rw, &store.User{Email: "a@example.com", Active: true}) })
	core, logs := observer.New(zapcore.InfoLevel)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := adminapi.Handler{Accounts: &account.Service{Store: db}, Logger: zap.New(core),
			Backup: func(w io.Writer) (int64, error) { return portable.Backup(r.Context(), db, w) }}
		if err := h.Serve(w, r); err != nil {
			t.Errorf("backup: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	code, body := apiGet(t, srv, http.MethodGet, "/sso/backup")
	if _, verr := portable.Verify(strings.NewReader(body)); code != http.StatusOK || verr != nil {
		t.Errorf("backup of a store that takes no write: %d, %v", code, verr)
	}
	if n := logs.FilterMessage("store backup handed out without its audit event").FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d ERROR lines for the unaudited backup:\n%v", n, logs.All())
	}
}

// testClient calls srv as the CLI calls Caddy: an error for a status of 400
// or more.
func testClient(srv *httptest.Server) *adminapi.Client {
	return &adminapi.Client{Do: func(method, uri string) (*http.Response, error) {
		req, err := http.NewRequest(method, srv.URL+uri, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil && resp.StatusCode >= 400 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return nil, &adminapi.Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
		}
		return resp, err
	}}
}
