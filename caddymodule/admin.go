package caddymodule

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/portable"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI mounts the sso admin API (package adminapi) under /sso/ on Caddy's admin endpoint. It looks
// the running sso app up at request time, so it talks to the config live now, across reloads.
type adminAPI struct {
	log *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sso",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision keeps the logger.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger(a) // named admin.api.sso (the admin context has no module of its own)
	return nil
}

// Routes returns the admin routes of the sso app.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminapi.Prefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set(adminapi.MarkHeader, "1") // the CLI's sign that --address is right, "not running" included
	v, err := caddy.ActiveContext().AppIfConfigured("sso")
	app, ok := v.(*App)
	if err != nil || !ok || app.Store() == nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err, Message: "the sso app is not running"}
	}
	// In flight, as any request a retiring config waits for (at most
	// gateway.DrainWait), and ended as the store closes, whose Close waits
	// for the read transaction of a backup or a check (pooledStore).
	inflight := app.live.Enter()
	defer inflight.Exit()
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	defer context.AfterFunc(app.storeClosing, func() { cancel(context.Cause(app.storeClosing)) })()
	r = r.WithContext(ctx)
	st := app.Store()
	h := adminapi.Handler{Accounts: app.Accounts(), Logger: a.log,
		Backup: func(w io.Writer) (int64, error) { return portable.Backup(r.Context(), st, w) }}
	if db, ok := st.(*bolt.DB); ok {
		h.Check = func(ctx context.Context) (*adminapi.StoreCheck, error) {
			r, err := db.Check(ctx)
			if err != nil {
				return nil, err
			}
			return adminapi.NewStoreCheck(r.Path, r.Schema, r.Records, r.Problems, r.More), nil
		}
	}
	err = h.Serve(w, r)
	if e := (*adminapi.Error)(nil); errors.As(err, &e) {
		// Caddy logs Err (the cause) and answers {"error": Message}.
		cause := error(e)
		if e.Err != nil {
			cause = e.Err
		}
		return caddy.APIError{HTTPStatus: e.Status, Err: cause, Message: e.Message}
	}
	return err
}

var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
