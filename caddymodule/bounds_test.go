package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestSCIMRefusesUnindexableValues: values that would become store keys
// are checked before anything is written: too long (store.MaxKeyBytes) or
// with a control character is a 400 invalidValue naming the attribute,
// never a 500; and userNames compare as the store's index does (Unicode
// NFC and case folding), in filters too.
func TestSCIMRefusesUnindexableValues(t *testing.T) {
	g := startSCIMSite(t)
	c := newSCIMClient(t, g.base, scimTokenEntra)
	long := strings.Repeat("x", 100_000)
	user := func(userName, externalID, email string) string {
		return fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%s,"externalId":%s,"active":true,
			"emails":[{"primary":true,"type":"work","value":%s}]}`, jsonString(userName), jsonString(externalID), jsonString(email))
	}
	for _, tc := range []struct {
		name, path, body, attr, why string
	}{
		{"long userName", "/Users", user(long, "ext-1", "a@example.com"), "userName", "bytes long"},
		{"long externalId", "/Users", user("a@example.com", long, "a@example.com"), "externalId", "bytes long"},
		{"long email", "/Users", user("a@example.com", "ext-1", long+"@example.com"), "emails.value", "bytes long"},
		{"NUL in userName", "/Users", user("ada\x00@example.com", "ext-1", "a@example.com"), "userName", "control characters"},
		{"newline in userName", "/Users", user("ada\n@example.com", "ext-1", "a@example.com"), "userName", "control characters"},
		{"long group name", "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":%q}`, long), "displayName", "bytes long"},
		{"long group externalId", "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"g","externalId":%q}`, long), "externalId", "bytes long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			r := c.must(400, "POST", tc.path, tc.body)
			scimError(t, r, 400, "invalidValue")
			if d, _ := r.body["detail"].(string); !strings.Contains(d, tc.attr) || !strings.Contains(d, tc.why) {
				t.Errorf("detail %q does not name %s (%s)", d, tc.attr, tc.why)
			}
		})
	}
	c.t = t
	view(t, func(tx store.Tx) error {
		n, err := tx.Counts()
		if err == nil && (n.Users != 0 || n.Groups != 0) {
			t.Errorf("refused requests left %d users and %d groups", n.Users, n.Groups)
		}
		return err
	})

	// A userName in decomposed form is found by its composed, upper-case
	// spelling, through the index and the filter alike.
	created := c.must(201, "POST", "/Users", user("jose\u0301@example.com", "ext-jose", "jose@example.com"))
	r := c.must(200, "GET", "/Users?"+filter(`userName eq "JOSÉ@EXAMPLE.COM"`), "")
	if totalResults(t, r) != 1 || at(r.body, "Resources", 0, "id") != created.body["id"] {
		t.Errorf("userName filter across Unicode forms: %s", r.raw)
	}
	// And a second user by that name, in the other form, is a conflict.
	r = c.must(409, "POST", "/Users", user("JOSÉ@example.com", "ext-2", "jose2@example.com"))
	scimError(t, r, 409, "uniqueness")
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestHousekeepingBoundsTheStore: at Start (and then on a schedule) the sso
// app prunes expired single-use IDs and audit events older than
// audit_retention (default 90 days; 0 keeps them all), in batches.
func TestHousekeepingBoundsTheStore(t *testing.T) {
	now := time.Now()
	seed := func(t *testing.T, path string) {
		t.Helper()
		db, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(context.Background(), func(tx store.Tx) error {
			// More expired IDs than one batch holds.
			for i := range 2500 {
				if _, err := tx.Consume("oidc-state", fmt.Sprintf("expired-%d", i), now.Add(-store.ConsumedPruneMargin-time.Minute)); err != nil {
					return err
				}
			}
			if _, err := tx.Consume("oidc-state", "live", now.Add(time.Hour)); err != nil {
				return err
			}
			// Audit events are appended in time order.
			for _, age := range []time.Duration{200 * 24 * time.Hour, 100 * 24 * time.Hour, 10 * 24 * time.Hour, time.Hour} {
				if err := tx.Audit(store.Event{Time: now.Add(-age), Type: store.EventLoginFailed, Reason: fmt.Sprintf("age-%s", age)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, option string
		keep         int // audit events left
	}{
		{"default 90 days", "", 2},
		{"audit_retention 5d", "\t\taudit_retention 5d\n", 1},
		{"audit_retention 0 keeps every event", "\t\taudit_retention 0\n", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newOIDCWorld(t, "\t\t\tjit\n")
			seed(t, w.gw.dir+"/sso.db")
			w.gw.start(strings.Replace(w.caddyfile(), "\tsso {\n", "\tsso {\n"+tc.option, 1))
			var consumed, audit int
			// Housekeeping runs in batches in the background; on a
			// loaded 2-core machine it took over 10 s. The loop ends as
			// soon as the store is bounded.
			deadline := time.Now().Add(time.Minute)
			for {
				view(t, func(tx store.Tx) error {
					n, err := tx.Counts()
					audit, consumed = n.AuditEvents, 0
					if err != nil {
						return err
					}
					return tx.ForEachConsumed(func(string, string, time.Time) error { consumed++; return nil })
				})
				if consumed == 1 && audit == tc.keep || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if consumed != 1 || audit != tc.keep {
				t.Errorf("after housekeeping: %d single-use IDs (want the live one), %d audit events (want %d)", consumed, audit, tc.keep)
			}
		})
	}
}
