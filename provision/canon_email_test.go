package provision_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestCanonEmailJoinsOnlyWhatTheStoreKeysAsOne: two addresses CanonEmail
// makes one (the routes' `allow user` rules, link_by_email) are one key in
// the store's email index (store.FoldName), which is all the lookups of a
// mailbox's holder read: else the second is given to a second user, who
// passes the first's user rules. Checked for every code point up to
// U+1FFFF, alone and between a letter and a combining mark, so that
// a future x/text or Go Unicode update that splits the two rules fails
// here. ("İ" did: Go lowers it to "i", FoldName to "i" and U+0307.)
func TestCanonEmailJoinsOnlyWhatTheStoreKeysAsOne(t *testing.T) {
	type seen struct{ email, key string }
	byCanon := map[string]seen{}
	for _, form := range [][2]string{{"", ""}, {"a", "\u0307"}} {
		for r := rune(0); r <= 0x1FFFF; r++ {
			if !utf8.ValidRune(r) {
				continue
			}
			email := form[0] + string(r) + form[1] + "@x.com"
			canon, key := provision.CanonEmail(email), store.FoldName(email)
			if s, ok := byCanon[canon]; !ok {
				byCanon[canon] = seen{email, key}
			} else if s.key != key {
				t.Errorf("CanonEmail(%+q) = CanonEmail(%+q) = %+q, but the store keys them apart: %+q, %+q",
					email, s.email, canon, key, s.key)
			}
		}
	}
}

// TestCanonEmailSpellings: what CanonEmail makes one mailbox, and what it
// keeps apart though the store's index folds them together (the safe
// direction: link_by_email then refuses, "email equal only under case
// folding", and a user rule does not match).
func TestCanonEmailSpellings(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"Ada@Example.COM", "ada@example.com", true},
		{"zoe\u0308@bücher.example", "ZOË@xn--bcher-kva.example.", true}, // NFD, xn--, dot
		{"ΝΊΚΟΣ@example.gr", "νίκος@example.gr", true},                   // final sigma
		{"\u0130da@x.com", "i\u0307da@x.com", true},                      // İ and its fold
		{"\u0130DA@x.com", "\u0130da@x.com", true},
		{"STRA\u1E9EE@x.com", "straße@x.com", true},  // capital sharp s
		{"ADA\u13a0@x.com", "ada\u13a0@x.com", true}, // Cherokee Ꭰ stays (x/text's fold of it is not idempotent); the rest is lowered
		{"\u0130da@x.com", "ida@x.com", false},       // FoldName keeps them apart
		{"\u017fam@x.com", "sam@x.com", false},       // long s: FoldName merges, CanonEmail does not
		{"straße@x.com", "strasse@x.com", false},
		{"a@straße.de", "a@strasse.de", false},
	} {
		if got := provision.CanonEmail(tc.a) == provision.CanonEmail(tc.b); got != tc.same {
			t.Errorf("CanonEmail(%q) = %q, CanonEmail(%q) = %q: one mailbox %v, want %v",
				tc.a, provision.CanonEmail(tc.a), tc.b, provision.CanonEmail(tc.b), got, tc.same)
		}
	}
}

// TestCanonEmailKeepsTheStoreKey: the local part CanonEmail gives an
// address has the store's key (store.FoldName) of the address's own, which
// is what makes two addresses one to CanonEmail one key to the store. A
// letter-by-letter lower case does not always keep it: "Ĥ̱" (H with
// circumflex, then a macron below) lowered is "ẖ̂", which the store
// keys apart from it, and "İ" lowered to its fold before a mark below
// is reordered by the key's NFC. Such a local part is only put in NFC.
func TestCanonEmailKeepsTheStoreKey(t *testing.T) {
	for _, email := range []string{
		"Ada@x.com",
		"\u0130da@x.com",
		"ΝΊΚΟΣ@x.com",
		"ADA\u13a0@x.com",
		"\u0124\u0331@x.com",
		"ADA\u0124\u0331@x.com",
		"\u0130\u0316@x.com",
		"H\u0331\u0302@x.com", // NFD of the one above's letter
	} {
		canon := provision.CanonEmail(email)
		local := func(s string) string { return s[:strings.LastIndexByte(s, '@')] }
		if got, want := store.FoldName(local(canon)), store.FoldName(local(email)); got != want {
			t.Errorf("CanonEmail(%+q) = %+q: its local part's store key %+q, want the address's %+q", email, canon, got, want)
		}
	}
}

// TestSignInCannotTakeAMailboxTheStoreKeysApart: a sign-in at another IdP
// whose address is unverified with "IDA@x.com", the owner's mailbox, is
// refused (email_conflict); one with "İda@x.com", which the store's index
// keys apart from "ida@x.com", may make a user of its own, but one whose
// address is no spelling of the owner's to CanonEmail, so that it passes
// no `allow user ida@x.com` rule.
func TestSignInCannotTakeAMailboxTheStoreKeysApart(t *testing.T) {
	e := newEnv(t)
	p1 := full("entra-sub")
	p1.Email = "ida@x.com"
	owner := e.mustLogin("entra", jit, p1)

	p2 := full("saml-sub-1")
	p2.Email = "IDA@x.com"
	e.expectDenied("saml", jit, p2, false, provision.ReasonEmailConflict, "jit.conflict")

	p3 := full("saml-sub-2")
	p3.Email = "\u0130da@x.com" // "İda@x.com"
	u, err := e.login("saml", jit, p3, false)
	var d *provision.Denial
	switch {
	case errors.As(err, &d) && d.Reason == provision.ReasonEmailConflict:
		// As for any other spelling of the owner's mailbox.
	case err != nil:
		t.Fatalf("login: %v", err)
	case u.ID != owner.ID && provision.CanonEmail(u.Email) == provision.CanonEmail(owner.Email):
		t.Errorf("an unverified sign-in at another IdP with %q (CanonEmail %q, the owner's) created a second user %s "+
			"beside the owner %s of %q: both match `allow user ida@x.com`; want email_conflict as for %q",
			u.Email, provision.CanonEmail(u.Email), u.ID, owner.ID, owner.Email, p2.Email)
	}
}

// TestForceUpdateCannotTakeAMailboxTheStoreKeysApart: the same for a known
// user's force update: a change to another user's address in ASCII upper
// case is kept back (jit.conflict), and a change to "İda@x.com" leaves the
// user with no spelling of the owner's mailbox.
func TestForceUpdateCannotTakeAMailboxTheStoreKeysApart(t *testing.T) {
	e := newEnv(t)
	p1 := full("entra-sub")
	p1.Email = "ida@x.com"
	owner := e.mustLogin("entra", jit, p1)

	pm := full("saml-mal")
	pm.Email = "mal@x.com"
	mal, err := e.login("saml", jit, pm, false)
	if err != nil {
		t.Fatal(err)
	}
	pm.Email = "IDA@x.com"
	if _, err := e.login("saml", jit, pm, false); err != nil {
		t.Fatal(err)
	}
	if got := e.user(mal.ID).Email; got != "mal@x.com" {
		t.Fatalf("the ASCII spelling of the owner's address was written: %q", got)
	}
	pm.Email = "\u0130da@x.com"
	if _, err := e.login("saml", jit, pm, false); err != nil {
		t.Fatal(err)
	}
	if got := e.user(mal.ID).Email; provision.CanonEmail(got) == provision.CanonEmail(owner.Email) {
		t.Errorf("an unverified force update gave user %s the address %q, which CanonEmail takes for owner %s's %q; "+
			"want it kept back as %q was", mal.ID, got, owner.ID, owner.Email, "IDA@x.com")
	}
}
