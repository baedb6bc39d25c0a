package account

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/caddy-sso/caddy-sso/store"
)

// scimCoreUser is the SCIM core User schema's URN (provision/scim's
// URNUser, which this package cannot import: provision/scim imports it).
const scimCoreUser = "urn:ietf:params:scim:schemas:core:2.0:User"

// withoutSCIMPassword returns u without a SCIM password in its stored SCIM
// attributes, a copy when there was one. provision/scim has never kept the
// plain "password" attribute, but until it folded the core URN it stored
// one sent as "urn:…:core:2.0:User:password" or inside a
// "urn:…:core:2.0:User" object, as an unknown extension. What the admin
// API and the CLI show, and what an account operation writes back, goes
// through here, so such a stored password is never shown and is dropped
// from the store at the user's next write by an operation here. Password
// is the one attribute of RFC 7643's user schemas that is never returned;
// provision/scim drops all such attributes by its schema.
func withoutSCIMPassword(u *store.User) *store.User {
	raw, changed := scrubSCIMPassword(u.SCIMAttributes)
	if !changed {
		return u
	}
	c := *u
	c.SCIMAttributes = raw
	return &c
}

func scrubSCIMPassword(raw json.RawMessage) (json.RawMessage, bool) {
	// Most users hold no SCIM attributes, or none of that name: a list of a
	// million users decodes none of them.
	if len(raw) == 0 || !bytes.Contains(bytes.ToLower(raw), []byte("password")) {
		return raw, false
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return raw, false // not an object: no attribute to drop
	}
	changed := dropPassword(m)
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok && strings.EqualFold(k, scimCoreUser) {
			if dropPassword(sub) {
				changed = true
				if len(sub) == 0 {
					delete(m, k)
				}
			}
		}
		if strings.EqualFold(k, scimCoreUser+":password") {
			delete(m, k)
			changed = true
		}
	}
	if !changed {
		return raw, false
	}
	if len(m) == 0 {
		return nil, true
	}
	out, err := json.Marshal(m)
	if err != nil {
		// Not reached (m was decoded from JSON); showing nothing is the
		// safe side of not knowing.
		return nil, true
	}
	return out, true
}

// dropPassword deletes m's password attribute, in any case.
func dropPassword(m map[string]any) bool {
	changed := false
	for k := range m {
		if strings.EqualFold(k, "password") {
			delete(m, k)
			changed = true
		}
	}
	return changed
}
