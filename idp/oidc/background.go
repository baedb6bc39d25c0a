package oidc

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/logbudget"
)

// background runs the refreshes no caller waits for (a discovery document
// or JWKS past its age): one at a time, and none once closed. close
// cancels the one running and waits for it to end, so that none outlives
// its Provider (Provider.Close). The zero value is ready to use.
type background struct {
	mu      sync.Mutex
	ctx     context.Context // cancelled by close
	cancel  context.CancelFunc
	running bool
	wg      sync.WaitGroup
}

// run starts f in a goroutine, unless one is running or b is closed.
func (b *background) run(f func(ctx context.Context)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running || b.contextLocked().Err() != nil {
		return
	}
	b.running = true
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() {
			b.mu.Lock()
			b.running = false
			b.mu.Unlock()
		}()
		f(b.ctx)
	}()
}

// close stops b: the refresh running is cancelled and waited for, and
// none starts again.
func (b *background) close() {
	b.mu.Lock()
	b.contextLocked()
	b.cancel()
	b.mu.Unlock()
	b.wg.Wait()
}

// contextLocked is b's context, made at its first use: the zero value
// has none. The caller holds mu.
func (b *background) contextLocked() context.Context {
	if b.ctx == nil {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	return b.ctx
}

// refreshLog reports a background refresh that failed: the last good copy
// (discovery document, JWKS) goes on serving, so no caller sees the
// failure, and only this line tells the operator that an IdP's new issuer,
// endpoints or keys, or a key it withdrew, are not taken up (the SAML
// side's "saml idp metadata refresh failed" line, worded alike). Failures
// repeat as often as traffic brings refreshes past their age (every
// discoveryRetry, every JWKSRefreshInterval): one WARN line a minute per
// message, the rest at DEBUG (logbudget).
type refreshLog struct {
	log    *zap.Logger
	idp    string
	now    func() time.Time
	budget logbudget.Budget
}

// failed logs err, the failure of the refresh msg names, unless it is
// ctx's cancellation (Provider.Close, not the IdP). A certificate this host does
// not trust is worded with its fix, as sign-in words it. A nil l logs
// nothing (a keySet or discovery built alone, in this package's tests).
func (l *refreshLog) failed(ctx context.Context, msg string, err error) {
	if l == nil || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
		return
	}
	l.budget.Warn(l.log, msg, l.now(), msg, zap.String("idp", l.idp), zap.Error(cmp.Or(idp.UntrustedCertificate(err), err)))
}
