package scim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
)

// TestSCIMRefusesOtherSpellingsOfAHeldMailbox: one mailbox is one user in
// its Unicode, xn-- and trailing-dot spellings (docs/operations.md), which
// the store's email index keeps apart but a sign-in looks up
// (provision.EmailHolder), and so must a SCIM write: a POST, PUT or PATCH
// setting another user's address in another spelling gets the 409 the
// same spelling gets ("the email names one user", docs/scim.md). Else the
// user it writes carries, in X-Forwarded-Email, an address the routes'
// `allow user` rules (provision.CanonEmail) take for the holder's. Held
// by a user of another IdP (corp, signed in by JIT) and by one of this
// IdP's directory alike, on both backends; the holder's own directory
// may re-spell the holder's address.
func TestSCIMRefusesOtherSpellingsOfAHeldMailbox(t *testing.T) {
	const (
		userSchema  = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`
		patchSchema = `"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`
	)
	const held = "ceo@bücher.example"
	spellings := []string{
		held,                         // the control: the same spelling
		"ceo@bücher.example.",        // the root's trailing dot
		"ceo@xn--bcher-kva.example",  // the xn-- form of the domain
		"CEO@XN--BCHER-KVA.example.", // case, xn-- and a dot
	}
	writes := []struct {
		name string
		// write sets email on user id (none: a new user) and returns the
		// request.
		write func(id, email string) (method, path, body string)
		ok    int // the status of a write that is not refused
	}{
		{"POST", func(_, email string) (string, string, string) {
			return http.MethodPost, "/Users", fmt.Sprintf(`{%s,"userName":"mallory","externalId":"mallory","emails":[{"value":%q,"primary":true}]}`, userSchema, email)
		}, http.StatusCreated},
		{"PUT", func(id, email string) (string, string, string) {
			return http.MethodPut, "/Users/" + id, fmt.Sprintf(`{%s,"userName":"mallory","externalId":"mallory","emails":[{"value":%q,"primary":true}]}`, userSchema, email)
		}, http.StatusOK},
		{"PATCH", func(id, email string) (string, string, string) {
			return http.MethodPatch, "/Users/" + id, fmt.Sprintf(`{%s,"Operations":[{"op":"replace","path":"emails[primary eq true].value","value":%q}]}`, patchSchema, email)
		}, http.StatusOK},
	}
	for _, be := range backendtest.All() {
		for _, holderIdP := range []string{"corp", "entra"} {
			for _, w := range writes {
				t.Run(be.Name+"/held at "+holderIdP+"/"+w.name, func(t *testing.T) {
					st := be.Open(t)
					srv := indexedServer(t, st)
					var holderID string
					if holderIdP == "corp" {
						p := &provision.Provisioner{Store: st, Now: func() time.Time { return t0 }}
						prof := mapping.Profile{UniqueUserID: "ceo-sub", FirstName: "C", LastName: "E", Email: held}
						u, err := p.Login(context.Background(), "corp", provision.Rules{JIT: true}, prof, true)
						if err != nil {
							t.Fatal(err)
						}
						holderID = u.ID
					} else {
						holderID = postID(t, srv, "/Users", fmt.Sprintf(`{%s,"userName":"ceo","externalId":"ceo","emails":[{"value":%q,"primary":true}]}`, userSchema, held))
					}
					control := "" // the 409's detail for the same spelling
					for _, email := range spellings {
						id := ""
						if w.name != "POST" {
							id = postID(t, srv, "/Users", fmt.Sprintf(`{%s,"userName":"mallory","externalId":"mallory","emails":[{"value":"mallory@evil.example","primary":true}]}`, userSchema))
						}
						method, path, body := w.write(id, email)
						status, raw := scimRequest(t, srv, method, path, body)
						var doc struct{ ScimType, Detail string }
						_ = json.Unmarshal(raw, &doc)
						if email == held {
							control = doc.Detail
						}
						if status != http.StatusConflict || doc.ScimType != "uniqueness" || doc.Detail != control {
							t.Errorf("%s with %q, a spelling of %s user %s's %q: status %d %s; want 409 uniqueness, %q",
								w.name, email, holderIdP, holderID, held, status, raw, control)
						}
						if id != "" {
							if status, raw := scimRequest(t, srv, http.MethodDelete, "/Users/"+id, ""); status != http.StatusNoContent {
								t.Fatalf("DELETE %s: %d %s", id, status, raw)
							}
						}
					}
					if holderIdP == "entra" {
						// The holder's own directory re-spells the
						// holder's address: no conflict with itself.
						if w.name == "POST" {
							return
						}
						method, path, body := w.write(holderID, strings.ToUpper(spellings[2]))
						if status, raw := scimRequest(t, srv, method, path, body); status != w.ok {
							t.Errorf("the holder's own %s to %q: status %d %s, want %d", w.name, strings.ToUpper(spellings[2]), status, raw, w.ok)
						}
					}
				})
			}
		}
	}
}
