package provision_test

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
)

// TestInvalidAttributeMessageReadsForAPerson: the denied page for
// invalid_attribute is read by the person signing in, who knows "an email
// address", not the profile field "email" or "uniqueUserId"; the field's
// name stays in the sentence for the IdP administrator they pass it to.
func TestInvalidAttributeMessageReadsForAPerson(t *testing.T) {
	for _, tc := range []struct{ attr, words string }{
		{mapping.Email, "sent an email address this application cannot store"},
		{mapping.UniqueUserID, "sent a user ID this application cannot store"},
		{mapping.FirstName, "sent a first name this application cannot store"},
		{"somethingNew", "sent a value this application cannot store"},
	} {
		msg := (&provision.Denial{Reason: provision.ReasonInvalidAttribute, Attribute: tc.attr}).Message()
		if !strings.Contains(msg, tc.words) || !strings.HasSuffix(msg, "what it sends as "+tc.attr+".") {
			t.Errorf("%s: %q, want it to read %q and name %s for the administrator", tc.attr, msg, tc.words, tc.attr)
		}
	}
}
