package provision_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestAdoptionByExternalIDRefusesAUserWhoSignsInHere: a sign-in is
// adopted into the SCIM user whose externalId is its subject only when
// that user does not already sign in at this IdP under another subject
// (the rule linkRefusal keeps for linking by email: a second ID there is
// another person). The directory wrote a newcomer's ID onto the leaver's
// user (Okta matching by userName, the leaver's username re-issued): the
// newcomer is refused external_id_conflict, audited on the holder's
// history, and nothing else is written, whatever the update mode and
// whoever holds the newcomer's email. A holder who signs in only at
// another IdP is still adopted: that is what adoption is for. On both
// backends: bolt and PostgreSQL look the holder up by different code.
func TestAdoptionByExternalIDRefusesAUserWhoSignsInHere(t *testing.T) {
	scim := provision.Rules{JIT: true, SCIMManaged: true}
	imp, off := scim, provision.Rules{SCIMManaged: true}
	imp.Update = provision.UpdateImport
	tests := []struct {
		name  string
		links []store.Link
		rules provision.Rules
		email string // the newcomer's; "" the holder's
		adopt bool
	}{
		{"force", []store.Link{{IdP: "entra", Subject: "sub-leaver"}}, scim, "", false},
		{"import", []store.Link{{IdP: "entra", Subject: "sub-leaver"}}, imp, "", false},
		{"jit off", []store.Link{{IdP: "entra", Subject: "sub-leaver"}}, off, "", false},
		// The refusal comes before any email rule: the newcomer's
		// address held by a third user changes nothing.
		{"force, new address held by a third user", []store.Link{{IdP: "entra", Subject: "sub-leaver"}}, scim, "third@example.com", false},
		{"also signs in elsewhere", []store.Link{{IdP: "corp", Subject: "c-1"}, {IdP: "entra", Subject: "sub-leaver"}}, scim, "", false},
		{"signs in only at another IdP", []store.Link{{IdP: "corp", Subject: "c-1"}}, scim, "", true},
	}
	for _, be := range backendtest.All() {
		for _, tt := range tests {
			t.Run(be.Name+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				db := be.Open(t)
				core, logs := observer.New(zapcore.DebugLevel)
				p := &provision.Provisioner{Store: db, Logger: zap.New(core), Now: func() time.Time { return t0.Add(time.Hour) }}
				holder := scimUser("sub-newcomer")
				holder.Links = tt.links
				third := &store.User{Email: "third@example.com", Active: true, Source: store.SourceJIT, UserName: "third@example.com",
					IdP: "entra", ExternalID: "sub-third", Links: []store.Link{{IdP: "entra", Subject: "sub-third"}}, Created: t0, Updated: t0}
				if err := db.Update(ctx, func(tx store.Tx) error {
					if err := tx.PutUser(holder); err != nil {
						return err
					}
					return tx.PutUser(third)
				}); err != nil {
					t.Fatal(err)
				}
				before, auditBefore := dumpUsers(t, db), auditOf(t, db)

				prof := full("sub-newcomer")
				prof.Email = holder.Email
				if tt.email != "" {
					prof.Email = tt.email
				}
				u, err := p.Login(ctx, "entra", tt.rules, prof, true)
				if tt.adopt {
					if err != nil || u.ID != holder.ID {
						t.Fatalf("Login = %v, %v; want the holder %s adopted", u, err, holder.ID)
					}
					return
				}
				var d *provision.Denial
				if !errors.As(err, &d) || u != nil {
					t.Fatalf("Login = %v, %v; want a %s denial (holder %s signs in here as sub-leaver)",
						u, err, provision.ReasonExternalIDConflict, holder.ID)
				}
				if d.Reason != provision.ReasonExternalIDConflict || d.UserID != "" || d.IdP != "entra" {
					t.Errorf("denial %q for user %q at %q, want %q at entra naming no user", d.Reason, d.UserID, d.IdP, provision.ReasonExternalIDConflict)
				}
				// Words of its own that send the person to the administrator,
				// not the bare "Sign-in was denied." of a reason without any.
				if m := d.Message(); m == (&provision.Denial{}).Message() || !strings.Contains(m, "administrator") ||
					strings.Contains(m, prof.Email) || strings.Contains(m, holder.ID) {
					t.Errorf("denial message %q is the generic one, names no administrator, or names the address or the holder", m)
				}
				if after := dumpUsers(t, db); !maps.Equal(after, before) {
					t.Errorf("the refused sign-in changed users:\nbefore %v\nafter  %v", before, after)
				}
				ev := auditOf(t, db)[len(auditBefore):]
				if len(ev) != 1 {
					t.Fatalf("audit %v, want one %s event", types(ev), store.EventJITConflict)
				}
				if e := ev[0]; e.Type != store.EventJITConflict || e.Reason != provision.ReasonExternalIDConflict || e.UserID != holder.ID ||
					e.IdP != "entra" || e.Subject != "sub-newcomer" || e.Detail["not_linked"] != "holder linked to another subject at this idp" {
					t.Errorf("audit event %+v, want %s/%s on the holder %s with not_linked", e, store.EventJITConflict, provision.ReasonExternalIDConflict, holder.ID)
				}
				l := logs.FilterMessage("sso login denied: scim externalId belongs to a user who signs in under another subject").All()
				if len(l) != 1 || l[0].ContextMap()["owner_id"] != holder.ID || l[0].ContextMap()["reason"] != provision.ReasonExternalIDConflict ||
					l[0].ContextMap()["not_linked"] != "holder linked to another subject at this idp" {
					t.Errorf("log lines %+v, want one naming owner_id %s and why it was not linked", logs.All(), holder.ID)
				}
			})
		}
	}
}

// dumpUsers is every user record of db as JSON, keyed by ID.
func dumpUsers(t *testing.T, db store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(u *store.User) error {
			b, err := json.Marshal(u)
			out[u.ID] = string(b)
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func auditOf(t *testing.T, db store.Store) []store.Event {
	t.Helper()
	var ev []store.Event
	err := db.View(context.Background(), func(tx store.Tx) (err error) {
		ev, err = tx.AuditEvents(store.AuditQuery{Limit: 1000})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// failingAuditTx refuses every audit write with err, as a full disk or a
// lost PostgreSQL connection would.
type failingAuditTx struct {
	store.Tx
	err   error
	calls int
}

func (f *failingAuditTx) Audit(store.Event) error {
	f.calls++
	return f.err
}

// TestDenialWhoseAuditFailsFailsTheSignIn: a refused sign-in whose audit
// event cannot be written fails as an error (the transaction rolls back,
// the person sees an internal error and may retry), never as a denial
// with no trace on the holder's history: the audit trail is what tells
// the administrator that someone tried to take over a user.
func TestDenialWhoseAuditFailsFailsTheSignIn(t *testing.T) {
	holder := scimUser("sub-newcomer")
	holder.Links = []store.Link{{IdP: "entra", Subject: "sub-leaver"}}
	owner := &store.User{Email: "owner@example.com", EmailVerified: true, Active: true, Source: store.SourceJIT, UserName: "owner@example.com",
		IdP: "okta", ExternalID: "sub-owner", Links: []store.Link{{IdP: "okta", Subject: "sub-owner"}}, Created: t0, Updated: t0}
	newcomer := full("sub-newcomer")
	newcomer.Email = holder.Email
	stranger := full("sub-stranger")
	stranger.Email = owner.Email
	for _, tt := range []struct {
		name   string
		prof   mapping.Profile
		reason string // the denial the sign-in gets while the audit works
	}{
		{"externalId held by a user who signs in here", newcomer, provision.ReasonExternalIDConflict},
		{"email held by another user", stranger, provision.ReasonEmailConflict},
		{"no subject", mapping.Profile{Email: "x@example.com"}, provision.ReasonMissingSubject},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.put(func(tx store.Tx) error {
				if err := tx.PutUser(holder); err != nil {
					return err
				}
				return tx.PutUser(owner)
			})
			rules := provision.Rules{JIT: true, SCIMManaged: true}
			// The audit works: the denial this row is about.
			var res *provision.Result
			e.put(func(tx store.Tx) (err error) {
				res, err = provision.Apply(tx, "entra", rules, tt.prof, true, t0)
				return err
			})
			if res.Denial == nil || res.Denial.Reason != tt.reason {
				t.Fatalf("Apply = %+v; want denial %s", res, tt.reason)
			}
			diskFull := errors.New("disk full")
			err := e.db.Update(context.Background(), func(btx store.Tx) error {
				tx := &failingAuditTx{Tx: btx, err: diskFull}
				res, err := provision.Apply(tx, "entra", rules, tt.prof, true, t0)
				if tx.calls != 1 {
					t.Errorf("%d audit writes attempted, want 1", tx.calls)
				}
				if err == nil {
					t.Errorf("Apply = denial %+v with its audit event lost; want the audit error", res.Denial)
				}
				return err
			})
			if !errors.Is(err, diskFull) {
				t.Errorf("Update = %v, want the audit error %v", err, diskFull)
			}
		})
	}
}
