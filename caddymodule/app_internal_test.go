package caddymodule

import (
	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// startedApp is an App as Start leaves it, on db and sessions, for tests
// of the handler without a Caddy config.
func startedApp(db store.Store, sessions *session.Manager) *App {
	a := &App{live: gateway.NewLive()}
	a.live.Started()
	a.live.Set(&gateway.Runtime{Store: db, Sessions: sessions,
		SignIn:   &signin.Service{Store: db, Sessions: sessions},
		Refusals: &signin.Refusals{Store: db}})
	return a
}
