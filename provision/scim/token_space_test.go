package scim_test

import (
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/provision/scim"
)

// TestNewRefusesTokenWithWhiteSpace: New itself, not only
// Endpoint.CheckSettings, refuses a configured bearer token that starts or
// ends with white space, for the current token and for the next one of a
// rotation alike: the presented token is trimmed and a header cannot end
// in white space, so such a token could never match, and a library caller
// that skips CheckSettings would serve an IdP no request can reach. The
// error names the IdP and which rule, never the token.
func TestNewRefusesTokenWithWhiteSpace(t *testing.T) {
	accounts := newAccounts(t)
	good := scim.Config{IdP: "entra", Token: entraToken, Accounts: accounts, Logger: zap.NewNop()}
	for _, tok := range []string{
		entraToken + "\r", entraToken + "\r\n", entraToken + " ", entraToken + "\t",
		" " + entraToken, "\t" + entraToken, "\n" + entraToken, entraToken + "\u00a0",
	} {
		for _, field := range []string{"token", "next token"} {
			c := good
			if field == "token" {
				c.Token = tok
			} else {
				c.NextToken = tok
			}
			h, err := scim.New(c)
			if err == nil || !strings.Contains(err.Error(), "white space") || !strings.Contains(err.Error(), "IdP entra") {
				t.Errorf("New with %s %q: handler %v, error %v; want the white-space refusal naming IdP entra", field, tok, h != nil, err)
				continue
			}
			if strings.Contains(err.Error(), strings.TrimSpace(tok)) {
				t.Errorf("New with %s %q: the error reveals the token: %v", field, tok, err)
			}
		}
	}
	// The same tokens trimmed are fine, as one token and as a rotation.
	if _, err := scim.New(good); err != nil {
		t.Errorf("the trimmed token: %v", err)
	}
	rotation := good
	rotation.NextToken = oktaToken
	if _, err := scim.New(rotation); err != nil {
		t.Errorf("a rotation of two trimmed tokens: %v", err)
	}
}
