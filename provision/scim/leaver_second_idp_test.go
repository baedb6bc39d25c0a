package scim_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSCIMRecreateLiftsSecondIdPTombstone: a person SCIM provisioned at
// entra who also signs in through google (jit + link_by_email, the same
// corporate address) is refused at both after a SCIM DELETE, and may sign
// in at both again once the directory provisions them anew: the tombstone
// at google lasts as long as the one at entra, which the create clears.
func TestSCIMRecreateLiftsSecondIdPTombstone(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	social := provision.Rules{JIT: true, LinkByEmail: true}
	p := &provision.Provisioner{Store: e.db, Now: func() time.Time { return e.now }}
	signIn := func(idp string, rules provision.Rules, sub string) (*store.User, error) {
		prof := mapping.Profile{UniqueUserID: sub, FirstName: "Ada", LastName: "Lovelace", Email: "leaver@corp.example"}
		return p.Login(context.Background(), idp, rules, prof, true)
	}
	body := `{"userName":"leaver@corp.example","externalId":"oid-1","active":true,"emails":[{"value":"leaver@corp.example","primary":true}]}`
	e.vars["id"] = e.must(201, "POST", "/Users", body).body["id"].(string)
	for _, s := range []struct {
		idp   string
		rules provision.Rules
		sub   string
	}{{"entra", scimAndJIT, "oid-1"}, {"google", social, "google-sub"}} {
		if u, err := signIn(s.idp, s.rules, s.sub); err != nil || u.ID != e.vars["id"] {
			t.Fatalf("%s sign-in: %+v, %v; want the SCIM user %s", s.idp, u, err, e.vars["id"])
		}
	}
	e.must(204, "DELETE", "/Users/{{id}}", "")
	_, err := signIn("entra", scimAndJIT, "oid-1")
	denied(t, err, provision.ReasonDeprovisioned)
	_, err = signIn("google", social, "google-sub")
	denied(t, err, provision.ReasonDeprovisioned)

	again := e.must(201, "POST", "/Users", body).body["id"].(string)
	// The directory's address is linkable from google once the person's
	// entra sign-in has vouched for it (link_by_email never links into an
	// address only a SCIM client wrote).
	_, err = signIn("google", social, "google-sub")
	denied(t, err, provision.ReasonEmailConflict)
	if _, err := signIn("entra", scimAndJIT, "oid-1"); err != nil {
		t.Fatal(err)
	}
	u, err := signIn("google", social, "google-sub")
	if err != nil || u.ID != again {
		t.Fatalf("google sign-in after re-provisioning: %+v, %v; want linked to %s", u, err, again)
	}
}
