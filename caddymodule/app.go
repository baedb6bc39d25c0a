// Package caddymodule is the only package of caddy-sso that knows Caddy: it
// registers the sso app, the sso and sso_scim HTTP handlers, their
// Caddyfile syntax, the admin API and the CLI, and wires the Caddy-free
// packages (idp/*, mapping, provision, session, store) together.
package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the sso app: the state every sso handler of a config shares (the
// store, the identity providers and the sessions).
type App struct {
	// Store selects where users and sessions live. Default: a bbolt file
	// at <Caddy data dir>/sso/sso.db.
	StoreConfig *StoreConfig `json:"store,omitempty"`
	// Session tunes session lifetimes.
	SessionConfig *SessionConfig `json:"session,omitempty"`
	// IdPs are the identity providers, by name.
	IdPs []*IdPConfig `json:"idps,omitempty"`

	logger      *zap.Logger
	db          store.Store
	dbPath      string // set once the pooled handle is acquired
	sessions    *session.Manager
	provisioner *provision.Provisioner
	flows       *idp.FlowCookies
	idps        map[string]*identityProvider
	metrics     *ssoMetrics // nil without a metrics registry

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// StoreConfig selects the persistence backend.
type StoreConfig struct {
	// Backend is "bolt" (the only one so far).
	Backend string `json:"backend,omitempty"`
	// Path of the bbolt file. Default: <Caddy data dir>/sso/sso.db.
	Path string `json:"path,omitempty"`
}

// SessionConfig tunes sessions; zero values take session's defaults.
type SessionConfig struct {
	Lifetime    caddy.Duration `json:"lifetime,omitempty"`
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sso",
		New: func() caddy.Module { return new(App) },
	}
}

// DefaultStorePath is where the bbolt file lives when none is configured.
func DefaultStorePath() string {
	return filepath.Join(caddy.AppDataDir(), "sso", "sso.db")
}

// Provision opens the store and builds the identity providers.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.Validate(); err != nil {
		return err
	}
	path := DefaultStorePath()
	if a.StoreConfig != nil && a.StoreConfig.Path != "" {
		path = a.StoreConfig.Path
	}
	db, err := acquireBolt(path)
	if err != nil {
		return fmt.Errorf("sso: store: %w", err)
	}
	a.db, a.dbPath = db, path

	var cfg session.Config
	if a.SessionConfig != nil {
		cfg.Lifetime = time.Duration(a.SessionConfig.Lifetime)
		cfg.IdleTimeout = time.Duration(a.SessionConfig.IdleTimeout)
	}
	a.sessions = session.New(a.db, cfg, a.logger.Named("session"), nil)
	a.sessions.Derive = placeholderLookup
	a.provisioner = &provision.Provisioner{Store: a.db, Logger: a.logger.Named("provision")}
	if a.metrics = newMetrics(ctx.GetMetricsRegistry(), a.sessions.Cached); a.metrics != nil {
		a.provisioner.Observe = a.metrics.provisioned
	}

	var key []byte
	err = a.db.Update(ctx, func(tx store.Tx) error {
		var err error
		key, err = tx.Secret("flow-cookie-key", 32)
		return err
	})
	if err != nil {
		return fmt.Errorf("sso: flow cookie key: %w", err)
	}
	if a.flows, err = idp.NewFlowCookies(key); err != nil {
		return fmt.Errorf("sso: %w", err)
	}

	a.idps = make(map[string]*identityProvider, len(a.IdPs))
	repl := caddy.NewReplacer()
	for _, c := range a.IdPs {
		p, err := c.build(ctx, a, repl)
		if err != nil {
			return fmt.Errorf("sso: idp %s: %w", c.Name, err)
		}
		a.idps[c.Name] = p
	}
	return nil
}

// Validate checks the config without side effects.
func (a *App) Validate() error {
	if a.StoreConfig != nil && a.StoreConfig.Backend != "" && a.StoreConfig.Backend != "bolt" {
		return fmt.Errorf("sso: store: unknown backend %q (supported: bolt)", a.StoreConfig.Backend)
	}
	seen := make(map[string]bool)
	for _, c := range a.IdPs {
		if err := c.validate(); err != nil {
			return fmt.Errorf("sso: idp %q: %w", c.Name, err)
		}
		if seen[c.Name] {
			return fmt.Errorf("sso: idp %q is defined twice", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// Start runs the background work: batched last-seen writes, the sweep of
// expired sessions, and the identity providers' own (SAML metadata
// refresh).
func (a *App) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.done.Add(1)
	go func() {
		defer a.done.Done()
		a.sessions.Run(ctx)
	}()
	for _, p := range a.idps {
		p.login.Start()
	}
	return nil
}

// Stop ends the background work after a final last-seen flush.
func (a *App) Stop() error {
	var errs []error
	for _, p := range a.idps {
		if err := p.login.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sso: idp %s: %w", p.name, err))
		}
	}
	if a.cancel != nil {
		a.cancel()
		a.done.Wait()
	}
	return errors.Join(errs...)
}

// Cleanup releases the store handle, if this App acquired one. A config
// whose Provision failed before that must not release the running
// config's handle.
func (a *App) Cleanup() error {
	if a.dbPath == "" {
		return nil
	}
	err := releaseBolt(a.dbPath)
	a.dbPath = ""
	return err
}

// provider returns the named identity provider.
func (a *App) provider(name string) (*identityProvider, error) {
	p := a.idps[name]
	if p == nil {
		return nil, fmt.Errorf("no identity provider named %q", name)
	}
	return p, nil
}

// defaultIdP returns the only configured IdP's name, for handlers that name none.
func (a *App) defaultIdP() (string, error) {
	switch len(a.IdPs) {
	case 0:
		return "", errors.New("no identity provider is configured in the global sso option")
	case 1:
		return a.IdPs[0].Name, nil
	}
	return "", fmt.Errorf("%d identity providers are configured: name one", len(a.IdPs))
}

var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

// audit writes one event outside any other change (protocol failures that
// provision never sees) and logs when the store refuses it.
func (a *App) audit(ctx context.Context, e store.Event) {
	err := a.db.Update(ctx, func(tx store.Tx) error { return tx.Audit(e) })
	if err != nil {
		a.logger.Error("writing audit event", zap.String("type", e.Type), zap.Error(err))
	}
}

// eventGroupsOverage is the audit event of a sign-in whose IdP sent a
// pointer to the user's groups (Entra's groups.link or _claim_names) instead
// of the groups, so the stored groups were kept. The admin page lists them.
const eventGroupsOverage = "idp.groups_overage"

// reportGroupsOverage logs and audits a groups overage, which an IdP admin
// must fix at the IdP: the user is in more groups than fit in a token.
func (a *App) reportGroupsOverage(ctx context.Context, idpName string, u *store.User) {
	a.logger.Warn("identity provider sent a groups overage claim instead of the groups; the user's groups were not updated. In Entra, emit only the groups assigned to the application, or provision groups with SCIM",
		zap.String("idp", idpName), zap.String("user_id", u.ID))
	a.audit(ctx, store.Event{Type: eventGroupsOverage, IdP: idpName, UserID: u.ID, Reason: "groups_overage"})
}

// Store returns the app's store, for the admin API, the SCIM handler and tests.
func (a *App) Store() store.Store { return a.db }

// Sessions returns the app's session manager.
func (a *App) Sessions() *session.Manager { return a.sessions }
