package check_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/check"
)

// TestCheckCountsAndVerdict: the report's error and warning counts, which
// the summary line prints, count the configuration-wide findings with
// each IdP's, and the verdict (the command's exit status) is failed
// exactly when there is an error: a warning alone passes.
func TestCheckCountsAndVerdict(t *testing.T) {
	const site = "\tsso okta\n\trespond app\n}\n"
	for _, tc := range []struct {
		name           string
		sites          string
		errors, warns  int
		problem, check string // a configuration-wide finding, and one of the IdP's, that the report holds
	}{
		// The IdP is unreachable: one error, whatever the sites.
		{"https site", "app.example.com {\n" + site, 1, 0, "", "error: discovery document http://127.0.0.1:1/.well-known/openid-configuration unreachable"},
		{"plain http site", "http://app.example.com {\n" + site, 1, 1, "warning: server srv0: site http://app.example.com is served over plain http", ""},
		{"no host", ":8443 {\n" + site, 2, 0, "error: server srv0: an sso route matches no host and has no base_url", ""},
		{"no site uses the IdP", "app.example.com {\n\trespond app\n}\n", 1, 1, "", "warning: no site uses this IdP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkOkta(t, "", tc.sites)
			if r.Errors != tc.errors || r.Warnings != tc.warns || r.OK {
				t.Errorf("errors %d, warnings %d, OK %v; want %d, %d, false", r.Errors, r.Warnings, r.OK, tc.errors, tc.warns)
			}
			if tc.problem != "" && !hasFinding(r.Problems, tc.problem) {
				t.Errorf("problems %v lack %q", r.Problems, tc.problem)
			}
			if tc.check != "" && !hasFinding(r.IdPs[0].Checks, tc.check) {
				t.Errorf("checks %v lack %q", r.IdPs[0].Checks, tc.check)
			}
			if len(r.Problems) != strings.Count(tc.problem, "server srv0") {
				t.Errorf("problems %v, want only %q", r.Problems, tc.problem)
			}
		})
	}
}

// hasFinding reports whether list holds a finding whose "level: message"
// contains want.
func hasFinding(list []check.Finding, want string) bool {
	for _, f := range list {
		if strings.Contains(f.Level+": "+f.Message, want) {
			return true
		}
	}
	return false
}

// TestCheckWithoutIdP: a config without an sso app, or with one that has
// no IdP, fails the check with an error saying so (an operator who ran
// it on the wrong file learns it), not an empty report that passes.
func TestCheckWithoutIdP(t *testing.T) {
	for _, cfg := range []string{
		`{"apps":{"http":{"servers":{"srv0":{"listen":[":443"]}}}}}`,
		`{"apps":{"sso":{"idps":[]}}}`,
	} {
		r, err := check.Run(context.Background(), []byte(cfg), &http.Client{Timeout: time.Second}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || r.Errors != 1 || !hasFinding(r.Problems, "error: the config has no sso app with an identity provider") {
			t.Errorf("%s: OK %v, errors %d, problems %v; want the one error that there is no IdP", cfg, r.OK, r.Errors, r.Problems)
		}
	}
}
