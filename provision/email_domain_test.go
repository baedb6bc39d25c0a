package provision_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/internal/maildomain"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestCheckEmailDomain: the spellings of a domain an email may be stored
// with (those the lookup of the mailbox's holder reads from any other
// spelling: case, normalization, xn-- or Unicode, a trailing dot), and
// those it may not (characters IDNA maps to others, which CanonEmail
// joins with the plain spelling but no lookup reads).
func TestCheckEmailDomain(t *testing.T) {
	for _, tc := range []struct {
		email string
		ok    bool
	}{
		{"ada@example.com", true},
		{"Ada@EXAMPLE.COM", true},
		{"ada@example.com.", true},
		{"ada@bücher.example", true},
		{"ada@BÜCHER.Example.", true},
		{"ada@bu\u0308cher.example", true}, // NFD
		{"ada@xn--bcher-kva.example", true},
		{"ada@XN--BCHER-KVA.EXAMPLE.", true},
		{"ada@straße.example", true},
		{"ada@\u212Aelvin.example", true}, // the Kelvin sign, upper case of "k"
		{"ada@a_b.example", true},         // IDNA refuses it: allowed, as before
		{"ada@A_B.Example", true},
		{"ada@", true},
		{"ada", true},
		{"", true},
		{"ada@ｂücher.example", false},      // fullwidth ｂ
		{"ada@ＥＸＡＭＰＬＥ.com", false},         // fullwidth capitals
		{"ada@bücher\u3002example", false}, // ideographic full stop as separator
		{"ada@bücher\uff0eexample", false}, // fullwidth full stop
		{"ada@ſample.example", false},      // long s, mapped to "s"
		{"ada@ﬁle.example", false},         // the "fi" ligature
		{"ada@soft\u00adhyphen.example", false},
		{"ada@\u2460.example", false},  // circled digit one, mapped to "1"
		{"ada@\u0130x.example", false}, // "İ": CanonEmail lowers it to "i", the store folds it to "i̇"
		{"ada@\u0130_x.example", false},
		{"ada@a\u13a0b.a_b.example", false}, // Cherokee Ꭰ where IDNA refuses the name: Canon lowers it to ꭰ, which the store keys apart
		{"ada@a\uab70b.a_b.example", true},
		{`"ada@home"@ｂücher.example`, false}, // the domain is after the last "@", as CanonEmail's
	} {
		if err := provision.CheckEmailDomain(tc.email); (err == nil) != tc.ok {
			t.Errorf("CheckEmailDomain(%+q) = %v, want allowed: %v", tc.email, err, tc.ok)
		}
	}
	err := provision.CheckEmailDomain("ada@ｂücher.example")
	if want := `the domain must be written as "bücher.example" or "xn--bcher-kva.example"`; err == nil || err.Error() != want {
		t.Errorf("CheckEmailDomain's error %v, want %q", err, want)
	}
	// A name IDNA refuses has no Unicode form to offer.
	err = provision.CheckEmailDomain("ada@\u0130_x.example")
	if want := `the domain must be written as "i_x.example"`; err == nil || err.Error() != want {
		t.Errorf("CheckEmailDomain's error %v, want %q", err, want)
	}
	// An ASCII name is its own Unicode form: named once.
	err = provision.CheckEmailDomain("ada@İx.example")
	if want := `the domain must be written as "ix.example"`; err == nil || err.Error() != want {
		t.Errorf("CheckEmailDomain's error %v, want %q", err, want)
	}
}

// TestCheckedEmailDomainsAreFoundFromEverySpelling: a domain
// CheckEmailDomain lets an email be stored with is one store key
// (store.FoldName) with the xn-- form maildomain.Canon gives it or with
// that form's Unicode, both of which the lookup of the mailbox's holder
// reads from any spelling CanonEmail makes one with it. Checked for every
// code point up to U+1FFFF in a label, so that an x/net or Unicode
// update that lets a mapped character through fails here.
func TestCheckedEmailDomainsAreFoundFromEverySpelling(t *testing.T) {
	for r := rune(0); r <= 0x1FFFF; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		domain := "a" + string(r) + "b.example"
		if provision.CheckEmailDomain("x@"+domain) != nil {
			continue
		}
		ascii := maildomain.Canon(domain)
		key := store.FoldName("x@" + domain)
		found := key == store.FoldName("x@"+ascii)
		if u, err := idna.Lookup.ToUnicode(ascii); err == nil && key == store.FoldName("x@"+u) {
			found = true
		}
		if !found {
			t.Errorf("CheckEmailDomain allows %+q, which no lookup from %+q reads", domain, ascii)
		}
	}
}

// TestJITRefusesUnmappedEmailDomainOnBothBackends: the first sign-in with
// an address whose domain has characters IDNA maps to others
// ("ｂücher.example", fullwidth ｂ) is an audited invalid_attribute
// denial naming email, on bolt and on PostgreSQL, and writes no user:
// stored, it would be missed by the lookup of the plain spelling's
// holder, and an unverified sign-in at another IdP with
// "ada@bücher.example" would become a second user with its CanonEmail,
// passing the first's `allow user` rules. The plain spelling signs in;
// the other IdP's sign-in then meets its holder (email_conflict).
func TestJITRefusesUnmappedEmailDomainOnBothBackends(t *testing.T) {
	for _, be := range backendtest.All() {
		t.Run(be.Name, func(t *testing.T) {
			p := &provision.Provisioner{Store: be.Open(t), Now: func() time.Time { return t0 }}
			prof := full("ada-sub")
			prof.Email = "ada@ｂücher.example"
			u, err := p.Login(context.Background(), "entra", jit, prof, true)
			var d *provision.Denial
			if !errors.As(err, &d) || u != nil {
				t.Fatalf("Login with %q = user %v, %v; want an %s denial", prof.Email, u != nil, err, provision.ReasonInvalidAttribute)
			}
			if d.Reason != provision.ReasonInvalidAttribute || d.Attribute != mapping.Email || d.Problem != provision.ProblemUnmappedDomain {
				t.Errorf("denial %q (%q, %q), want %q (email, %s)", d.Reason, d.Attribute, d.Problem, provision.ReasonInvalidAttribute, provision.ProblemUnmappedDomain)
			}
			if msg := d.Message(); !strings.Contains(msg, "sent an email address this application cannot store") || strings.Contains(msg, "bücher") {
				t.Errorf("message %q, want it to say the email cannot be stored, without the value", msg)
			}
			if msg := d.Message(); !strings.Contains(msg, "fullwidth letters") || strings.Contains(msg, "too long") {
				t.Errorf("message %q, want it to name what is wrong (characters that stand for others), not length or control characters", msg)
			}
			var ev []store.Event
			var users int
			err = p.Store.View(context.Background(), func(tx store.Tx) error {
				var err error
				if ev, err = tx.AuditEvents(store.AuditQuery{Limit: 100}); err != nil {
					return err
				}
				_, users, err = tx.ListUsers("entra", 1, 10)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if users != 0 {
				t.Errorf("the denied sign-in wrote %d users", users)
			}
			if len(ev) != 1 || ev[0].Type != store.EventLoginDenied || ev[0].Detail["attribute"] != mapping.Email || ev[0].Detail["problem"] != provision.ProblemUnmappedDomain {
				t.Errorf("audit %+v, want one login.denied with attribute email, problem %s", ev, provision.ProblemUnmappedDomain)
			}

			prof.Email = "ada@bücher.example"
			ada, err := p.Login(context.Background(), "entra", jit, prof, true)
			if err != nil {
				t.Fatalf("Login with the plain spelling: %v", err)
			}
			other := full("someone-else")
			other.Email = "ada@xn--bcher-kva.example"
			u, err = p.Login(context.Background(), "corp", jit, other, false)
			if !errors.As(err, &d) || d.Reason != provision.ReasonEmailConflict {
				t.Errorf("an unverified sign-in at another IdP with %q (held by %s) = user %v, %v; want %s",
					other.Email, ada.ID, u, err, provision.ReasonEmailConflict)
			}
		})
	}
}
