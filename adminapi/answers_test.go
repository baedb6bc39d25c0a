package adminapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestUserEndpointsAnswer: what the user endpoints answer, as `caddy sso`
// and a curl read it: the users as they are written (an "&" in an email
// stays an "&", not \u0026), how many sessions a revoke ended, which user
// a delete deleted, and, for a user that is gone, a 404 that names them;
// a query the caller got wrong is a 400, a path no endpoint has a 404.
func TestUserEndpointsAnswer(t *testing.T) {
	srv, db := apiServer(t)
	ctx := context.Background()
	u := putUser(t, db, &store.User{Email: "ada&bob@example.com", IdP: "okta", Active: true})
	now := time.Now()
	err := db.Update(ctx, func(tx store.Tx) error {
		for _, h := range []string{"h1", "h2"} {
			if err := tx.PutSession(&store.Session{Hash: h, UserID: u.ID, IdP: "okta", Created: now, Expires: now.Add(time.Hour)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	code, body := apiGet(t, srv, http.MethodGet, "/sso/users")
	if code != http.StatusOK || !strings.Contains(body, `"ada&bob@example.com"`) {
		t.Errorf("GET /sso/users -> %d %s, want the email as it is", code, body)
	}
	code, body = apiGet(t, srv, http.MethodPost, "/sso/users/"+u.ID+"/sessions/revoke")
	if code != http.StatusOK || strings.TrimSpace(body) != `{"revoked":2}` {
		t.Errorf("revoke -> %d %s, want {\"revoked\":2}", code, body)
	}
	code, body = apiGet(t, srv, http.MethodDelete, "/sso/users/"+u.ID)
	if code != http.StatusOK || strings.TrimSpace(body) != `{"deleted":"`+u.ID+`"}` {
		t.Errorf("delete -> %d %s, want the deleted user's ID", code, body)
	}

	for _, c := range []struct {
		method, uri string
		status      int
		says        string
	}{
		{http.MethodGet, "/sso/users/" + u.ID, http.StatusNotFound, `user \"` + u.ID + `\" not found`},
		{http.MethodPost, "/sso/users/" + u.ID + "/disable", http.StatusNotFound, `user \"` + u.ID + `\" not found`},
		{http.MethodGet, "/sso/users/" + u.ID + "?after=x", http.StatusBadRequest, "want a position such as next_sessions gives"},
		{http.MethodGet, "/sso/audit?type=user.disabled", http.StatusBadRequest, `unknown event type \"user.disabled\"`},
		{http.MethodGet, "/sso/audit?after=x", http.StatusBadRequest, "after must be an event sequence number"},
		{http.MethodGet, "/sso/audit?until=soon", http.StatusBadRequest, "until: "},
		{http.MethodGet, "/sso/tombstones?after=x", http.StatusBadRequest, "want the next of a previous page"},
		{http.MethodGet, "/sso/groups", http.StatusNotFound, "resource not found"},
		{http.MethodDelete, "/sso/users/" + u.ID + "?dry_run=1", http.StatusBadRequest, `unknown query parameter \"dry_run\": this endpoint takes none`},
		// An empty user ID is no user endpoint, not a user "" not found.
		{http.MethodPost, "/sso/users//disable", http.StatusNotFound, "resource not found"},
	} {
		code, body := apiGet(t, srv, c.method, c.uri)
		if code != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s %s -> %d %s, want %d saying %s", c.method, c.uri, code, body, c.status, c.says)
		}
	}
}

// TestMethodNotAllowedSaysAllow: a 405 says in Allow which methods the
// endpoint takes.
func TestMethodNotAllowedSaysAllow(t *testing.T) {
	srv, db := apiServer(t)
	u := putUser(t, db, &store.User{Email: "a@example.com", Active: true})
	for _, c := range []struct{ method, uri, allow string }{
		{http.MethodPut, "/sso/users", "GET"},
		{http.MethodPut, "/sso/users/" + u.ID, "GET, DELETE"},
		{http.MethodGet, "/sso/users/" + u.ID + "/enable", "POST"},
		{http.MethodPut, "/sso/tombstones", "GET, DELETE"},
		{http.MethodPost, "/sso/audit", "GET"},
	} {
		req, err := http.NewRequest(c.method, srv.URL+c.uri, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s -> %d, Allow %q; want 405, Allow %q", c.method, c.uri, resp.StatusCode, resp.Header.Get("Allow"), c.allow)
		}
	}
}

// TestServeErrors: the statuses Serve gives to what is not the caller's
// mistake: a backend without an integrity check or a backup is a 501, and
// a request cancelled on the way is a 503, not a store failure (500).
func TestServeErrors(t *testing.T) {
	_, db := apiServer(t)
	h := &adminapi.Handler{Accounts: &account.Service{Store: db}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		uri    string
		ctx    context.Context
		status int
		says   string
	}{
		{"/sso/check", context.Background(), http.StatusNotImplemented, "no integrity check"},
		{"/sso/backup", context.Background(), http.StatusNotImplemented, "cannot be backed up"},
		{"/sso/users", cancelled, http.StatusServiceUnavailable, "request cancelled"},
	} {
		req := httptest.NewRequestWithContext(c.ctx, http.MethodGet, c.uri, nil)
		err := h.Serve(httptest.NewRecorder(), req)
		var e *adminapi.Error
		if !errors.As(err, &e) || e.Status != c.status || !strings.Contains(e.Message, c.says) {
			t.Errorf("GET %s: %v, want %d saying %q", c.uri, err, c.status, c.says)
		}
	}
}

// TestClientQueries: the client sends what it is asked for, and nothing
// it is not: no limit when none is asked for (limit=0 would be a 400),
// and the audit's after and since as filters.
func TestClientQueries(t *testing.T) {
	srv, db := apiServer(t)
	ctx := context.Background()
	cl := testClient(srv)
	u := putUser(t, db, &store.User{Email: "a@example.com", Active: true})
	acc := &account.Service{Store: db}
	for range 2 {
		if _, err := acc.Deactivate(ctx, u.ID, account.ByAdmin); err != nil {
			t.Fatal(err)
		}
		if _, err := acc.Activate(ctx, u.ID, account.ByAdmin); err != nil {
			t.Fatal(err)
		}
	}
	if page, err := cl.ListUsers(ctx, "", "", 0); err != nil || len(page.Users) != 1 {
		t.Errorf("ListUsers with no limit: %+v, %v", page, err)
	}
	all, err := cl.Audit(ctx, store.AuditQuery{})
	if err != nil || len(all.Events) != 4 {
		t.Fatalf("audit: %+v, %v", all, err)
	}
	if page, err := cl.Audit(ctx, store.AuditQuery{After: all.Events[1].Seq}); err != nil || len(page.Events) != 2 || page.Events[0].Seq != all.Events[2].Seq {
		t.Errorf("audit after %d: %+v, %v", all.Events[1].Seq, page, err)
	}
	if page, err := cl.Audit(ctx, store.AuditQuery{Since: time.Now().Add(time.Hour)}); err != nil || len(page.Events) != 0 {
		t.Errorf("audit since an hour ahead: %+v, %v", page, err)
	}
	if page, err := cl.Audit(ctx, store.AuditQuery{Until: time.Now().Add(-time.Hour)}); err != nil || len(page.Events) != 0 {
		t.Errorf("audit until an hour ago: %+v, %v", page, err)
	}
}
