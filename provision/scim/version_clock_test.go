package scim_test

import (
	"testing"
	"time"
)

// TestVersionMovesOnEveryWriteWhateverTheClock: a write whose clock reading
// is earlier than the record's last write (a request that read the clock
// before waiting for a lock another committed under, or an instance whose
// clock is behind) still gives the record a new meta.version, and its
// lastModified does not go back: a client that caches by version, or syncs
// by lastModified, sees the change.
func TestVersionMovesOnEveryWriteWhateverTheClock(t *testing.T) {
	patchOp := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"group membership", "PATCH", "/Groups/{{group}}", patchOp + `{"op":"Add","path":"members","value":[{"value":"{{user}}"}]}]}`, 204},
		{"user attribute", "PATCH", "/Users/{{user}}", patchOp + `{"op":"replace","path":"displayName","value":"Alice B"}]}`, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			e.vars["user"] = e.must(201, "POST", "/Users", `{"userName":"alice@corp.com","externalId":"oid-a"}`).body["id"].(string)
			e.vars["group"] = e.must(201, "POST", "/Groups", `{"displayName":"eng"}`).body["id"].(string)

			e.now = t0.Add(time.Hour)
			e.must(200, "PATCH", "/Users/{{user}}", patchOp+`{"op":"replace","path":"displayName","value":"Alice"}]}`)
			before := e.must(200, "GET", "/Users/{{user}}", "")

			e.now = t0.Add(time.Hour - 4*time.Second)
			e.must(tc.status, tc.method, tc.path, tc.body)
			after := e.must(200, "GET", "/Users/{{user}}", "")

			if at(before.body, "meta", "version") == at(after.body, "meta", "version") {
				t.Errorf("meta.version %v before and after the write (groups %v -> %v, displayName %v -> %v)",
					at(after.body, "meta", "version"), before.body["groups"], after.body["groups"],
					before.body["displayName"], after.body["displayName"])
			}
			was, _ := time.Parse(time.RFC3339Nano, at(before.body, "meta", "lastModified").(string))
			is, _ := time.Parse(time.RFC3339Nano, at(after.body, "meta", "lastModified").(string))
			if is.Before(was) {
				t.Errorf("meta.lastModified went back: %v -> %v", was, is)
			}
		})
	}
}
