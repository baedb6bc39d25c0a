package provision_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

func TestFirstLoginCreatesUser(t *testing.T) {
	e := newEnv(t)
	prof := full("s1")
	prof.Groups, prof.HasGroups = []string{"b", "a", "b"}, true
	u := e.mustLogin("okta", jit, prof)
	want := store.User{
		ID: u.ID, Email: "s1@example.com", FirstName: "Ada", LastName: "Lovelace", Groups: []string{"a", "b"},
		Active: true, Source: store.SourceJIT, Links: []store.Link{{IdP: "okta", Subject: "s1"}},
	}
	got := e.user(u.ID)
	if got.Email != want.Email || got.FirstName != want.FirstName || got.LastName != want.LastName ||
		!slices.Equal(got.Groups, want.Groups) || !got.Active || got.Pending || got.Source != want.Source ||
		!slices.Equal(got.Links, want.Links) {
		t.Errorf("created %+v, want %+v", got, want)
	}
	if !got.Created.Equal(e.now) || !got.LastLogin.Equal(e.now) {
		t.Errorf("timestamps %v / %v, want %v", got.Created, got.LastLogin, e.now)
	}
	if ev := types(e.audit()); !slices.Equal(ev, []string{store.EventUserCreated, store.EventLoginSucceeded}) {
		t.Errorf("audit = %v", ev)
	}
	if n := e.logs.FilterMessage("sso user created").Len(); n != 1 {
		t.Errorf("%d creation log lines", n)
	}

	// The second login finds the same user by link and creates nothing.
	again := e.mustLogin("okta", jit, prof)
	if again.ID != u.ID || len(e.users()) != 1 {
		t.Errorf("second login: id %s vs %s, %d users", again.ID, u.ID, len(e.users()))
	}
	if ev := types(e.audit()); !slices.Equal(ev[2:], []string{store.EventLoginSucceeded}) {
		t.Errorf("audit after unchanged login = %v", ev)
	}
}

func TestKeyIsIdPAndExactSubject(t *testing.T) {
	e := newEnv(t)
	u := e.mustLogin("okta", jit, full("Sub1"))
	tests := []struct {
		name     string
		idp, sub string
		same     bool
	}{
		{"same idp and subject", "okta", "Sub1", true},
		{"subject differs in case", "okta", "sub1", false},
		{"subject with space", "okta", "Sub1 ", false},
		{"other idp", "entra", "Sub1", false},
	}
	// One env for all cases, so no subtests: env helpers fail the parent.
	for i, tt := range tests {
		prof := full(tt.sub)
		prof.Email = fmt.Sprintf("user%d@example.com", i)
		if tt.same {
			prof.Email = u.Email
		}
		got := e.mustLogin(tt.idp, jit, prof)
		if (got.ID == u.ID) != tt.same {
			t.Errorf("%s: got user %s, first user %s, want same=%v", tt.name, got.ID, u.ID, tt.same)
		}
	}
}

func TestMissingSubjectAlwaysDenied(t *testing.T) {
	tests := []struct {
		name  string
		rules provision.Rules
		email string
	}{
		{"jit on", jit, "new@example.com"},
		{"jit off", provision.Rules{}, "new@example.com"},
		{"email of an existing user, link_by_email", provision.Rules{JIT: true, LinkByEmail: true}, "owner@example.com"},
		{"everything optional", provision.Rules{JIT: true, Optional: []string{mapping.FirstName, mapping.LastName, mapping.Email}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.seed(&store.User{Email: "owner@example.com", Active: true})
			prof := full("")
			prof.Email = tt.email
			e.expectDenied("okta", tt.rules, prof, true, provision.ReasonMissingSubject, store.EventLoginDenied)
			e.lastLog("sso login denied")
		})
	}
}

func TestJITDisabled(t *testing.T) {
	off := provision.Rules{}
	t.Run("unknown subject denied", func(t *testing.T) {
		e := newEnv(t)
		e.expectDenied("okta", off, full("new"), true, provision.ReasonJITDisabled, store.EventLoginDenied)
		e.lastLog("sso login denied")
	})
	t.Run("unknown subject with an existing email denied, not linked", func(t *testing.T) {
		e := newEnv(t)
		e.seed(&store.User{Email: "new@example.com", Active: true, Source: store.SourceSCIM})
		e.expectDenied("okta", provision.Rules{LinkByEmail: true}, full("new"), true, provision.ReasonJITDisabled, store.EventLoginDenied)
	})
	t.Run("existing user signs in", func(t *testing.T) {
		e := newEnv(t)
		seeded := e.seed(&store.User{
			Email: "s@example.com", FirstName: "S", LastName: "C", Active: true, Source: store.SourceSCIM,
			Links: []store.Link{{IdP: "okta", Subject: "s"}},
		})
		u := e.mustLogin("okta", off, full("s"))
		if u.ID != seeded.ID || u.Source != store.SourceSCIM || !u.LastLogin.Equal(e.now) {
			t.Errorf("got %+v", u)
		}
	})
}

func TestMissingAttributes(t *testing.T) {
	tests := []struct {
		name     string
		optional []string
		blank    []string // attributes the IdP did not send
		missing  []string // nil: the user is created
	}{
		{"all present", nil, nil, nil},
		{"first name missing", nil, []string{mapping.FirstName}, []string{mapping.FirstName}},
		{"all missing", nil, []string{mapping.Email, mapping.LastName, mapping.FirstName},
			[]string{mapping.FirstName, mapping.LastName, mapping.Email}},
		{"whitespace counts as missing", nil, []string{"  " + mapping.LastName}, []string{mapping.LastName}},
		{"email optional and missing", []string{mapping.Email}, []string{mapping.Email}, nil},
		{"first name optional, last name missing", []string{mapping.FirstName}, []string{mapping.FirstName, mapping.LastName},
			[]string{mapping.LastName}},
		{"everything optional", []string{mapping.FirstName, mapping.LastName, mapping.Email},
			[]string{mapping.FirstName, mapping.LastName, mapping.Email}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			prof := full("s")
			for _, b := range tt.blank {
				switch strings.TrimSpace(b) {
				case mapping.FirstName:
					prof.FirstName = strings.Repeat(" ", len(b)-len(mapping.FirstName))
				case mapping.LastName:
					prof.LastName = strings.Repeat(" ", len(b)-len(mapping.LastName))
				case mapping.Email:
					prof.Email = ""
				}
			}
			rules := provision.Rules{JIT: true, Optional: tt.optional}
			if err := rules.Validate(); err != nil {
				t.Fatal(err)
			}
			if tt.missing == nil {
				e.mustLogin("okta", rules, prof)
				return
			}
			d, ev := e.expectDenied("okta", rules, prof, true, provision.ReasonMissingAttributes, store.EventLoginDenied)
			if !slices.Equal(d.Missing, tt.missing) {
				t.Errorf("Missing = %v, want %v", d.Missing, tt.missing)
			}
			if ev.Detail["missing"] != strings.Join(tt.missing, ",") {
				t.Errorf("audit detail = %v", ev.Detail)
			}
			for _, m := range tt.missing {
				if !strings.Contains(d.Message(), m) {
					t.Errorf("message %q does not name %s", d.Message(), m)
				}
			}
			log := e.lastLog("sso login denied")
			if got := fmt.Sprint(log.ContextMap()["missing"]); got != fmt.Sprint(tt.missing) {
				t.Errorf("log missing = %s", got)
			}
		})
	}
	t.Run("known user may lack attributes", func(t *testing.T) {
		e := newEnv(t)
		u := e.mustLogin("okta", jit, full("s"))
		got := e.mustLogin("okta", jit, mapping.Profile{UniqueUserID: "s"})
		if got.ID != u.ID || got.Email != u.Email || got.FirstName != u.FirstName {
			t.Errorf("got %+v, want stored %+v", got, u)
		}
	})
}

func TestEmailConflict(t *testing.T) {
	tests := []struct {
		name        string
		linkByEmail bool
		verified    bool
		email       string
		// owner is the stored email ("" = owner@example.com), ownerIdPs
		// the IdPs of the owner's links, space-separated ("" = entra).
		owner, ownerIdPs string
		notLinked        string // the jit.conflict event's detail
	}{
		{"link_by_email off, verified", false, true, "owner@example.com", "", "", "link_by_email off"},
		{"link_by_email off, unverified", false, false, "owner@example.com", "", "", "link_by_email off"},
		{"link_by_email on, unverified", true, false, "owner@example.com", "", "", "email not verified"},
		{"email differs in case", false, true, "Owner@Example.COM", "", "", "link_by_email off"},
		// The store's email index folds ß to ss, but straße.de and
		// strasse.de are different domains: never the same mailbox.
		{"link_by_email on, ß folded to ss", true, true, "admin@straße.de", "admin@strasse.de", "",
			"email equal only under case folding"},
		{"link_by_email on, ss folded from ß", true, true, "ADMIN@STRASSE.DE", "admin@straße.de", "",
			"email equal only under case folding"},
		{"link_by_email off, ß folded to ss", false, true, "admin@straße.de", "admin@strasse.de", "", "link_by_email off"},
		// Case folding makes the long s an s: another mailbox.
		{"link_by_email on, ſ folded to s", true, true, "\u017fam@example.com", "sam@example.com", "",
			"email equal only under case folding"},
		// The owner signs in at okta with another ID: the intruder is
		// another person at the same IdP (a re-issued address). The
		// owner signs in at entra too, so okta cannot take the address
		// from them (mayTakeEmail; reissue_test.go has okta alone).
		{"link_by_email on, owner linked at the same idp and at entra", true, true, "owner@example.com", "", "okta entra",
			"owner linked to another subject at this idp"},
		{"link_by_email on, same idp and entra, email differs in case", true, true, "OWNER@example.com", "", "okta entra",
			"owner linked to another subject at this idp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ownerEmail := cmp.Or(tt.owner, "owner@example.com")
			var links []store.Link
			for _, idp := range strings.Fields(cmp.Or(tt.ownerIdPs, "entra")) {
				links = append(links, store.Link{IdP: idp, Subject: "owner"})
			}
			owner := e.seed(&store.User{Email: ownerEmail, FirstName: "O", LastName: "W", Active: true, Links: links})
			prof := full("intruder")
			prof.Email = tt.email
			rules := provision.Rules{JIT: true, LinkByEmail: tt.linkByEmail}
			d, ev := e.expectDenied("okta", rules, prof, tt.verified, provision.ReasonEmailConflict, store.EventJITConflict)
			if ev.Detail["not_linked"] != tt.notLinked {
				t.Errorf("not_linked = %q, want %q", ev.Detail["not_linked"], tt.notLinked)
			}
			if ev.UserID != owner.ID {
				t.Errorf("conflict event names user %q, want the owner %q", ev.UserID, owner.ID)
			}
			if d.UserID != "" {
				t.Errorf("denial carries user ID %q; the owner is not this person", d.UserID)
			}
			if _, err := e.byLink("okta", "intruder"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("intruder was linked: %v", err)
			}
			log := e.lastLog("sso login denied: email belongs to another user")
			if log.ContextMap()["owner_id"] != owner.ID || log.ContextMap()["not_linked"] != tt.notLinked {
				t.Errorf("log fields %v", log.ContextMap())
			}
		})
	}
}

func TestLinkByEmail(t *testing.T) {
	link := provision.Rules{JIT: true, LinkByEmail: true}
	ownerRec := func() *store.User {
		return &store.User{
			Email: "owner@example.com", EmailVerified: true, FirstName: "O", LastName: "W", Active: true, Source: store.SourceSCIM,
			Links: []store.Link{{IdP: "entra", Subject: "owner"}},
		}
	}
	t.Run("verified email links", func(t *testing.T) {
		e := newEnv(t)
		owner := e.seed(ownerRec())
		before := e.user(owner.ID).Updated
		prof := full("okta-sub")
		prof.Email = "OWNER@example.com"
		u, err := e.login("okta", link, prof, true)
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != owner.ID || len(e.users()) != 1 {
			t.Fatalf("linked to %s (owner %s), %d users", u.ID, owner.ID, len(e.users()))
		}
		want := []store.Link{{IdP: "entra", Subject: "owner"}, {IdP: "okta", Subject: "okta-sub"}}
		got := e.user(owner.ID)
		if !slices.Equal(got.Links, want) {
			t.Errorf("links = %v, want %v", got.Links, want)
		}
		// The link alone changed the SCIM-owned record: it is a write
		// all the same, whose time users show reports.
		if !got.Updated.After(before) {
			t.Errorf("Updated = %v after the link, want after %v", got.Updated, before)
		}
		ev := e.audit()
		if got := types(ev); !slices.Contains(got, store.EventJITLinked) || !slices.Contains(got, store.EventLoginSucceeded) ||
			slices.Contains(got, store.EventUserCreated) {
			t.Errorf("audit = %v", got)
		}
		if e.logs.FilterMessage("sso identity linked by verified email").Len() != 1 {
			t.Error("no link log line")
		}
		// From now on the link, not the email, finds the user.
		again := e.mustLogin("okta", link, mapping.Profile{UniqueUserID: "okta-sub"})
		if again.ID != owner.ID {
			t.Errorf("second login got %s", again.ID)
		}
	})
	for _, tc := range []struct{ name, owner, login string }{
		{"non-ASCII email differing only in case links", "ädmin@bücher.example", "ÄDMIN@BÜCHER.example"},
		// One IdP sends composed letters, another decomposed ones: one
		// mailbox, which the store indexes in NFC.
		{"decomposed spelling of the owner's email links", "zo\u00eb@example.com", "ZOE\u0308@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rec := ownerRec()
			rec.Email = tc.owner
			owner := e.seed(rec)
			prof := full("okta-sub")
			prof.Email = tc.login
			if u := e.mustLogin("okta", link, prof); u.ID != owner.ID {
				t.Errorf("signed in as %s, want the owner %s", u.ID, owner.ID)
			}
		})
	}
	t.Run("second subject at the same idp is not linked", func(t *testing.T) {
		e := newEnv(t)
		old := e.mustLogin("okta", link, full("old-sub"))
		// Another IdP may still link to the user by verified email; it
		// then speaks for them too, so okta cannot take their address
		// (reissue_test.go has the user of okta alone).
		if u := e.mustLogin("entra", link, full("old-sub")); u.ID != old.ID {
			t.Errorf("entra sign-in got %s, want the linked %s", u.ID, old.ID)
		}
		prof := full("new-sub")
		prof.Email, prof.FirstName = old.Email, "Mallory"
		// expectDenied also checks that the old user, name included, is
		// untouched.
		e.expectDenied("okta", link, prof, true, provision.ReasonEmailConflict, store.EventJITConflict)
		if _, err := e.byLink("okta", "new-sub"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("new subject was linked: %v", err)
		}
		if u := e.mustLogin("okta", link, full("old-sub")); u.ID != old.ID {
			t.Errorf("old subject now signs in as %s, want %s", u.ID, old.ID)
		}
	})
	gates := []struct {
		name   string
		mutate func(*store.User)
		rules  provision.Rules
		reason string
	}{
		{"deactivated owner", func(u *store.User) { u.Active = false }, link, provision.ReasonDeactivated},
		{"pending owner", func(u *store.User) { u.Pending = true }, link, provision.ReasonPending},
		{"domain gate", func(*store.User) {}, provision.Rules{JIT: true, LinkByEmail: true, AllowedDomains: []string{"corp.example"}},
			provision.ReasonDomainNotAllowed},
	}
	for _, g := range gates {
		t.Run(g.name+" is not linked", func(t *testing.T) {
			e := newEnv(t)
			rec := ownerRec()
			g.mutate(rec)
			e.seed(rec)
			prof := full("okta-sub")
			prof.Email = rec.Email
			e.expectDenied("okta", g.rules, prof, true, g.reason, store.EventLoginDenied)
			if _, err := e.byLink("okta", "okta-sub"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("link written despite denial: %v", err)
			}
		})
	}
}

func TestAllowedDomains(t *testing.T) {
	rules := provision.Rules{JIT: true, AllowedDomains: []string{"example.com", "@Corp.EXAMPLE"}, Optional: []string{mapping.Email}}
	if err := rules.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		email string
		ok    bool
	}{
		{"ada@example.com", true},
		{"ADA@EXAMPLE.COM", true},
		{"ada@corp.example", true},
		{"ada@sub.example.com", false},
		{"ada@example.com.evil.test", false},
		{"ada@evil.test", false},
		{"ada@", false},
		{"", false},
		// No @ at all: no domain, though the whole equals an allowed one.
		{"example.com", false},
	}
	for _, tt := range tests {
		t.Run("new user "+tt.email, func(t *testing.T) {
			domainGate(t, rules, tt.email, tt.ok)
		})
	}

	t.Run("checked on every login", func(t *testing.T) {
		e := newEnv(t)
		u := e.mustLogin("okta", jit, full("s")) // s@example.com, no gate yet
		narrowed := provision.Rules{JIT: true, AllowedDomains: []string{"corp.example"}}
		d, _ := e.expectDenied("okta", narrowed, full("s"), true, provision.ReasonDomainNotAllowed, store.EventLoginDenied)
		if d.UserID != u.ID {
			t.Errorf("denial user %q, want %q", d.UserID, u.ID)
		}
		// The incoming email is what the IdP asserts now; when it sends
		// none, the stored one is checked.
		moved := full("s")
		moved.Email = "s@corp.example"
		e.mustLogin("okta", narrowed, moved)
		e.mustLogin("okta", narrowed, mapping.Profile{UniqueUserID: "s"})
		leaving := full("s")
		leaving.Email = "s@elsewhere.test"
		e.expectDenied("okta", narrowed, leaving, true, provision.ReasonDomainNotAllowed, store.EventLoginDenied)
	})
}

// domainGate signs a new user in with email under rules, which must let
// them in (ok) or refuse them as domain_not_allowed.
func domainGate(t *testing.T, rules provision.Rules, email string, ok bool) {
	t.Helper()
	e := newEnv(t)
	prof := full("s")
	prof.Email = email
	if ok {
		e.mustLogin("okta", rules, prof)
		return
	}
	e.expectDenied("okta", rules, prof, true, provision.ReasonDomainNotAllowed, store.EventLoginDenied)
}

// TestAllowedDomainSpellings: an internationalized domain matches in any
// spelling of it (Unicode in either case, NFC or NFD, or the xn-- form),
// on either side; distinct domains stay distinct.
func TestAllowedDomainSpellings(t *testing.T) {
	tests := []struct {
		allowed, email string
		ok             bool
	}{
		{"bücher.example", "a@xn--bcher-kva.example", true},
		{"bücher.example", "a@XN--BCHER-KVA.EXAMPLE", true},
		{"bücher.example", "a@BÜCHER.example", true},
		{"bücher.example", "a@bu\u0308cher.example", true}, // NFD
		{"bu\u0308cher.example", "a@bücher.example", true},
		{"xn--bcher-kva.example", "a@bücher.example", true},
		{"@Bücher.Example", "a@bücher.example", true},
		// A JSON list may pad an entry: Validate accepts it, so it matches.
		{" @example.com ", "a@example.com", true},
		{"bücher.example", "a@bucher.example", false},
		{"bücher.example", "a@sub.bücher.example", false},
		{"strasse.de", "a@straße.de", false},
		{"straße.de", "a@strasse.de", false},
		{"straße.de", "a@xn--strae-oqa.de", true},
		// The root's dot names the same domain.
		{"example.com", "a@example.com.", true},
		{"example.com.", "a@Example.com", true},
		{"example.com", "a@example.com..", false},
		// Not a valid IDNA name: compared lower-cased, as before.
		{"under_score.example", "a@Under_Score.example", true},
		{"under_score.example", "a@underscore.example", false},
		{"bücher_x.example", "a@BU\u0308CHER_X.example", true}, // NFD, not IDNA
	}
	for _, tt := range tests {
		t.Run(tt.allowed+" "+tt.email, func(t *testing.T) {
			rules := provision.Rules{JIT: true, AllowedDomains: []string{tt.allowed}}
			if err := rules.Validate(); err != nil {
				t.Fatal(err)
			}
			domainGate(t, rules, tt.email, tt.ok)
		})
	}
}

func TestDeactivatedNeverReactivated(t *testing.T) {
	for _, mode := range []provision.UpdateMode{provision.UpdateForce, provision.UpdateImport} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t)
			rules := provision.Rules{JIT: true, Update: mode}
			u := e.mustLogin("okta", rules, full("s"))
			u.Active = false
			e.seed(u)
			changed := full("s")
			changed.FirstName = "Changed"
			for range 2 {
				d, _ := e.expectDenied("okta", rules, changed, true, provision.ReasonDeactivated, store.EventLoginDenied)
				if d.UserID != u.ID {
					t.Errorf("denial user %q", d.UserID)
				}
			}
			if got := e.user(u.ID); got.Active || got.FirstName != "Ada" {
				t.Errorf("deactivated user touched: %+v", got)
			}
		})
	}
}

func TestCreatePending(t *testing.T) {
	e := newEnv(t)
	rules := provision.Rules{JIT: true, CreatePending: true}
	usersBefore := len(e.users())
	u, err := e.login("okta", rules, full("s"), true)
	var d *provision.Denial
	if !errors.As(err, &d) || d.Reason != provision.ReasonPending || u != nil {
		t.Fatalf("first login: %v, %v; want pending denial", u, err)
	}
	if len(e.users()) != usersBefore+1 {
		t.Fatal("pending user not created")
	}
	created, err := e.byLink("okta", "s")
	if err != nil {
		t.Fatal(err)
	}
	if !created.Pending || !created.Active || !created.LastLogin.IsZero() || d.UserID != created.ID {
		t.Errorf("created %+v, denial %+v", created, d)
	}
	if got := types(e.audit()); !slices.Equal(got, []string{store.EventUserCreated, store.EventLoginDenied}) {
		t.Errorf("audit = %v", got)
	}
	if e.audit()[0].Detail["pending"] != "true" {
		t.Errorf("creation event does not say pending: %v", e.audit()[0].Detail)
	}

	// Still pending: denied, and nothing but the audit event is written.
	e.expectDenied("okta", rules, full("s"), true, provision.ReasonPending, store.EventLoginDenied)

	// An admin approves: the next login succeeds.
	created.Pending = false
	e.seed(created)
	if got := e.mustLogin("okta", rules, full("s")); got.ID != created.ID {
		t.Errorf("approved login got %s", got.ID)
	}
}

func TestUpdateModes(t *testing.T) {
	base := full("s")
	base.Groups, base.HasGroups = []string{"a", "b"}, true
	with := func(f func(*mapping.Profile)) mapping.Profile {
		p := base
		p.Groups = slices.Clone(base.Groups)
		f(&p)
		return p
	}
	type want struct {
		first, last, email string
		groups             []string
		fields             string // user.updated detail; "" = no update event
	}
	tests := []struct {
		name string
		mode provision.UpdateMode
		prof mapping.Profile
		want want
	}{
		{"force, everything changed", provision.UpdateForce, with(func(p *mapping.Profile) {
			p.FirstName, p.LastName, p.Email, p.Groups = "Augusta", "King", "ak@example.com", []string{"c"}
		}), want{"Augusta", "King", "ak@example.com", []string{"c"}, "first_name,last_name,email,user_name,groups"}},
		{"force, nothing changed (groups reordered)", provision.UpdateForce, with(func(p *mapping.Profile) {
			p.Groups = []string{"b", "a", "a"}
		}), want{"Ada", "Lovelace", "s@example.com", []string{"a", "b"}, ""}},
		{"force, empty values keep stored ones", provision.UpdateForce, with(func(p *mapping.Profile) {
			p.FirstName, p.LastName, p.Email, p.Groups, p.HasGroups = "", " ", "", nil, false
		}), want{"Ada", "Lovelace", "s@example.com", []string{"a", "b"}, ""}},
		{"force, groups overage keeps groups", provision.UpdateForce, with(func(p *mapping.Profile) {
			p.LastName, p.Groups, p.GroupsOverage = "King", nil, true
		}), want{"Ada", "King", "s@example.com", []string{"a", "b"}, "last_name"}},
		{"force, explicit empty group list clears", provision.UpdateForce, with(func(p *mapping.Profile) {
			p.Groups = []string{}
		}), want{"Ada", "Lovelace", "s@example.com", nil, "groups"}},
		{"force, email case change", provision.UpdateForce, with(func(p *mapping.Profile) {
			p.Email = "S@Example.com"
		}), want{"Ada", "Lovelace", "S@Example.com", []string{"a", "b"}, "email,user_name"}},
		{"import, everything changed", provision.UpdateImport, with(func(p *mapping.Profile) {
			p.FirstName, p.LastName, p.Email, p.Groups = "Augusta", "King", "ak@example.com", []string{"c"}
		}), want{"Ada", "Lovelace", "s@example.com", []string{"a", "b"}, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rules := provision.Rules{JIT: true, Update: tt.mode}
			first := e.mustLogin("okta", rules, base)
			n := len(e.audit())
			e.logs.TakeAll()
			u := e.mustLogin("okta", rules, tt.prof)
			got := e.user(first.ID)
			if got.FirstName != tt.want.first || got.LastName != tt.want.last || got.Email != tt.want.email ||
				!slices.Equal(got.Groups, tt.want.groups) {
				t.Errorf("stored %q %q %q %q, want %+v", got.FirstName, got.LastName, got.Email, got.Groups, tt.want)
			}
			if u.FirstName != got.FirstName || u.Email != got.Email || !u.LastLogin.Equal(e.now) {
				t.Errorf("returned user %+v differs from stored %+v", u, got)
			}
			if tt.want.fields != "" && !got.Updated.Equal(e.now) || tt.want.fields == "" && !got.Updated.Equal(first.Updated) {
				t.Errorf("Updated = %v (created %v, now %v)", got.Updated, first.Updated, e.now)
			}
			ev := e.audit()[n:]
			wantTypes := []string{store.EventLoginSucceeded}
			if tt.want.fields != "" {
				wantTypes = []string{store.EventUserUpdated, store.EventLoginSucceeded}
				if ev[0].Detail["fields"] != tt.want.fields || len(ev[0].Detail) != 1 {
					t.Errorf("update detail = %v, want fields %s", ev[0].Detail, tt.want.fields)
				}
			}
			if tt.prof.GroupsOverage {
				// Written in the sign-in's transaction, for the
				// admin to see which users' groups are stale.
				wantTypes = append(wantTypes, store.EventGroupsOverage)
			}
			if !slices.Equal(types(ev), wantTypes) {
				t.Errorf("audit = %v, want %v", types(ev), wantTypes)
			}
			if lines := e.logs.FilterMessage("sso user updated").Len(); (lines == 1) != (tt.want.fields != "") || lines > 1 {
				t.Errorf("%d update log lines", lines)
			}
		})
	}

	t.Run("force, new email owned by another user is kept and audited", func(t *testing.T) {
		e := newEnv(t)
		other := e.seed(&store.User{Email: "taken@example.com", Active: true})
		u := e.mustLogin("okta", jit, base)
		prof := base
		prof.Email, prof.FirstName = "TAKEN@example.com", "Augusta"
		got := e.mustLogin("okta", jit, prof)
		if got.Email != "s@example.com" || got.FirstName != "Augusta" || got.ID != u.ID {
			t.Errorf("got %+v", got)
		}
		var conflict *store.Event
		for _, ev := range e.audit() {
			if ev.Type == store.EventJITConflict {
				conflict = &ev
			}
		}
		if conflict == nil || conflict.UserID != u.ID || conflict.Detail["owner"] != other.ID || conflict.Detail["field"] != "email" {
			t.Errorf("conflict event = %+v", conflict)
		}
		if e.logs.FilterMessage("sso user email not updated: address belongs to another user").Len() != 1 {
			t.Error("no conflict log line")
		}
	})
}

// TestUserNameFollowsEmail: the userName JIT gave a user (their email)
// follows a force update of the email, so that a SCIM lookup by the old
// address, once it is re-issued, does not find the previous holder.
func TestUserNameFollowsEmail(t *testing.T) {
	byUserName := func(e *env, name string) string {
		var u *store.User
		err := e.db.View(context.Background(), func(tx store.Tx) (err error) { u, err = tx.UserByUserName(name); return err })
		if errors.Is(err, store.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	alice := full("alice-sub")
	alice.Email = "alice@example.com"
	t.Run("moves to the new email, and the old one goes to its new holder", func(t *testing.T) {
		e := newEnv(t)
		a := e.mustLogin("okta", jit, alice)
		moved := alice
		moved.Email = "alice.old@example.com"
		n := len(e.audit())
		e.mustLogin("okta", jit, moved)
		if got := e.user(a.ID); got.UserName != "alice.old@example.com" {
			t.Errorf("userName = %q, want the new email", got.UserName)
		}
		if ev := e.audit()[n]; ev.Type != store.EventUserUpdated || ev.Detail["fields"] != "email,user_name" {
			t.Errorf("audit %+v, want user.updated fields email,user_name", ev)
		}
		bob := full("bob-sub")
		bob.Email = "alice@example.com" // the address, re-issued
		b := e.mustLogin("okta", jit, bob)
		if got := byUserName(e, "alice@example.com"); got != b.ID {
			t.Errorf("userName alice@example.com finds %q, want Bob %s (Alice is %s)", got, b.ID, a.ID)
		}
	})
	t.Run("its ID when another user holds the new email as userName", func(t *testing.T) {
		e := newEnv(t)
		a := e.mustLogin("okta", jit, alice)
		other := e.seed(&store.User{UserName: "alice.old@example.com", Email: "other@example.com", Active: true, Source: store.SourceSCIM})
		moved := alice
		moved.Email = "alice.old@example.com"
		e.mustLogin("okta", jit, moved)
		if got := e.user(a.ID); got.UserName != a.ID || got.Email != "alice.old@example.com" {
			t.Errorf("userName %q, email %q; want the user's ID as userName, the email updated", got.UserName, got.Email)
		}
		if got := byUserName(e, a.ID); got != a.ID {
			t.Errorf("the user's ID as userName finds %q, want the user %s", got, a.ID)
		}
		if got := byUserName(e, "alice.old@example.com"); got != other.ID {
			t.Errorf("userName finds %q, want its holder %s", got, other.ID)
		}
		if got := byUserName(e, "alice@example.com"); got != "" {
			t.Errorf("the old address still finds %s", got)
		}
	})
	// userNames are matched case-insensitively (SCIM): the user's own
	// userName under the old spelling must not count as another holder's.
	t.Run("follows a new spelling of the same address", func(t *testing.T) {
		e := newEnv(t)
		a := e.mustLogin("okta", jit, alice)
		respelled := alice
		respelled.Email = "Alice@Example.com"
		e.mustLogin("okta", jit, respelled)
		if got := e.user(a.ID); got.UserName != "Alice@Example.com" {
			t.Errorf("userName = %q, want the new spelling", got.UserName)
		}
	})
	t.Run("a userName set by SCIM or an admin stays", func(t *testing.T) {
		for _, rec := range []store.User{
			{Source: store.SourceJIT, UserName: "alice"},               // renamed by an admin
			{Source: store.SourceSCIM, UserName: "alice@example.com"},  // SCIM owns the profile
			{Source: store.SourceAdmin, UserName: "alice@example.com"}, // made by an admin
		} {
			e := newEnv(t)
			rec.Email, rec.Active = "alice@example.com", true
			rec.Links = []store.Link{{IdP: "okta", Subject: "alice-sub"}}
			u := e.seed(&rec)
			moved := alice
			moved.Email = "alice.new@example.com"
			e.mustLogin("okta", jit, moved)
			if got := e.user(u.ID); got.UserName != rec.UserName {
				t.Errorf("source %q: userName %q, want %q kept", rec.Source, got.UserName, rec.UserName)
			}
		}
	})
}

func TestDefaultGroups(t *testing.T) {
	rules := provision.Rules{JIT: true, DefaultGroups: []string{"staff", "app-users", "staff"}}
	tests := []struct {
		name       string
		groups     []string
		hasGroups  bool
		overage    bool
		wantCreate []string
	}{
		{"no groups sent", nil, false, false, []string{"app-users", "staff"}},
		{"union with IdP groups", []string{"eng", "staff"}, true, false, []string{"app-users", "eng", "staff"}},
		{"overage: defaults only", nil, true, true, []string{"app-users", "staff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			prof := full("s")
			prof.Groups, prof.HasGroups, prof.GroupsOverage = tt.groups, tt.hasGroups, tt.overage
			u := e.mustLogin("okta", rules, prof)
			if !slices.Equal(u.Groups, tt.wantCreate) || !slices.Equal(e.user(u.ID).Groups, tt.wantCreate) {
				t.Errorf("groups = %v, want %v", u.Groups, tt.wantCreate)
			}
			// A later force update with the IdP's groups keeps the defaults.
			prof.Groups, prof.HasGroups, prof.GroupsOverage = []string{"ops"}, true, false
			u = e.mustLogin("okta", rules, prof)
			if want := []string{"app-users", "ops", "staff"}; !slices.Equal(u.Groups, want) {
				t.Errorf("after update groups = %v, want %v", u.Groups, want)
			}
		})
	}
}

func TestConcurrentFirstLoginsCreateOneUser(t *testing.T) {
	e := newEnv(t)
	const n = 30
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			u, err := e.p.Login(context.Background(), "okta", jit, full("s"), true)
			errs[i] = err
			if u != nil {
				ids[i] = u.ID
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		if ids[i] != ids[0] {
			t.Errorf("login %d got user %s, login 0 got %s", i, ids[i], ids[0])
		}
	}
	if got := len(e.users()); got != 1 {
		t.Errorf("%d users, want 1", got)
	}
	created, succeeded := 0, 0
	for _, ev := range e.audit() {
		switch ev.Type {
		case store.EventUserCreated:
			created++
		case store.EventLoginSucceeded:
			succeeded++
		}
	}
	if created != 1 || succeeded != n {
		t.Errorf("audit: %d created, %d succeeded; want 1, %d", created, succeeded, n)
	}
	if lines := e.logs.FilterMessage("sso user created").Len(); lines != 1 {
		t.Errorf("%d creation log lines, want 1 even if a transaction was retried", lines)
	}
}

func TestStoreErrorsAreNotDenials(t *testing.T) {
	t.Run("cancelled context writes nothing", func(t *testing.T) {
		e := newEnv(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		u, err := e.p.Login(ctx, "okta", jit, full("s"), true)
		var d *provision.Denial
		if err == nil || errors.As(err, &d) || u != nil || !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, %v; want a context error", u, err)
		}
		if len(e.users()) != 0 || len(e.audit()) != 0 {
			t.Error("something was written")
		}
	})
	t.Run("closed store", func(t *testing.T) {
		e := newEnv(t)
		if err := e.db.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := e.p.Login(context.Background(), "okta", jit, full("s"), true)
		var d *provision.Denial
		if err == nil || errors.As(err, &d) {
			t.Errorf("err = %v, want a store error", err)
		}
	})
}

func TestLogsCarryNoProfileValues(t *testing.T) {
	e := newEnv(t)
	e.seed(&store.User{Email: "owner@example.com", Active: true})
	prof := full("s")
	prof.FirstName, prof.LastName, prof.Email = "Secretfirst", "Secretlast", "secret@example.com"
	e.mustLogin("okta", jit, prof)
	prof.FirstName = "Secretchanged"
	e.mustLogin("okta", jit, prof)
	conflict := full("x")
	conflict.Email = "owner@example.com"
	_, _ = e.login("okta", jit, conflict, false)
	_, _ = e.login("okta", provision.Rules{}, full("y"), true)
	msgs := map[string]int{}
	for _, l := range e.logs.All() {
		msgs[l.Message]++
		for k, v := range l.ContextMap() {
			s := strings.ToLower(fmt.Sprint(v))
			if strings.Contains(s, "secret") || strings.Contains(s, "@") {
				t.Errorf("log %q field %s = %v reveals a profile value", l.Message, k, v)
			}
		}
	}
	want := map[string]int{
		"sso user created": 1, "sso user updated": 1,
		"sso login denied: email belongs to another user": 1, "sso login denied": 1,
	}
	for m, n := range want {
		if msgs[m] != n {
			t.Errorf("%d lines %q, want %d (all: %v)", msgs[m], m, n, msgs)
		}
	}
}

func TestRulesValidateAndModes(t *testing.T) {
	bad := []provision.Rules{
		{Optional: []string{mapping.UniqueUserID}},
		{Optional: []string{"phone"}},
		{AllowedDomains: []string{""}},
		{AllowedDomains: []string{"a@b.c"}},
		{Update: provision.UpdateMode(7)},
	}
	for _, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", r)
		}
	}
	// An entry matching would never match (a pattern, a URL, an address)
	// is refused with the way to write it.
	for _, d := range []string{"*.example.com", "*", "https://example.com", "example.com/", "example.com:443",
		"a@b.c", "@@example.com", "exa mple.com", "example.com\tcorp.example", " "} {
		err := provision.Rules{AllowedDomains: []string{"example.com", d}}.Validate()
		if err == nil || !strings.Contains(err.Error(), "not a domain name") || !strings.Contains(err.Error(), "each subdomain on its own") {
			t.Errorf("Validate(allowed_domains %q) = %v, want a refusal saying to list subdomains", d, err)
		}
	}
	for _, d := range []string{"example.com", "@Corp.EXAMPLE", " example.com ", "bücher.example", "xn--bcher-kva.example", "under_score.example"} {
		if err := (provision.Rules{AllowedDomains: []string{d}}).Validate(); err != nil {
			t.Errorf("Validate(allowed_domains %q) = %v", d, err)
		}
	}
	for _, s := range []string{"force", "import"} {
		m, err := provision.ParseUpdateMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseUpdateMode(%q) = %v, %v", s, m, err)
		}
	}
	if m, _ := provision.ParseUpdateMode("force"); m != provision.UpdateForce || provision.UpdateMode(0) != provision.UpdateForce {
		t.Error("force must be the zero value")
	}
	if _, err := provision.ParseUpdateMode("sometimes"); err == nil {
		t.Error("unknown mode accepted")
	}
}

// TestLoginAndGrant: the grant commits with the sign-in, never runs for a
// denial, and its failure leaves nothing of the sign-in behind.
func TestLoginAndGrant(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	db, p := e.db, e.p
	prof := mapping.Profile{UniqueUserID: "sub-1", FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"}

	failing := errors.New("grant failed")
	_, err := p.LoginAndGrant(ctx, "okta", provision.Rules{JIT: true}, prof, false, func(store.Tx, *store.User) error { return failing })
	if !errors.Is(err, failing) {
		t.Fatalf("err = %v, want the grant's error", err)
	}
	_ = db.View(ctx, func(tx store.Tx) error {
		if _, err := tx.UserByLink("okta", "sub-1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a failed grant left the JIT-created user behind: %v", err)
		}
		return nil
	})

	called := false
	_, err = p.LoginAndGrant(ctx, "okta", provision.Rules{}, prof, false, func(store.Tx, *store.User) error { called = true; return nil })
	var d *provision.Denial
	if !errors.As(err, &d) || called {
		t.Fatalf("denied sign-in: err = %v, grant called = %v", err, called)
	}

	var granted string
	u, err := p.LoginAndGrant(ctx, "okta", provision.Rules{JIT: true}, prof, false, func(_ store.Tx, u *store.User) error { granted = u.ID; return nil })
	if err != nil || granted == "" || granted != u.ID {
		t.Fatalf("allowed sign-in: user %v, granted %q, err %v", u, granted, err)
	}
}

// TestInvalidAttributeDenied: a subject or email the store cannot index
// (too long, or with a control character) is a denial naming the
// attribute, audited, with nothing written; not an internal error at
// PutUser.
func TestInvalidAttributeDenied(t *testing.T) {
	long := strings.Repeat("a", store.MaxKeyBytes+1)
	tests := []struct {
		name          string
		known         bool // the subject signed in before, with a valid profile
		sub, email    string
		attr, problem string // attr "": accepted
	}{
		{"subject too long", false, long, "x@example.com", mapping.UniqueUserID, "too_long"},
		{"subject with escape", false, "sub\x1b[31m", "x@example.com", mapping.UniqueUserID, "control_character"},
		{"subject with NUL", false, "sub\x00", "x@example.com", mapping.UniqueUserID, "control_character"},
		{"email too long", false, "s", long[:store.MaxKeyBytes-len("@example.com")+1] + "@example.com", mapping.Email, "too_long"},
		{"email with newline", false, "s", "x\n@example.com", mapping.Email, "control_character"},
		{"known user, new email with DEL", true, "s", "x\x7f@example.com", mapping.Email, "control_character"},
		{"known user, new email too long", true, "s", long + "@example.com", mapping.Email, "too_long"},
		{"known user, new email with a fullwidth domain", true, "s", "x@ｅxample.com", mapping.Email, provision.ProblemUnmappedDomain},
		{"subject and email at the limit", false, long[:store.MaxKeyBytes], long[:store.MaxKeyBytes-len("@example.com")] + "@example.com", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.known {
				e.mustLogin("okta", jit, full(tt.sub))
			}
			prof := full(tt.sub)
			prof.Email = tt.email
			if tt.attr == "" {
				e.mustLogin("okta", jit, prof)
				return
			}
			usersBefore, auditBefore := e.users(), len(e.audit())
			u, err := e.login("okta", jit, prof, true)
			var d *provision.Denial
			if !errors.As(err, &d) || u != nil {
				t.Fatalf("login returned %v, %v; want a denial", u, err)
			}
			if d.Reason != provision.ReasonInvalidAttribute || d.Attribute != tt.attr {
				t.Errorf("denial %q (%q), want %q (%q)", d.Reason, d.Attribute, provision.ReasonInvalidAttribute, tt.attr)
			}
			if msg := d.Message(); !strings.Contains(msg, tt.attr) || strings.Contains(msg, "example.com") || strings.Contains(msg, "sub") {
				t.Errorf("message %q does not name %s, or shows a value", msg, tt.attr)
			}
			if !maps.Equal(e.users(), usersBefore) {
				t.Error("denied login wrote a user")
			}
			ev := e.audit()[auditBefore:]
			if len(ev) != 1 {
				t.Fatalf("audit = %v, want one login.denied", types(ev))
			}
			want := map[string]string{"attribute": tt.attr, "problem": tt.problem}
			if ev[0].Type != store.EventLoginDenied || ev[0].Reason != provision.ReasonInvalidAttribute || !maps.Equal(ev[0].Detail, want) {
				t.Errorf("audit event %+v, want login.denied %s %v", ev[0], provision.ReasonInvalidAttribute, want)
			}
			// The subject is kept when it is not the problem; an invalid
			// one is not copied into the audit trail or the log.
			wantSub := tt.sub
			if tt.attr == mapping.UniqueUserID {
				wantSub = ""
			}
			if ev[0].Subject != wantSub {
				t.Errorf("audit subject %q, want %q", ev[0].Subject, wantSub)
			}
			log := e.lastLog("sso login denied").ContextMap()
			if log["attribute"] != tt.attr || log["problem"] != tt.problem || log["subject"] != wantSub || log["reason"] != provision.ReasonInvalidAttribute {
				t.Errorf("log fields %v", log)
			}
		})
	}
}
