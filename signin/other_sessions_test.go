package signin_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSignInChangeReachesTheUsersOtherSessions: the IdP removed ada from
// "eng", then changed her email; she signs in again on a second device
// (update force stores both). Her first device's session, cached on this
// instance, must carry them at once, as after a SCIM change, which forgets
// the user: else an `allow group eng` route would still admit it, and a
// stream it holds stay open, for up to the cache TTL. So must a
// default_groups change that a sign-in without a groups claim brings. The Manager is told
// to forget the user (which checks her streams again and tells the other
// instances); a sign-in that changes neither leaves her sessions cached.
func TestSignInChangeReachesTheUsersOtherSessions(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var forgotten []string
	e.sessions.Forgotten = func(inv store.Invalidation) {
		mu.Lock()
		defer mu.Unlock()
		forgotten = append(forgotten, inv.Users...)
	}
	forgets := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := len(forgotten)
		forgotten = nil
		return n
	}
	p := e.idp(idp.ProtocolOIDC, "generic")
	ctx := context.Background()
	first, err := e.svc.SignIn(ctx, p, oidcAssertion("1", "Lovelace", false), "")
	if err != nil || first.Session == nil {
		t.Fatalf("first: %+v %v", first, err)
	}
	if id, err := e.sessions.Resolve(ctx, first.Session.Token); err != nil || !slices.Contains(id.Groups, "eng") {
		t.Fatalf("first session: %+v %v", id, err)
	}

	// The same groups and email (a new family name only): nothing the
	// access rules match changed, her sessions stay cached.
	forgets()
	if _, err := e.svc.SignIn(ctx, p, oidcAssertion("2", "King", false), ""); err != nil {
		t.Fatal(err)
	}
	if n := forgets(); n != 0 {
		t.Errorf("a sign-in that changed neither groups nor email forgot the user %d times", n)
	}

	for _, step := range []struct {
		what   string
		change func(a *idp.Assertion)
		check  func(groups []string, email string) bool
	}{
		{"group removed", func(a *idp.Assertion) { a.Attributes["groups"] = []string{"sales"} },
			func(groups []string, _ string) bool { return slices.Equal(groups, []string{"sales"}) }},
		{"email changed", func(a *idp.Assertion) {
			a.Attributes["groups"] = []string{"sales"}
			a.Attributes["email"] = []string{"ada@new.example"}
		}, func(_ []string, email string) bool { return email == "ada@new.example" }},
		// The operator adds a default group; this sign-in carries no
		// groups claim (generic: the stored groups stand), and the
		// default still reaches her and her other sessions.
		{"default group added, no groups claim", func(a *idp.Assertion) {
			delete(a.Attributes, "groups")
			a.Attributes["email"] = []string{"ada@new.example"}
			p.Rules.DefaultGroups = []string{"guests"}
		}, func(groups []string, _ string) bool { return slices.Equal(groups, []string{"guests", "sales"}) }},
	} {
		a := oidcAssertion(step.what, "King", false)
		step.change(a)
		second, err := e.svc.SignIn(ctx, p, a, "") // another device: no previous session
		if err != nil || second.Session == nil {
			t.Fatalf("%s: second sign-in: %+v %v", step.what, second, err)
		}
		if n := forgets(); n != 1 {
			t.Errorf("%s: the user forgotten %d times, want once", step.what, n)
		}
		id, err := e.sessions.Resolve(ctx, first.Session.Token)
		if err != nil {
			t.Fatal(err)
		}
		if !step.check(id.Groups, id.Email) {
			t.Errorf("%s: the first device's session still carries groups %q, email %q (stored now: %q, %q)", step.what, id.Groups, id.Email, second.User.Groups, second.User.Email)
		}
		if _, err := e.sessions.Resolve(ctx, second.Session.Token); err != nil {
			t.Errorf("%s: the new session: %v", step.what, err)
		}
	}
}
