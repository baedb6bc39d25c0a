package caddymodule_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// TestGroupNamesExactThroughAccessRules: a group named " admins" (or with
// another invisible edge) in the IdP is another group than "admins": its
// members do not pass `allow group admins`, and the store keeps the exact
// name (docs/security.md, "Groups").
func TestGroupNamesExactThroughAccessRules(t *testing.T) {
	cases := []struct {
		user, group string
		status      int
	}{
		{"real", "admins", http.StatusOK},
		{"lead", " admins", http.StatusForbidden},
		{"trail", "admins\u00a0", http.StatusForbidden},
		{"bom", "\ufeffadmins", http.StatusForbidden},
	}
	w := newOIDCWorld(t, "\t\t\tjit\n")
	for _, tc := range cases {
		w.idp.AddUser(tc.user, tc.user+"-pw", map[string]any{
			"sub": "sub-" + tc.user, "given_name": tc.user, "family_name": "T", "email": tc.user + "@example.com",
			"email_verified": true, "groups": []string{tc.group},
		})
	}
	w.sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tallow group admins\n\t}\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			resp := newBrowser(t).signIn(w.gw.base+"/app", tc.user, tc.user+"-pw")
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("IdP group %q: %s, want %d: %.300s", tc.group, resp.Status, tc.status, body)
			}
			if g := userBySubject(t, "sub-"+tc.user).Groups; !slices.Equal(g, []string{tc.group}) {
				t.Errorf("stored groups %q, want exactly [%q]", g, tc.group)
			}
		})
	}
}

// TestPlaceholdersHeaderSafe: the {http.auth.user.*} placeholders carry
// the same header-safe values as the identity headers, so a header_up of a
// name with control characters from the IdP still reaches the upstream
// (it was a 502 for every request of that user).
func TestPlaceholdersHeaderSafe(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.idp.AddUser("zoe", "zoe-pw", map[string]any{
		"sub": "sub-zoe", "given_name": "Zo\u00eb\r\nX-Evil: 1", "family_name": "Do\x1b[2Je\x7f",
		"email": "zoe@example.com", "email_verified": true, "groups": []string{"eng\nops", " admins"},
	})
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s {\n"+
		"\t\theader_up X-First {http.auth.user.first_name}\n"+
		"\t\theader_up X-Last {http.auth.user.last_name}\n"+
		"\t\theader_up X-Groups {http.auth.user.groups}\n"+
		"\t}\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "zoe", "zoe-pw"))
	for _, tc := range []struct {
		placeholder, header, want string
	}{
		{"X-First", "X-Forwarded-First-Name", "Zo\u00ebX-Evil: 1"},
		{"X-Last", "X-Forwarded-Last-Name", "Do[2Je"},
	} {
		if got := saw.header(tc.placeholder); got != tc.want {
			t.Errorf("%s (placeholder) = %q, want %q", tc.placeholder, got, tc.want)
		}
		if got, hdr := saw.header(tc.placeholder), saw.header(tc.header); got != hdr {
			t.Errorf("%s (placeholder) = %q, but %s = %q", tc.placeholder, got, tc.header, hdr)
		}
	}
	if saw.header("X-Evil") != "" {
		t.Error("a name's CR LF split the proxied request's headers")
	}
	// The groups placeholder is the groups header: split and decode for
	// the exact names.
	groups := saw.header("X-Groups")
	if hdr := saw.header("X-Forwarded-Groups"); groups != hdr {
		t.Errorf("X-Groups (placeholder) = %q, but X-Forwarded-Groups = %q", groups, hdr)
	}
	decoded := decodeGroups(t, groups)
	if want := []string{"eng\nops", " admins"}; !sameSet(decoded, want) {
		t.Errorf("X-Groups %q decodes to %q, want %q", groups, decoded, want)
	}
}
