package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/metrics"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSignInCountsJIT: a committed sign-in counts what the JIT rules did
// to its user (jit_total), besides the login: a first sign-in creates the
// user, a later one with new attributes updates them, one the rules
// refuse is a denial with its reason. That is what an operator alerts on
// when a rule change starts refusing people.
func TestSignInCountsJIT(t *testing.T) {
	db := backendtest.OpenBolt(t)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	apply := func(rules provision.Rules, prof mapping.Profile) *provision.Result {
		t.Helper()
		now = now.Add(time.Minute)
		var res *provision.Result
		if err := db.Update(context.Background(), func(tx store.Tx) (err error) {
			res, err = provision.Apply(tx, "entra", rules, prof, true, now)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return res
	}
	ada := mapping.Profile{UniqueUserID: "sub-ada", FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"}
	jit := provision.Rules{JIT: true}
	m.SignIn("entra", "oidc", &signin.Outcome{Session: &session.NewSession{}, Result: apply(jit, ada)})
	ada.LastName = "King"
	m.SignIn("entra", "oidc", &signin.Outcome{Session: &session.NewSession{}, Result: apply(jit, ada)})
	eve := mapping.Profile{UniqueUserID: "sub-eve", FirstName: "Eve", LastName: "Outsider", Email: "eve@elsewhere.org"}
	res := apply(provision.Rules{JIT: true, AllowedDomains: []string{"example.com"}}, eve)
	if res.Denial == nil {
		t.Fatal("eve was not denied")
	}
	m.SignIn("entra", "oidc", &signin.Outcome{Denial: res.Denial, Result: res})

	got := counters(t, reg)
	for key, want := range map[string]float64{
		"caddy_sso_jit_total/create/entra/":                                                 1,
		"caddy_sso_jit_total/update/entra/":                                                 1,
		"caddy_sso_jit_total/deny/entra/" + provision.ReasonDomainNotAllowed:                1,
		"caddy_sso_logins_total/entra/oidc//success":                                        2,
		"caddy_sso_logins_total/entra/oidc/" + provision.ReasonDomainNotAllowed + "/denied": 1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}
