package caddymodule_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// A site's "idp corp saml" lists two IdPs when one is named saml (review
// 22, item 2); without such an IdP it is a definition, refused with the
// hint where definitions go, which now says no IdP has that name.
func TestSiteListsIdPNamedLikeProtocol(t *testing.T) {
	const corp = "\t\tidp corp oidc {\n\t\t\tissuer https://corp.example.com\n\t\t\tclient_id a\n\t\t}\n"
	const saml = "\t\tidp saml oidc {\n\t\t\tissuer https://saml.example.com\n\t\t\tclient_id b\n\t\t}\n"
	for _, tc := range []struct {
		name, idps, line string
		want             []string // the handler's IdPs
		wantErr          []string
	}{
		{"an IdP named saml", corp + saml, "idp corp saml", []string{"corp", "saml"}, nil},
		{"an IdP named oidc, listed first", corp + strings.ReplaceAll(saml, "saml", "oidc"), "idp oidc corp", []string{"oidc", "corp"}, nil},
		{"an IdP named oidc", corp + strings.ReplaceAll(saml, "saml", "oidc"), "idp corp oidc", []string{"corp", "oidc"}, nil},
		{"no IdP named saml", corp, "idp corp saml", nil,
			[]string{"Caddyfile:11", "idp corp saml defines an IdP (no IdP is named saml)", "global sso option", "sso corp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := "{\n\tsso {\n" + tc.idps + "\t}\n}\napp.example.com {\n\tsso {\n\t\t" + tc.line + "\n\t}\n}\n"
			cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
			if tc.wantErr != nil {
				for _, w := range tc.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("adapt: %v, want an error with %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			var got struct {
				Apps struct {
					HTTP struct {
						Servers map[string]struct {
							Routes []struct {
								Handle []struct {
									Routes []struct {
										Handle []struct {
											Handler string   `json:"handler"`
											IdPs    []string `json:"idps"`
										} `json:"handle"`
									} `json:"routes"`
								} `json:"handle"`
							} `json:"routes"`
						} `json:"servers"`
					} `json:"http"`
				} `json:"apps"`
			}
			if err := json.Unmarshal(cfg, &got); err != nil {
				t.Fatal(err)
			}
			h := got.Apps.HTTP.Servers["srv0"].Routes[0].Handle[0].Routes[0].Handle[0]
			if h.Handler != "sso" || strings.Join(h.IdPs, " ") != strings.Join(tc.want, " ") {
				t.Errorf("handler %s with IdPs %v, want sso with %v", h.Handler, h.IdPs, tc.want)
			}
		})
	}
}
