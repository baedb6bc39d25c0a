package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
)

func adminAddUsers(t *testing.T, n int, domain string) { t.Helper(); caddytest.AddUsers(t, n, domain) }

// refusedWithoutIdP asserts that a request with the browser's cookies does
// not reach the upstream (an API-style request: a 401, no redirect).
func refusedWithoutIdP(t *testing.T, w *oidcWorld, b *browser) {
	t.Helper()
	b.Refused(w.gw.base + "/private")
}

func TestAdminAPIUsers(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	g := w.gw
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(g.base+"/", "ada", "ada-pw"))
	ada := userBySubject(t, "sub-ada")
	adminAddUsers(t, 5, "other.example")

	// Paging walks every user once, in ID order.
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		var page account.UsersPage
		g.adminJSON(http.MethodGet, "/sso/users?limit=2&after="+after, http.StatusOK, &page)
		if len(page.Users) > 2 || pages > 5 {
			t.Fatalf("page of %d users (page %d)", len(page.Users), pages)
		}
		for _, u := range page.Users {
			ids = append(ids, u.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if len(ids) != 6 {
		t.Errorf("paged through %d users, want 6: %v", len(ids), ids)
	}
	var found account.UsersPage
	g.adminJSON(http.MethodGet, "/sso/users?query=LOVELACE", http.StatusOK, &found)
	if len(found.Users) != 1 || found.Users[0].ID != ada.ID || found.Next != "" {
		t.Errorf("search by last name: %+v", found)
	}
	g.adminJSON(http.MethodGet, "/sso/users?query=other.example&limit=1000", http.StatusOK, &found)
	if len(found.Users) != 5 {
		t.Errorf("search by email domain found %d users, want 5", len(found.Users))
	}

	// Show: links, source, last login and the session, without secrets.
	resp, body := g.admin(http.MethodGet, "/sso/users/"+ada.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("show: %s %s", resp.Status, body)
	}
	var d account.UserDetail
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if d.User.ID != ada.ID || d.User.Source != store.SourceJIT || d.User.LastLogin.IsZero() ||
		len(d.User.Links) != 1 || d.User.Links[0] != (store.Link{IdP: "test", Subject: "sub-ada"}) {
		t.Errorf("shown user = %+v", d.User)
	}
	if len(d.Sessions) != 1 || d.Sessions[0].IdP != "test" || d.Sessions[0].Created.IsZero() || d.Sessions[0].Expires.IsZero() {
		t.Errorf("shown sessions = %+v", d.Sessions)
	}
	for _, secret := range []string{"hash", "id_token", "logout"} {
		if bytes.Contains(body, []byte(`"`+secret+`"`)) {
			t.Errorf("show exposes %q: %s", secret, body)
		}
	}

	// Disable: the very next request with the old session is refused.
	var u store.User
	g.adminJSON(http.MethodPost, "/sso/users/"+ada.ID+"/disable", http.StatusOK, &u)
	if u.Active {
		t.Error("disable left the user active")
	}
	refusedWithoutIdP(t, w, b)
	if got := userBySubject(t, "sub-ada"); got.Active {
		t.Error("the store still has the user active")
	}
	var events account.AuditPage
	g.adminJSON(http.MethodGet, "/sso/audit?user="+ada.ID+"&type="+store.EventUserDeactivated, http.StatusOK, &events)
	if len(events.Events) != 1 || events.Events[0].Reason != "admin" {
		t.Errorf("deactivation audit = %+v", events.Events)
	}
	g.adminJSON(http.MethodGet, "/sso/audit?user="+ada.ID+"&type="+store.EventSessionRevoked, http.StatusOK, &events)
	if len(events.Events) != 1 || events.Events[0].Detail["sessions"] != "1" {
		t.Errorf("revocation audit = %+v", events.Events)
	}

	// Enable, sign in again, then revoke the sessions alone.
	g.adminJSON(http.MethodPost, "/sso/users/"+ada.ID+"/enable", http.StatusOK, &u)
	if !u.Active {
		t.Error("enable left the user disabled")
	}
	upstreamSaw(t, b.signIn(g.base+"/", "ada", "ada-pw"))
	var revoked map[string]int
	g.adminJSON(http.MethodPost, "/sso/users/"+ada.ID+"/sessions/revoke", http.StatusOK, &revoked)
	if revoked["revoked"] != 1 {
		t.Errorf("revoke = %v, want 1 session", revoked)
	}
	refusedWithoutIdP(t, w, b)
	if got := userBySubject(t, "sub-ada"); !got.Active {
		t.Error("revoking sessions disabled the user")
	}

	// Delete, audited; the user is gone.
	g.adminJSON(http.MethodDelete, "/sso/users/"+ada.ID, http.StatusOK, nil)
	g.adminJSON(http.MethodGet, "/sso/users/"+ada.ID, http.StatusNotFound, nil)
	g.adminJSON(http.MethodGet, "/sso/audit?type="+store.EventUserDeleted, http.StatusOK, &events)
	if len(events.Events) != 1 || events.Events[0].UserID != ada.ID {
		t.Errorf("deletion audit = %+v", events.Events)
	}

	// Errors carry their status.
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/sso/users/nobody", http.StatusNotFound},
		{http.MethodPost, "/sso/users/nobody/disable", http.StatusNotFound},
		{http.MethodPost, "/sso/users/nobody/enable", http.StatusNotFound},
		{http.MethodDelete, "/sso/users/nobody", http.StatusNotFound},
		{http.MethodPost, "/sso/users/nobody/sessions/revoke", http.StatusNotFound},
		{http.MethodGet, "/sso/users/" + ada.ID + "/disable", http.StatusMethodNotAllowed},
		{http.MethodPost, "/sso/users", http.StatusMethodNotAllowed},
		{http.MethodGet, "/sso/users?limit=zero", http.StatusBadRequest},
		{http.MethodGet, "/sso/audit?since=yesterday", http.StatusBadRequest},
		{http.MethodGet, "/sso/audit?after=-1", http.StatusBadRequest},
		{http.MethodGet, "/sso/nothing", http.StatusNotFound},
	} {
		resp, body := g.admin(c.method, c.path)
		if resp.StatusCode != c.want || !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("%s %s: %s %s, want %d with an error", c.method, c.path, resp.Status, body, c.want)
		}
	}
}

func TestAdminAPIAuditPaging(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	g := w.gw
	upstreamSaw(t, newBrowser(t).signIn(g.base+"/", "ada", "ada-pw"))
	ada := userBySubject(t, "sub-ada")
	for range 3 {
		g.adminJSON(http.MethodPost, "/sso/users/"+ada.ID+"/disable", http.StatusOK, nil)
		g.adminJSON(http.MethodPost, "/sso/users/"+ada.ID+"/enable", http.StatusOK, nil)
	}
	var all account.AuditPage
	g.adminJSON(http.MethodGet, "/sso/audit?limit=1000", http.StatusOK, &all)
	if len(all.Events) < 8 {
		t.Fatalf("%d events, want at least 8", len(all.Events))
	}
	var seqs []uint64
	after := uint64(0)
	for {
		var page account.AuditPage
		g.adminJSON(http.MethodGet, fmt.Sprintf("/sso/audit?limit=3&after=%d", after), http.StatusOK, &page)
		for _, e := range page.Events {
			seqs = append(seqs, e.Seq)
		}
		if len(page.Events) == 0 {
			if page.Next != after {
				t.Errorf("empty page moved next from %d to %d", after, page.Next)
			}
			break
		}
		after = page.Next
	}
	if len(seqs) != len(all.Events) {
		t.Errorf("paged %d events, want %d", len(seqs), len(all.Events))
	}
	var typed account.AuditPage
	g.adminJSON(http.MethodGet, "/sso/audit?type="+store.EventUserActivated+"&user="+ada.ID, http.StatusOK, &typed)
	if len(typed.Events) != 3 {
		t.Errorf("%d activation events, want 3", len(typed.Events))
	}
	last := all.Events[len(all.Events)-1].Time
	var window account.AuditPage
	g.adminJSON(http.MethodGet, "/sso/audit?until="+last.Format("2006-01-02T15:04:05.999999999Z07:00"), http.StatusOK, &window)
	if len(window.Events) >= len(all.Events) {
		t.Errorf("until (exclusive) of the last event returned %d of %d events", len(window.Events), len(all.Events))
	}
	g.adminJSON(http.MethodGet, "/sso/audit?since=1h", http.StatusOK, &window)
	if len(window.Events) != len(all.Events) {
		t.Errorf("since=1h returned %d of %d events", len(window.Events), len(all.Events))
	}
}

func TestAdminAPIBackup(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	g := w.gw
	upstreamSaw(t, newBrowser(t).signIn(g.base+"/", "ada", "ada-pw"))
	resp, body := g.admin(http.MethodGet, "/sso/backup")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("backup: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if got := resp.Trailer.Get("X-Sso-Backup-Size"); got != strconv.Itoa(len(body)) {
		t.Errorf("backup size trailer %q, body %d bytes", got, len(body))
	}
	path := t.TempDir() + "/backup"
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	// The backup is in the portable format: it restores into any backend.
	caddytest.ReadBackup(t, path, func(tx store.Tx) error {
		u, err := tx.UserByLink("test", "sub-ada")
		if err == nil && u.Email != "ada@example.com" {
			t.Errorf("backed-up user = %+v", u)
		}
		return err
	})
}

// TestAdminDeleteIsSCIMDelete: deleting a user of an IdP that SCIM manages
// through the admin API leaves the same tombstone SCIM DELETE does, so the
// next JIT sign-in is refused (deprovisioned) instead of creating the user
// anew. Without SCIM for the IdP, JIT creates them again.
func TestAdminDeleteIsSCIMDelete(t *testing.T) {
	deleters := map[string]func(w *scimWorld, id string){
		"SCIM DELETE": func(w *scimWorld, id string) { w.scim.must(204, "DELETE", "/Users/"+id, "") },
		"admin API DELETE": func(w *scimWorld, id string) {
			w.gw.adminJSON(http.MethodDelete, "/sso/users/"+id, http.StatusOK, nil)
		},
	}
	for name, del := range deleters {
		t.Run(name, func(t *testing.T) {
			w := newSCIMWorld(t)
			b := newBrowser(t)
			upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
			id := userBySubject(t, "sub-ada").ID
			del(w, id)
			w.refusedWithoutUpstream(t, b)
			resp := newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw")
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "deprovisioned") {
				t.Errorf("sign-in after %s: %s: %s", name, resp.Status, body)
			}
			view(t, func(tx store.Tx) error {
				if _, err := tx.UserByLink("test", "sub-ada"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("JIT re-created the deleted user: %v", err)
				}
				ts, err := tx.Tombstone("test", "sub-ada")
				if err != nil || ts.UserID != id {
					t.Errorf("tombstone = %+v, %v", ts, err)
				}
				return nil
			})
			if got := auditReasons(t, store.EventLoginDenied); !slices.Contains(got, "deprovisioned") {
				t.Errorf("denial not audited: %v", got)
			}
		})
	}
	t.Run("IdP without SCIM", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n").start()
		upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
		id := userBySubject(t, "sub-ada").ID
		w.gw.adminJSON(http.MethodDelete, "/sso/users/"+id, http.StatusOK, nil)
		upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
		if again := userBySubject(t, "sub-ada"); again.ID == id {
			t.Errorf("the deleted user's ID came back: %+v", again)
		}
	})
}

// TestAdminAPIUserSessionsPaged: a user's detail shows a page of their
// sessions, newest first, with the count of all of them.
func TestAdminAPIUserSessionsPaged(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	for range 3 {
		upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	}
	id := userBySubject(t, "sub-ada").ID
	var d account.UserDetail
	w.gw.adminJSON(http.MethodGet, "/sso/users/"+id+"?limit=2", http.StatusOK, &d)
	if d.SessionCount != 3 || len(d.Sessions) != 2 || d.NextSessions == "" || d.Sessions[0].Created.Before(d.Sessions[1].Created) {
		t.Fatalf("first page: %+v", d)
	}
	var rest account.UserDetail
	w.gw.adminJSON(http.MethodGet, "/sso/users/"+id+"?limit=2&after="+d.NextSessions, http.StatusOK, &rest)
	if rest.SessionCount != 3 || len(rest.Sessions) != 1 || rest.NextSessions != "" || rest.Sessions[0].Created.After(d.Sessions[1].Created) {
		t.Errorf("second page: %+v", rest)
	}
	for _, c := range []struct {
		path string
		want int
		msg  string
	}{
		{"/sso/users/" + id + "?after=x", http.StatusBadRequest, "sessions after"},
		{"/sso/users/nobody", http.StatusNotFound, `user \"nobody\" not found`},
		{"/sso/audit?type=user.disabled", http.StatusBadRequest, `unknown event type \"user.disabled\"`},
	} {
		resp, body := w.gw.admin(http.MethodGet, c.path)
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.msg) || strings.Contains(string(body), "bolt") {
			t.Errorf("GET %s: %s %s, want %d with %s", c.path, resp.Status, body, c.want, c.msg)
		}
	}
}

// TestAdminAuditCarriesNoEmail: after sign-ins and every admin operation,
// no audit event holds the user's email address.
func TestAdminAuditCarriesNoEmail(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	id := userBySubject(t, "sub-ada").ID
	for _, op := range []struct{ method, path string }{
		{http.MethodPost, "/sso/users/" + id + "/sessions/revoke"},
		{http.MethodPost, "/sso/users/" + id + "/disable"},
		{http.MethodPost, "/sso/users/" + id + "/enable"},
		{http.MethodDelete, "/sso/users/" + id},
	} {
		w.gw.adminJSON(op.method, op.path, http.StatusOK, nil)
	}
	var page account.AuditPage
	w.gw.adminJSON(http.MethodGet, "/sso/audit?limit=1000", http.StatusOK, &page)
	if len(page.Events) < 6 {
		t.Fatalf("only %d events", len(page.Events))
	}
	for _, ev := range page.Events {
		if b, _ := json.Marshal(ev); strings.Contains(string(b), "@") {
			t.Errorf("event %s holds an email address", b)
		}
	}
}
