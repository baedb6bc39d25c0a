package caddymodule

import (
	"context"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// startedApp is an App as Start leaves it, on db and sessions, for tests
// of the handler without a Caddy config.
func startedApp(db store.Store, sessions *session.Manager) *App {
	flows, err := gateway.FlowKeys{DB: db}.Cookies(context.Background())
	if err != nil {
		panic(err)
	}
	a := &App{live: gateway.NewLive()}
	a.live.Started()
	a.live.Set(&gateway.Runtime{Store: db, Sessions: sessions, Flows: flows,
		SignIn:   &signin.Service{Store: db, Sessions: sessions},
		Refusals: &signin.Refusals{Store: db}})
	return a
}
