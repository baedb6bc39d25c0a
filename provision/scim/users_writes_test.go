package scim_test

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// A user created inactive is audited as such: the user.created event says
// active=false, so that "audit --user" shows the account never could sign
// in; an active user's event does not carry the key.
func TestCreateAuditsInactiveUser(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["off"] = e.must(201, "POST", "/Users", `{"userName":"off@x.io","active":false}`).body["id"].(string)
	e.vars["on"] = e.must(201, "POST", "/Users", `{"userName":"on@x.io","active":true}`).body["id"].(string)
	seen := map[string]bool{}
	for _, ev := range e.audit() {
		if ev.Type != store.EventUserCreated {
			continue
		}
		seen[ev.UserID] = true
		active, has := ev.Detail["active"]
		switch ev.UserID {
		case e.vars["off"]:
			if active != "false" {
				t.Errorf("user.created of the inactive user: detail %v, want active=false", ev.Detail)
			}
		case e.vars["on"]:
			if has {
				t.Errorf("user.created of the active user: detail %v, want no active key", ev.Detail)
			}
		}
	}
	if !seen[e.vars["off"]] || !seen[e.vars["on"]] {
		t.Fatalf("user.created events missing: %v", seen)
	}
}

// A profile change reaches a signed-in user's next request at once: the
// session cache forgets the user when the write commits, so the identity
// the gateway passes upstream carries the new name and address, not the
// ones cached at sign-in.
func TestProfileChangeReachesTheSessionAtOnce(t *testing.T) {
	for _, c := range []struct{ name, method, body string }{
		{"PATCH", "PATCH", patchBody(`{"op":"replace","path":"name.givenName","value":"Augusta"},` +
			`{"op":"replace","path":"emails[type eq \"work\"].value","value":"augusta@example.com"}`)},
		{"PUT", "PUT", `{"userName":"ada@example.com","externalId":"ext-ada","active":true,"name":{"givenName":"Augusta"},
			"emails":[{"value":"augusta@example.com","type":"work","primary":true}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			e.vars["id"] = e.must(201, "POST", "/Users", baseUser).body["id"].(string)
			cookie := e.signIn(e.vars["id"])
			e.must(200, c.method, "/Users/{{id}}", c.body)
			id, err := e.sessions.Resolve(context.Background(), cookie)
			if err != nil {
				t.Fatal(err)
			}
			if id.FirstName != "Augusta" || id.Email != "augusta@example.com" {
				t.Errorf("session after the %s: first name %q, email %q; want the new profile", c.method, id.FirstName, id.Email)
			}
		})
	}
}

// A create that adopts a signed-in JIT user (by externalId) changes that
// user's profile as a PUT would, and the session sees it at once.
func TestAdoptingCreateReachesTheSessionAtOnce(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	u, err := e.login(scimAndJIT, "00uabc", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	cookie := e.signIn(u.ID)
	r := e.must(201, "POST", "/Users", `{"userName":"ada","externalId":"00uabc","active":true,
		"name":{"givenName":"Augusta","familyName":"King"},"emails":[{"value":"augusta@example.com","type":"work","primary":true}]}`)
	if r.body["id"] != u.ID {
		t.Fatalf("the create did not adopt %s: %s", u.ID, r.raw)
	}
	id, err := e.sessions.Resolve(context.Background(), cookie)
	if err != nil {
		t.Fatal(err)
	}
	if id.FirstName != "Augusta" || id.LastName != "King" || id.Email != "augusta@example.com" {
		t.Errorf("session after the adopting create: %q %q <%s>; want Augusta King <augusta@example.com>", id.FirstName, id.LastName, id.Email)
	}
}

// An externalId another user of the IdP holds is a 409 uniqueness on a
// PATCH or PUT, as on a create, not a 500: the directory shows it to its
// admin as a conflict to resolve.
func TestUpdateToAnotherUsersExternalIDConflicts(t *testing.T) {
	for _, c := range []struct{ name, method, body string }{
		{"PATCH", "PATCH", patchBody(`{"op":"replace","path":"externalId","value":"ext-ada"}`)},
		{"PUT", "PUT", `{"userName":"noemail","externalId":"ext-ada","active":true}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			e.must(201, "POST", "/Users", baseUser)
			e.vars["id"] = e.must(201, "POST", "/Users", noEmailUser).body["id"].(string)
			scimError(t, e.do(c.method, "/Users/{{id}}", c.body), 409, "uniqueness")
			if u := e.user("{{id}}"); u.ExternalID != "" {
				t.Errorf("externalId stored despite the conflict: %q", u.ExternalID)
			}
		})
	}
}

// The JIT user a create adopts by externalId may hold the userName the
// create sends (the same person, known by the same name): adopted, not a
// 409 for a userName the user holds themself.
func TestCreateAdoptsJITUserHoldingTheUserName(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	u, err := e.login(scimAndJIT, "00uabc", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	r := e.must(201, "POST", "/Users", `{"userName":"`+u.UserName+`","externalId":"00uabc","active":true,"name":{"givenName":"Augusta"}}`)
	if r.body["id"] != u.ID {
		t.Fatalf("create did not adopt %s: %s", u.ID, r.raw)
	}
	if got := e.user(u.ID); got.FirstName != "Augusta" || got.UserName != u.UserName {
		t.Errorf("after the adopting create: %+v", got)
	}
}

// The directory's first write to a JIT user takes the profile over even
// when it changes no field: a PATCH of active alone makes the user SCIM's
// (Source scim, audited adopted_from), from which on logins no longer
// change the profile the directory owns.
func TestUnchangedFirstWriteStillAdopts(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	u := &store.User{IdP: "entra", UserName: "ada@x.io", ExternalID: "oid-1", Source: store.SourceJIT, Active: true,
		FirstName: "Ada", LastName: "Lovelace", Email: "ada@x.io",
		Emails: []store.Email{{Value: "ada@x.io", Type: "work", Primary: true}}, Created: t0, Updated: t0}
	if err := e.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	e.vars["id"] = u.ID
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"replace","path":"active","value":true}`))
	if got := e.user(u.ID); got.Source != store.SourceSCIM {
		t.Fatalf("after the first SCIM write the user's source is %q, want %q", got.Source, store.SourceSCIM)
	}
	adopted := false
	for _, ev := range e.audit() {
		adopted = adopted || ev.Type == store.EventUserUpdated && ev.UserID == u.ID && ev.Detail["adopted_from"] == store.SourceJIT
	}
	if !adopted {
		t.Error("no user.updated event with adopted_from=jit")
	}
}

// TestUserNameShownIsTheUsersOwn: userName is unique (/Schemas:
// uniqueness server), and every user SCIM shows has one of its own, on
// both backends. A JIT user whose email another user holds as userName
// gets its ID as userName (provision.JITUserName), which a filter finds;
// a user stored without one (before that rule) is shown the one JIT would
// give it now, the email only when no one holds it. Once the JIT user had
// none and was shown the email: GET /Users listed two users under one
// userName, the filter found only the other, and a PUT of the document
// GET returned was 409 "userName is already taken".
func TestUserNameShownIsTheUsersOwn(t *testing.T) {
	const id = "<its ID>"
	tests := []struct {
		name string
		// stored is a user stored without a userName (nil: user B signs
		// in by JIT with oid-2@example.com).
		stored   *store.User
		want     string // the userName shown
		findable bool   // a filter on it finds the user
	}{
		{"JIT user, email another's userName", nil, id, true},
		{"stored without one, email another's userName", &store.User{Email: "oid-2@example.com"}, id, false},
		{"stored without one, email free", &store.User{Email: "bea@example.com"}, "bea@example.com", false},
		{"stored without one, no email", &store.User{}, id, false},
	}
	for _, be := range backendtest.All() {
		for _, tt := range tests {
			t.Run(be.Name+"/"+tt.name, func(t *testing.T) {
				e := newEnvOn(t, "entra", entraToken, be.Open(t))
				e.must(201, "POST", "/Users", `{"userName":"oid-2@example.com","externalId":"ext-a",
					"emails":[{"value":"someone.else@example.com","primary":true}]}`)
				var b *store.User
				if tt.stored == nil {
					var err error
					if b, err = e.login(scimAndJIT, "oid-2", "Bea"); err != nil {
						t.Fatal(err)
					}
				} else {
					b = tt.stored
					b.IdP, b.ExternalID, b.Source, b.Active, b.Created, b.Updated = "entra", "oid-2", store.SourceJIT, true, t0, t0
					if err := e.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(b) }); err != nil {
						t.Fatal(err)
					}
				}
				e.vars["b"] = b.ID
				want := strings.Replace(tt.want, id, b.ID, 1)

				seen := map[string]any{}
				for _, r := range e.must(200, "GET", "/Users", "").body["Resources"].([]any) {
					un := store.FoldName(at(r, "userName").(string))
					if other, ok := seen[un]; ok {
						t.Errorf("GET /Users: users %s and %s both have userName %q", other, at(r, "id"), un)
					}
					seen[un] = at(r, "id")
				}
				got := e.must(200, "GET", "/Users/{{b}}", "")
				if shown := got.body["userName"]; shown != want {
					t.Errorf("GET shows userName %q, want %q", shown, want)
				}
				if tt.findable {
					f := e.must(200, "GET", "/Users?filter="+q(`userName eq "`+want+`"`), "")
					if total(t, f) != 1 || at(f.body, "Resources", 0, "id") != b.ID {
						t.Errorf("filter userName eq %q: %s, want user %s", want, f.raw, b.ID)
					}
				} else {
					// Rendered in a write's transaction too.
					p := e.must(200, "PATCH", "/Users/{{b}}", patchBody(`{"op":"replace","path":"displayName","value":"Bea"}`))
					if shown := p.body["userName"]; shown != want {
						t.Errorf("PATCH answers userName %q, want %q", shown, want)
					}
					got = e.must(200, "GET", "/Users/{{b}}", "")
				}
				// The client writes back what it read.
				if r := e.do("PUT", "/Users/{{b}}", got.raw); r.status != 200 || r.body["userName"] != want {
					t.Errorf("PUT of the document GET returned: %d %s", r.status, r.raw)
				}
			})
		}
	}
}
