package caddymodule

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// startedApp is an App as Start leaves it, on db and sessions, for tests
// of the handler without a Caddy config. Its flow key check stops when tb
// ends, as Stop stops it: a loop left running would be counted by the
// next test's (TestReloadsLeakNothing) as a config's.
func startedApp(tb testing.TB, db store.Store, sessions *session.Manager) *App {
	flows, err := gateway.FlowKeys{DB: db}.Cookies(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	a := &App{live: gateway.NewLive()}
	a.live.Started()
	a.live.Set(&gateway.Runtime{Store: db, Sessions: sessions, Flows: flows,
		SignIn:   &signin.Service{Store: db, Sessions: sessions},
		Refusals: &signin.Refusals{Store: db}})
	return a
}
