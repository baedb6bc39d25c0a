package check_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/check"
)

// TestCheckInvalidIdPNotProbed: an IdP whose configuration Caddy would
// refuse is reported with that one error and nothing else. The check
// neither contacts its IdP (a request built from a configuration that
// cannot run proves nothing) nor adds findings about it (no site uses
// it, values to register) that would bury the error and inflate the
// counts the summary line prints.
func TestCheckInvalidIdPNotProbed(t *testing.T) {
	var requests atomic.Int32
	idpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer idpSrv.Close()
	cfg := `{"apps":{"sso":{"idps":[{"name":"okta","protocol":"oidc","create_as":"bogus","oidc":{"issuer":"` + idpSrv.URL + `","client_id":"abc"}}]}}}`
	r, err := check.Run(context.Background(), []byte(cfg), &http.Client{Timeout: 5 * time.Second}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.IdPs) != 1 {
		t.Fatalf("IdPs %v, want okta alone", r.IdPs)
	}
	ic := r.IdPs[0]
	if len(ic.Checks) != 1 || !hasFinding(ic.Checks, "error: invalid configuration: ") || !hasFinding(ic.Checks, "create_as") {
		t.Errorf("checks %v, want only the invalid configuration naming create_as", ic.Checks)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the IdP of an invalid configuration got %d request(s), want none", n)
	}
	if len(ic.Values) != 0 || len(ic.Claims) != 0 {
		t.Errorf("values %v and claims %v shown for an invalid configuration", ic.Values, ic.Claims)
	}
	if r.OK || r.Errors != 1 || r.Warnings != 0 || len(r.Problems) != 0 {
		t.Errorf("OK %v, errors %d, warnings %d, problems %v; want failed with the one error", r.OK, r.Errors, r.Warnings, r.Problems)
	}
}
