package clustertest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// BenchmarkJITSignIns is a storm of first sign-ins through
// signin.Service.SignIn, what an OIDC callback runs once the ID token is
// verified: consume the state, create the user by JIT, write the session
// and the audit events, in one transaction. Each round runs
// jitPerRound sign-ins, jitConcurrency at a time, on bbolt and then on
// PostgreSQL (durable: pgtest keeps fsync on for benchmarks), so that the
// machine's noise falls on both. It reports the median sign-ins per second
// of each, and the median of the rounds' postgres/bolt ratios.
//
//	go test -run '^$' -bench JITSignIns -benchtime 5x ./internal/clustertest/
func BenchmarkJITSignIns(b *testing.B) {
	bdb := backendtest.OpenBolt(b)
	pdb, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.NewDatabase(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer pdb.Close()
	mapper, err := mapping.New("generic", idp.ProtocolOIDC, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := &signin.IdP{Name: "okta", Mapper: mapper, Rules: provision.Rules{JIT: true, Update: provision.UpdateForce}}
	type side struct {
		name  string
		svc   *signin.Service
		rates []float64
	}
	sides := []*side{
		{name: "bolt", svc: &signin.Service{Store: bdb, Sessions: session.New(bdb, session.Config{}, nil, nil)}},
		{name: "postgres", svc: &signin.Service{Store: pdb, Sessions: session.New(pdb, session.Config{}, nil, nil)}},
	}
	const jitPerRound, jitConcurrency = 1000, 16
	var seq atomic.Int64
	round := func(s *side) {
		next := make(chan int64)
		var wg sync.WaitGroup
		start := time.Now()
		for range jitConcurrency {
			wg.Go(func() {
				for i := range next {
					out, err := s.svc.SignIn(context.Background(), p, newcomer(i), "")
					if err != nil || out.Session == nil {
						b.Errorf("%s sign-in %d: %v %+v", s.name, i, err, out)
					}
				}
			})
		}
		for range jitPerRound {
			next <- seq.Add(1)
		}
		close(next)
		wg.Wait()
		s.rates = append(s.rates, jitPerRound/time.Since(start).Seconds())
	}
	reruns := pdb.Reruns()
	for r := 0; b.Loop(); r++ {
		for _, s := range sides {
			round(s)
		}
		b.Logf("round %d: bolt %.0f, postgres %.0f sign-ins/s", r+1, sides[0].rates[r], sides[1].rates[r])
	}
	for _, s := range sides {
		b.ReportMetric(median(s.rates), s.name+"-signins/s")
	}
	var ratios []float64
	for r := range sides[0].rates {
		ratios = append(ratios, sides[1].rates[r]/sides[0].rates[r])
	}
	b.ReportMetric(median(ratios), "postgres/bolt")
	b.ReportMetric(float64(pdb.Reruns()-reruns)/float64(len(sides[1].rates)*jitPerRound), "pg-reruns/signin")
}

// newcomer is the verified assertion of a user's first OIDC sign-in.
func newcomer(i int64) *idp.Assertion {
	sub := fmt.Sprintf("sub-new-%d", i)
	return &idp.Assertion{IdP: "okta", Protocol: idp.ProtocolOIDC, Subject: sub, EmailVerified: true,
		Attributes: map[string][]string{"sub": {sub}, "given_name": {"New"}, "family_name": {fmt.Sprint("User", i)},
			"email": {fmt.Sprintf("new%d@example.com", i)}, "groups": {"staff"}},
		Logout:    idp.LogoutInfo{Subject: sub, SessionID: "sid-" + sub, IDToken: "eyJ.id-token." + sub},
		SingleUse: []idp.SingleUse{{Kind: "oidc_state", ID: "okta/state-" + sub, Until: time.Now().Add(10 * time.Minute), Code: "state_replayed"}},
	}
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}
