package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestCLIEscapesIdPData: names, groups and audit details from an IdP
// reach the operator's terminal with their control characters escaped,
// so they can neither steer the terminal nor forge table rows, and a
// group name holding ", " still reads as one group.
func TestCLIEscapesIdPData(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n")
	w.IdP.AddUser("eve", "eve-pw", map[string]any{
		"sub": "sub-eve", "given_name": "Eve\x1b]0;pwned\a\x1b[2K",
		"family_name": "X\nfakeid  root@corp.example  Root Admin  test  jit  active",
		"email":       "eve@example.com", "email_verified": true, "groups": []string{"a, b", "c\u202e"},
	})
	w.Start()
	caddytest.UpstreamSaw(t, caddytest.NewBrowser(t).SignIn(w.GW.Base+"/", "eve", "eve-pw"))
	eve := caddytest.UserBySubject(t, "sub-eve")
	if err := caddytest.RunningStore(t).Update(context.Background(), func(tx store.Tx) error {
		return tx.Audit(store.Event{Type: store.EventLoginFailed, IdP: "test", Subject: "sub\r\x1b[1A",
			Reason: "bad\u202eclaim", Detail: map[string]string{"received": "x\nSEQ by=admin"}})
	}); err != nil {
		t.Fatal(err)
	}
	addr := w.GW.AddressFlag()
	name := `Eve\x1b]0;pwned\x07\x1b[2K X\nfakeid  root@corp.example  Root Admin  test  jit  active`
	for _, tc := range []struct {
		args  []string
		lines int // the output's, so that no row was forged
		want  []string
	}{
		{[]string{"users", "list"}, 3, []string{name}},
		{[]string{"users", "show", eve.ID}, 0, []string{name, `Groups:       "a, b", c\u202e`}},
		{[]string{"audit", "--type", store.EventLoginFailed}, 2, []string{`sub\r\x1b[1A`, `bad\u202eclaim`, `received="x\nSEQ by=admin"`}},
	} {
		out := mustCLI(t, append(tc.args, addr)...)
		if strings.ContainsAny(out, "\x1b\a\r\u202e") {
			t.Errorf("%v printed a control character:\n%q", tc.args, out)
		}
		if n := strings.Count(out, "\n"); tc.lines > 0 && n != tc.lines {
			t.Errorf("%v printed %d lines, want %d:\n%s", tc.args, n, tc.lines, out)
		}
		for _, want := range tc.want {
			if !strings.Contains(out, want) {
				t.Errorf("%v lacks %q:\n%s", tc.args, want, out)
			}
		}
	}
}
