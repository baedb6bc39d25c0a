// Package caddymodule is the only package of caddy-sso that knows Caddy: it
// registers the sso app, the sso and sso_scim HTTP handlers, their
// Caddyfile syntax and the admin API, and wires the Caddy-free packages
// (idp/*, signin, provision, session, store) together
// (docs/architecture.md).
package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/routeorder"
	"github.com/caddy-sso/caddy-sso/metrics"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/backend"
	"github.com/caddy-sso/caddy-sso/store/postgres"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the sso app: the state every sso handler of a config shares (the
// store, the identity providers and the sessions).
//
// Provision only reads the configuration: it touches neither the store
// nor the network, so `caddy validate` has no side effects and succeeds
// while the same configuration runs (the running Caddy holds the store's
// lock). Start opens the store, loads the keys kept there and starts the
// background work; requests that arrive before it has finished wait for it
// (gateway.Live).
type App struct {
	// Store selects where users and sessions live. Default: a bbolt file
	// at <Caddy data dir>/sso/sso.db.
	StoreConfig *StoreConfig `json:"store,omitempty"`
	// Session tunes session lifetimes.
	SessionConfig *SessionConfig `json:"session,omitempty"`
	// AuditRetention is how long audit events are kept; 0 keeps them all.
	// Default (unset): store.DefaultAuditRetention, 90 days.
	AuditRetention *caddy.Duration `json:"audit_retention,omitempty"`
	// IdPs are the identity providers, by name.
	IdPs []*IdPConfig `json:"idps,omitempty"`
	// PagesDir holds the operator's page templates; the pages it has no
	// template for keep the default (docs/pages.md).
	PagesDir string `json:"pages_dir,omitempty"`

	logger  *zap.Logger
	ctx     caddy.Context  // Start reads the provisioned http app in it
	pages   *gateway.Pages // nil: the defaults
	idps    map[string]*gateway.IdP
	metrics *metrics.Metrics // nil without a metrics registry
	store   backend.Spec     // resolved at Provision, opened at Start
	// accounts are the account operations of the admin API and SCIM,
	// built at Provision over the store and cache Start opens.
	accounts *account.Service

	headers gateway.HeaderUnion  // the names its sso routes protect (Handler.Provision)
	jwks    gateway.IdentityKeys // its sso routes' signers, whose keys every one publishes
	// live is what Start made, made at Provision.
	live *gateway.Live
	// acquired is the pool key of the store handle this App holds, so
	// that only what was acquired is released.
	acquired     string
	storeClosing context.Context // pooledStore.closing, set before live

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// StoreConfig selects the persistence backend: "bolt" (the embedded default, one Caddy
// instance) or "postgres" (several instances sharing one database, docs/cluster.md).
type StoreConfig struct {
	// Backend is "bolt" (default) or "postgres".
	Backend string `json:"backend,omitempty"`
	// Path of the bbolt file. Default: <Caddy data dir>/sso/sso.db.
	Path string `json:"path,omitempty"`
	// DSN is the PostgreSQL connection string. It is a secret: write a
	// placeholder such as {env.SSO_DATABASE_URL}; it is never logged.
	DSN string `json:"dsn,omitempty"`
	// PoolSize is the number of PostgreSQL connections per instance.
	// Default: postgres.DefaultMaxConns.
	PoolSize int `json:"pool_size,omitempty"`
	// StatementTimeout bounds every PostgreSQL statement. Default:
	// postgres.DefaultStatementTimeout.
	StatementTimeout caddy.Duration `json:"statement_timeout,omitempty"`
}

// spec resolves the configured store's placeholders; a placeholder that
// resolves to nothing is an error naming it (never its value).
func (c *StoreConfig) spec(repl *caddy.Replacer) (backend.Spec, error) {
	if c == nil || c.Backend == "" || c.Backend == backend.Bolt {
		path := DefaultStorePath()
		if c != nil && c.Path != "" {
			var err error
			if path, err = resolve(repl, "store bolt", c.Path, true); err != nil {
				return backend.Spec{}, err
			}
		}
		return backend.Spec{Backend: backend.Bolt, Path: path}, nil
	}
	dsn, err := resolve(repl, "store postgres", c.DSN, true)
	if err != nil {
		return backend.Spec{}, err
	}
	return backend.Spec{Backend: backend.Postgres, DSN: dsn, MaxConns: int32(c.PoolSize),
		StatementTimeout: time.Duration(c.StatementTimeout)}, nil
}

// validate checks the settings before placeholders are resolved, with the
// backend's rules (backend.Spec.Check).
func (c *StoreConfig) validate() error {
	if c == nil {
		return nil
	}
	if c.PoolSize > math.MaxInt32 {
		return fmt.Errorf("pool_size %d is more connections than PostgreSQL allows", c.PoolSize)
	}
	return (backend.Spec{Backend: c.Backend, Path: c.Path, DSN: c.DSN, MaxConns: int32(c.PoolSize),
		StatementTimeout: time.Duration(c.StatementTimeout)}).Check(idp.HasPlaceholder)
}

// SessionConfig tunes sessions; zero values take session's defaults.
type SessionConfig struct {
	// Lifetime is a session's absolute lifetime. Default
	// session.DefaultLifetime (8h); it cannot be negative.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`
	// IdleTimeout ends a session unused this long. Default
	// session.DefaultIdleTimeout (1h); negative: no idle timeout (JSON
	// only; the Caddyfile takes positive durations).
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// MaxPerUser caps the sessions of one user: a sign-in beyond it ends
	// the user's oldest. Default session.DefaultMaxPerUser (50); negative:
	// no cap (JSON only; the Caddyfile takes positive numbers).
	MaxPerUser int `json:"max_sessions_per_user,omitempty"`
}

// validate holds the JSON settings to what the Caddyfile accepts, with
// the documented negative values (no idle timeout, no cap) besides; an
// error names the one setting at fault.
func (c *SessionConfig) validate() error {
	c = cmp.Or(c, new(SessionConfig))
	return cmp.Or(idp.CheckDuration("lifetime", time.Duration(c.Lifetime)), idp.CheckDuration("idle_timeout", max(time.Duration(c.IdleTimeout), 0)))
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

// storeOpenTimeout bounds how long Start waits for the store (a database
// that does not answer fails the start instead of hanging it).
const storeOpenTimeout = 30 * time.Second

// Provision checks the configuration and builds the identity providers,
// without touching the store or the network.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger, a.ctx = ctx.Logger(), ctx
	a.live = gateway.NewLive()
	if err := a.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	var err error
	if a.store, err = a.StoreConfig.spec(repl); err != nil {
		return fmt.Errorf("sso store: %w", err)
	}
	if c := a.StoreConfig; c != nil && postgres.HasPassword(c.DSN) {
		warnWritten(a.logger, c.DSN, "the store's connection string holds a password and", "{env.SSO_DATABASE_URL}")
	}
	a.metrics = metrics.New(ctx.GetMetricsRegistry())
	if a.PagesDir != "" {
		dir, err := resolve(repl, "pages_dir", a.PagesDir, false)
		if err == nil {
			a.pages, err = gateway.LoadPages(dir, a.logger.Named("pages"))
		}
		if err != nil {
			return fmt.Errorf("sso: %w", err)
		}
	}

	a.accounts = &account.Service{Store: a.live, Cache: a.live, SCIMManaged: a.scimManaged,
		Logger: a.logger.Named("account")}

	a.idps = make(map[string]*gateway.IdP, len(a.IdPs))
	for _, c := range a.IdPs {
		p, err := c.build(a, repl)
		if err != nil {
			return fmt.Errorf("sso idp %s: %w", c.Name, err)
		}
		a.idps[c.Name] = p
	}
	return nil
}

// Validate checks the config without side effects.
func (a *App) Validate() error {
	if err := a.StoreConfig.validate(); err != nil {
		return fmt.Errorf("sso store: %w", err)
	}
	if err := a.SessionConfig.validate(); err != nil {
		return fmt.Errorf("sso session: %w", err)
	}
	if err := idp.CheckDuration("audit_retention", a.auditRetention()); err != nil {
		return fmt.Errorf("sso %w", err)
	}
	seen := make(map[string]bool)
	for i, c := range a.IdPs {
		if c == nil { // JSON's null: an entry, but no IdP to check
			return fmt.Errorf("sso idps[%d]: null, not an identity provider", i)
		}
		if err := c.validate(); err != nil {
			return fmt.Errorf("sso idp %s: %w", c.Name, err)
		}
		if seen[c.Name] {
			return fmt.Errorf("sso idp %s: defined twice", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// Start opens the store, gives the identity providers the keys kept there,
// and runs the background work: batched last-seen writes, the sweep of
// expired sessions, the housekeeping of single-use IDs and audit events,
// and the providers' own (SAML metadata refresh); and checks each IdP in
// the background, so that a misconfiguration is logged at once, not at the
// first sign-in, without Start waiting for the network.
func (a *App) Start() error {
	defer a.live.Started()
	if h, err := a.ctx.AppIfConfigured("http"); err == nil { // every app is provisioned by now
		for _, msg := range routeorder.AtStart(h) {
			a.logger.Error(msg)
		}
	}
	// The store may outlive this config (a reload shares it), so it is
	// opened with a context of its own, bounded in time.
	openCtx, cancelOpen := context.WithTimeout(context.Background(), storeOpenTimeout)
	pooled, key, err := acquireStore(openCtx, a.store, a.logger.Named("store"))
	cancelOpen()
	if err != nil {
		return fmt.Errorf("sso store %s: %w", a.store, err)
	}
	db := pooled.Store
	a.storeClosing = pooled.closing
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := a.start(ctx, db)
	if err != nil {
		cancel()
		for _, p := range a.idps {
			_ = p.Provider.Close()
		}
		return errors.Join(err, releaseStore(key))
	}
	a.acquired, a.cancel = key, cancel
	a.done.Go(func() { a.probeIdPs(ctx) })
	a.done.Go(func() { rt.Sessions.Run(ctx) })
	a.done.Go(func() {
		k := &gateway.Housekeeper{DB: db, Retention: a.auditRetention(), Logger: a.logger.Named("housekeeping"), Now: time.Now}
		k.Run(ctx, gateway.HousekeepingInterval)
	})
	a.metrics.SetCacheSize(rt.Sessions.Cached)
	a.metrics.WatchStore(db)
	a.live.Set(rt)
	return nil
}

// start builds what runs on db.
func (a *App) start(ctx context.Context, db store.Store) (*gateway.Runtime, error) {
	flows, err := gateway.FlowKeys{DB: db}.Cookies(ctx)
	if err != nil {
		return nil, fmt.Errorf("sso: %w", err)
	}

	var cfg session.Config
	if a.SessionConfig != nil {
		cfg.Lifetime = time.Duration(a.SessionConfig.Lifetime)
		cfg.IdleTimeout = time.Duration(a.SessionConfig.IdleTimeout)
		cfg.MaxPerUser = a.SessionConfig.MaxPerUser
	}
	rt := &gateway.Runtime{Store: db, Flows: flows, Sessions: session.New(db, cfg, a.logger.Named("session"), nil)}
	rt.Sessions.Derive = placeholderLookup
	rt.Streams = gateway.NewStreams(rt.Sessions)
	rt.SignIn = &signin.Service{Store: db, Sessions: rt.Sessions, Logger: a.logger.Named("provision"), Observe: a.observeSignIn}
	rt.Refusals = &signin.Refusals{Store: db, Logger: a.logger.Named("signin")}

	prt := idp.Runtime{
		Flows:    flows,
		Secrets:  store.Secrets{Store: db},
		Sessions: account.IdPLogout{Accounts: a.accounts},
	}
	for _, c := range a.IdPs {
		p := a.idps[c.Name]
		if err := p.Provider.Start(ctx, prt); err != nil {
			return nil, fmt.Errorf("sso idp %s: %w", c.Name, err)
		}
		if p.OfflineAccess && !p.SignIn.KeepAccessToken {
			a.logger.Warn("offline_access: no route passes this IdP's tokens upstream (pass_access_token, pass_id_token, set_authorization_header), so no refresh token is kept",
				zap.String("idp", p.Name))
		}
	}
	return rt, nil
}

// Stop retires this config on a reload (retire), in the background: the
// new config runs already. On Caddy's stop it leaves that to Cleanup, which
// Caddy calls once every app has stopped: the http app may stop after this
// one, and its servers answer requests until then.
func (a *App) Stop() error {
	if caddy.ActiveContext().Context == nil { // Caddy's stop (caddy.Stop clears it), or a first start that failed
		return nil
	}
	return a.retire(true)
}

// Cleanup retires what Stop left running: on Caddy's stop, or when another
// app failed to start. A config whose Start never ran holds nothing and
// must not release the running config's handle.
func (a *App) Cleanup() error { return a.retire(false) }

// retire stops the IdPs' background work and, once the requests in flight
// on this config's servers are done with the store (gateway.Live.Retire),
// the rest of it (the sessions' final last-seen flush last) and gives back
// the store.
func (a *App) retire(background bool) error {
	var errs []error
	for _, p := range a.idps {
		if err := p.Provider.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sso idp %s: %w", p.Name, err))
		}
	}
	if key, cancel := a.acquired, a.cancel; key != "" {
		a.acquired = "" // retired once
		errs = append(errs, a.live.Retire(gateway.DrainWait, background, func() error {
			cancel()
			a.done.Wait()
			return releaseStore(key)
		}, a.logger))
	}
	return errors.Join(errs...)
}

// auditRetention is the configured audit retention, or the default.
func (a *App) auditRetention() time.Duration {
	if a.AuditRetention == nil {
		return store.DefaultAuditRetention
	}
	return time.Duration(*a.AuditRetention)
}

// observeSignIn counts a committed sign-in.
func (a *App) observeSignIn(idpName string, o *signin.Outcome) {
	protocol := ""
	if p := a.idps[idpName]; p != nil {
		protocol = p.Protocol
	}
	a.metrics.SignIn(idpName, protocol, o)
}

// idpList names the configured IdPs, for error messages.
func (a *App) idpList() string {
	var names []string
	for _, c := range a.IdPs {
		names = append(names, c.Name)
	}
	return cmp.Or(strings.Join(names, ", "), "none")
}

// defaultIdP returns the only configured IdP's name, for handlers that name none.
func (a *App) defaultIdP() (string, error) {
	switch len(a.IdPs) {
	case 0:
		return "", errors.New("no identity provider is configured in the global sso option")
	case 1:
		return a.IdPs[0].Name, nil
	}
	return "", fmt.Errorf("%d identity providers are configured (%s): name one", len(a.IdPs), a.idpList())
}

var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

// Store returns the app's store once started (nil before), for the admin
// API, the SCIM handler and tests.
func (a *App) Store() store.Store {
	if rt := a.live.Load(); rt != nil {
		return rt.Store
	}
	return nil
}

// Sessions returns the app's session manager once started (nil before).
func (a *App) Sessions() *session.Manager {
	if rt := a.live.Load(); rt != nil {
		return rt.Sessions
	}
	return nil
}

// Accounts returns the app's account operations.
func (a *App) Accounts() *account.Service { return a.accounts }

// scimManaged reports whether the named IdP's block says SCIM provisions
// it (account.Service.SCIMManaged).
func (a *App) scimManaged(name string) bool {
	p := a.idps[name]
	return p != nil && p.SignIn.Rules.SCIMManaged
}
