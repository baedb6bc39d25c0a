package scim_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/provision/scim"
)

// entraNextToken is the token entra is being rotated to (its second line).
const entraNextToken = "entra-next-token-abcdefghijklmn"

// TestObservedNamesIdPAndToken: a SCIM endpoint tells its observer which
// IdP's token admitted each request, and which of that IdP's tokens by its
// place in the configuration, so that an operator can tell which IdP's
// client fails on a site serving several, and when a rotated IdP has
// stopped presenting its old token; a request no token admitted names
// neither.
func TestObservedNamesIdPAndToken(t *testing.T) {
	accounts := newAccounts(t)
	entra := scim.EndpointIdP{Name: "entra", Token: entraToken}
	entraNext := scim.EndpointIdP{Name: "entra", Token: entraNextToken}
	okta := scim.EndpointIdP{Name: "okta", Token: oktaToken}
	tests := []struct {
		name string
		idps []scim.EndpointIdP
		// token presented -> what the observer is told
		want map[string]scim.Outcome
	}{
		{"one IdP", []scim.EndpointIdP{entra}, map[string]scim.Outcome{
			entraToken: {IdP: "entra", Token: 1, Status: http.StatusOK},
			oktaToken:  {Status: http.StatusUnauthorized},
			"":         {Status: http.StatusUnauthorized},
		}},
		{"one IdP rotating", []scim.EndpointIdP{entra, entraNext}, map[string]scim.Outcome{
			entraToken:     {IdP: "entra", Token: 1, Status: http.StatusOK},
			entraNextToken: {IdP: "entra", Token: 2, Status: http.StatusOK},
		}},
		{"two IdPs, one rotating", []scim.EndpointIdP{okta, entra, entraNext}, map[string]scim.Outcome{
			entraToken:                {IdP: "entra", Token: 1, Status: http.StatusOK},
			entraNextToken:            {IdP: "entra", Token: 2, Status: http.StatusOK},
			oktaToken:                 {IdP: "okta", Token: 1, Status: http.StatusOK},
			"okta-old-token-01234567": {Status: http.StatusUnauthorized},
			"":                        {Status: http.StatusUnauthorized},
		}},
		{"the second line first", []scim.EndpointIdP{entraNext, entra}, map[string]scim.Outcome{
			entraNextToken: {IdP: "entra", Token: 1, Status: http.StatusOK},
			entraToken:     {IdP: "entra", Token: 2, Status: http.StatusOK},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := scim.Endpoint{IdPs: tt.idps}.Handler(accounts, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			var got []scim.Outcome
			observed := h.(interface {
				Observed(scim.Observer) http.Handler
			}).Observed(func(r *http.Request, o scim.Outcome) {
				got = append(got, o)
			})
			for token, want := range tt.want {
				got = nil
				r := httptest.NewRequest(http.MethodGet, "/scim/v2/Users", nil)
				if token != "" {
					r.Header.Set("Authorization", "Bearer "+token)
				}
				w := httptest.NewRecorder()
				observed.ServeHTTP(w, r)
				if w.Code != want.Status || len(got) != 1 || got[0] != want {
					t.Errorf("token %.5s…: status %d, observed %+v, want one %+v", token, w.Code, got, want)
				}
			}
		})
	}
}

// TestUnauthorizedNamesUserAgent: the line of a refused request carries
// the client's User-Agent, which tells Entra's provisioning client from
// Okta's when the token matched no IdP, capped at 100 bytes and without
// the control characters a terminal would obey.
func TestUnauthorizedNamesUserAgent(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	h, err := scim.Endpoint{IdPs: []scim.EndpointIdP{{Name: "entra", Token: entraToken}, {Name: "okta", Token: oktaToken}}}.
		Handler(newAccounts(t), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	for ua, want := range map[string]string{
		"Okta SCIM Client 1.0.0":                                "Okta SCIM Client 1.0.0",
		"Microsoft.Identity.Provisioning":                       "Microsoft.Identity.Provisioning",
		"\x1b]0;owned\x07Evil\u202e" + strings.Repeat("é", 100): "]0;ownedEvil" + strings.Repeat("é", 41),
	} {
		logs.TakeAll()
		r := httptest.NewRequest(http.MethodGet, "/scim/v2/Users", nil)
		r.Header.Set("Authorization", "Bearer okta-old-token-0123456789")
		r.Header.Set("User-Agent", ua)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		lines := logs.FilterMessageSnippet("missing or wrong bearer token").All()
		if w.Code != http.StatusUnauthorized || len(lines) != 1 {
			t.Fatalf("status %d, %d refusal lines", w.Code, len(lines))
		}
		got, _ := lines[0].ContextMap()["user_agent"].(string)
		if got != want || len(got) > 100 {
			t.Errorf("User-Agent %.20q: the refusal line says user_agent %q (%d bytes), want %q", ua, got, len(got), want)
		}
	}
}
