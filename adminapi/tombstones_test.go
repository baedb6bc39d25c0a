package adminapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestTombstonesEndpoints: GET /sso/tombstones lists them (filtered,
// paged), DELETE lifts a deleted user's (home and following) or one
// identity's, whatever its subject holds, and a lift that finds none is a
// 404; a DELETE naming neither or both, or a parameter the method does not
// take, is a 400.
func TestTombstonesEndpoints(t *testing.T) {
	srv, db := apiServer(t)
	ctx := context.Background()
	deleted := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	odd := "https://idp.example/?a=1&b=2/x y"
	err := db.Update(ctx, func(tx store.Tx) error {
		for _, ts := range []store.Tombstone{
			{IdP: "entra", Subject: "oid-ada", UserID: "ada", Deleted: deleted},
			{IdP: "google", Subject: "g-ada", UserID: "ada", Deleted: deleted, Home: &store.Link{IdP: "entra", Subject: "oid-ada"}},
			{IdP: "saml", Subject: odd, UserID: "bob", Deleted: deleted},
		} {
			if err := tx.PutTombstone(&ts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cl := testClient(srv)

	page, err := cl.Tombstones(ctx, account.TombstoneQuery{Limit: 2})
	if err != nil || len(page.Tombstones) != 2 || page.Next == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	if ts := page.Tombstones[1]; ts.IdP != "google" || ts.Home == nil || ts.Home.Subject != "oid-ada" || ts.HomeLifted || !ts.Deleted.Equal(deleted) {
		t.Errorf("google tombstone %+v", ts)
	}
	page, err = cl.Tombstones(ctx, account.TombstoneQuery{Limit: 2, After: page.Next})
	if err != nil || len(page.Tombstones) != 1 || page.Tombstones[0].Subject != odd || page.Next != "" {
		t.Fatalf("second page: %+v, %v", page, err)
	}
	page, err = cl.Tombstones(ctx, account.TombstoneQuery{UserID: "ada", IdP: "google"})
	if err != nil || len(page.Tombstones) != 1 || page.Tombstones[0].Subject != "g-ada" {
		t.Errorf("ada at google: %+v, %v", page, err)
	}

	for _, tc := range []struct {
		method, query string
		status        int
	}{
		{http.MethodGet, "?subject=x", http.StatusBadRequest},
		{http.MethodGet, "?after=nope", http.StatusBadRequest},
		{http.MethodGet, "?limit=0", http.StatusBadRequest},
		{http.MethodGet, "?limit=x", http.StatusBadRequest},
		{http.MethodDelete, "", http.StatusBadRequest},
		{http.MethodDelete, "?idp=entra", http.StatusBadRequest},
		{http.MethodDelete, "?user=ada&idp=entra&subject=oid-ada", http.StatusBadRequest},
		{http.MethodDelete, "?user=ada&idp=entra", http.StatusBadRequest},
		{http.MethodDelete, "?user=ada&subject=oid-ada", http.StatusBadRequest},
		{http.MethodDelete, "?subject=oid-ada", http.StatusBadRequest},
		{http.MethodDelete, "?limit=1&user=ada", http.StatusBadRequest},
		{http.MethodPost, "?user=ada", http.StatusMethodNotAllowed},
		{http.MethodDelete, "?user=nobody", http.StatusNotFound},
	} {
		if status, body := apiGet(t, srv, tc.method, adminapi.Prefix+"tombstones"+tc.query); status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.query, status, body, tc.status)
		}
	}

	res, err := cl.Lift(ctx, "ada")
	if err != nil || len(res.Lifted) != 2 {
		t.Fatalf("lift ada: %+v, %v", res, err)
	}
	var ae *adminapi.Error
	if _, err := cl.Lift(ctx, "ada"); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(ae.Message, `no tombstone of deleted user \"ada\"`) {
		t.Errorf("lift ada again: %v", err)
	}
	res, err = cl.LiftTombstone(ctx, "saml", odd)
	if err != nil || len(res.Lifted) != 1 || res.Lifted[0].UserID != "bob" {
		t.Fatalf("lift saml %q: %+v, %v", odd, res, err)
	}
	page, err = cl.Tombstones(ctx, account.TombstoneQuery{})
	if err != nil || len(page.Tombstones) != 0 {
		t.Errorf("after the lifts: %+v, %v", page, err)
	}
	audit, err := (&account.Service{Store: db}).Audit(ctx, store.AuditQuery{Type: account.EventTombstoneLifted})
	if err != nil || len(audit.Events) != 3 {
		t.Errorf("audit: %+v, %v", audit, err)
	}
	for _, e := range audit.Events {
		if e.Reason != account.ByAdmin {
			t.Errorf("lift audited as by %q, want %q: %+v", e.Reason, account.ByAdmin, e)
		}
	}
}

// TestClientRefusesACutAnswer: a 200 answer whose JSON stops part-way (the
// connection lost) is an error, not an empty page or a lift that read as
// done with nothing lifted.
func TestClientRefusesACutAnswer(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func(cl *adminapi.Client) error
	}{
		{"tombstones", func(cl *adminapi.Client) error { _, err := cl.Tombstones(ctx, account.TombstoneQuery{}); return err }},
		{"lift", func(cl *adminapi.Client) error { _, err := cl.Lift(ctx, "ada"); return err }},
		{"lift one", func(cl *adminapi.Client) error { _, err := cl.LiftTombstone(ctx, "entra", "oid-ada"); return err }},
		{"users", func(cl *adminapi.Client) error { _, err := cl.ListUsers(ctx, "", "", 0); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := &adminapi.Client{Do: func(method, uri string) (*http.Response, error) {
				return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(`{"tombstones":[{"idp":"entra","sub`))}, nil
			}}
			if err := c.call(cl); err == nil || !strings.Contains(err.Error(), "reading the admin API's answer: unexpected EOF") {
				t.Errorf("error %v; want the cut answer said", err)
			}
		})
	}
}
