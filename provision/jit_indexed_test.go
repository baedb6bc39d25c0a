package provision_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestJITRefusesUnindexableAlikeOnBothBackends: a uniqueUserId or email
// the store cannot index is the same audited denial, naming the same
// attribute and problem, on bolt and on PostgreSQL; never a user on one
// backend and an internal error on the other. "ΐ" is 2 bytes and folds
// (store.FoldName, the form the email and userName indexes hold) to 6.
func TestJITRefusesUnindexableAlikeOnBothBackends(t *testing.T) {
	folds := strings.Repeat("ΐ", 400) + "@example.com" // 812 bytes; 2,412 folded
	tests := []struct {
		name, sub, email string
		attr, problem    string // attr "": accepted
	}{
		{"email too long once folded", "s", folds, mapping.Email, "too_long"},
		{"subject not UTF-8", "sub\xff", "x@example.com", mapping.UniqueUserID, "not_utf8"},
		{"email not UTF-8", "s", "x\xc3@example.com", mapping.Email, "not_utf8"},
		{"subject with NUL", "sub\x00", "x@example.com", mapping.UniqueUserID, "control_character"},
		{"email with tab", "s", "x\t@example.com", mapping.Email, "control_character"},
		{"non-ASCII email within the limit", "s", strings.Repeat("ΐ", 150) + "@example.com", "", ""},
	}
	for _, be := range backendtest.All() {
		for _, tt := range tests {
			t.Run(be.Name+"/"+tt.name, func(t *testing.T) {
				p := &provision.Provisioner{Store: be.Open(t), Now: func() time.Time { return t0 }}
				prof := full("s")
				prof.UniqueUserID, prof.Email = tt.sub, tt.email
				u, err := p.Login(context.Background(), "okta", jit, prof, true)
				if tt.attr == "" {
					if err != nil || u == nil {
						t.Fatalf("Login = %v, %v; want a user", u, err)
					}
					return
				}
				var d *provision.Denial
				if !errors.As(err, &d) || u != nil {
					t.Fatalf("Login = user %v, %v; want an %s denial", u != nil, err, provision.ReasonInvalidAttribute)
				}
				if d.Reason != provision.ReasonInvalidAttribute || d.Attribute != tt.attr {
					t.Errorf("denial %q (%q), want %q (%q)", d.Reason, d.Attribute, provision.ReasonInvalidAttribute, tt.attr)
				}
				var ev []store.Event
				err = p.Store.View(context.Background(), func(tx store.Tx) error {
					var err error
					ev, err = tx.AuditEvents(store.AuditQuery{Limit: 100})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if len(ev) != 1 || ev[0].Detail["attribute"] != tt.attr || ev[0].Detail["problem"] != tt.problem {
					t.Errorf("audit %+v, want one event with attribute %s, problem %s", ev, tt.attr, tt.problem)
				}
			})
		}
	}
}
