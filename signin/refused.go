package signin

import (
	"context"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/logbudget"
	"github.com/caddy-sso/caddy-sso/store"
)

// Defaults of Refusals.
const (
	// DefaultAuditPerMinute bounds the login.failed events written per IdP
	// and reason each minute.
	DefaultAuditPerMinute = 10
	// refusalWindow is the period of the audit budget, the log budget's
	// (logbudget.Window).
	refusalWindow = logbudget.Window
)

// Refusals records callbacks the protocol adapter refused, without letting
// unauthenticated traffic grow the store or flood the log
// (docs/security.md, "Unauthenticated traffic"):
//
//   - a refusal without this browser's valid flow cookie (idp.LoginError
//     .Bound false: no cookie, a forged one, an unsolicited post) writes
//     nothing durable; anyone can send those without limit;
//   - a refusal of a login the browser did begin is audited
//     (login.failed), at most AuditPerMinute per IdP and reason, and the
//     next event after a full minute says how many were left out;
//   - the log gets the first refusal per IdP, reason and source each
//     minute at WARN, the rest at DEBUG, counted on the next WARN line
//     (internal/logbudget).
//
// Metrics count every refusal (the caller's job).
type Refusals struct {
	Store  store.Store
	Logger *zap.Logger      // nil: no logs
	Now    func() time.Time // nil: time.Now
	// AuditPerMinute: 0 means DefaultAuditPerMinute.
	AuditPerMinute int

	mu    sync.Mutex
	audit map[[2]string]*budget // (idp, code)
	logs  logbudget.Budget      // idp, code, source
}

// budget counts one key's events in the current window.
type budget struct {
	start time.Time
	n     int // events in the window
}

// take counts an event at now and reports whether it is within limit, and
// how many events the window that just ended held beyond the limit.
func (b *budget) take(now time.Time, limit int) (ok bool, dropped int) {
	if now.Sub(b.start) >= refusalWindow {
		dropped = max(b.n-limit, 0)
		b.start, b.n = now, 0
	}
	b.n++
	return b.n <= limit, dropped
}

// Record notes one refused callback of idpName from source (the client
// address). It never fails: a store error is logged.
func (r *Refusals) Record(ctx context.Context, idpName string, le *idp.LoginError, source string) {
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	limit := r.AuditPerMinute
	if limit <= 0 {
		limit = DefaultAuditPerMinute
	}
	r.mu.Lock()
	if r.audit == nil {
		r.audit = make(map[[2]string]*budget)
	}
	var auditOK bool
	var auditDropped int
	if le.Bound {
		b := r.audit[[2]string{idpName, le.Code}]
		if b == nil {
			b = &budget{start: now}
			r.audit[[2]string{idpName, le.Code}] = b
		}
		auditOK, auditDropped = b.take(now, limit)
	}
	r.mu.Unlock()

	log := zap.NewNop()
	if r.Logger != nil {
		log = r.Logger
	}
	r.logs.Warn(log, idpName+"\x00"+le.Code+"\x00"+source, now, "sign-in refused",
		zap.String("idp", idpName), zap.String("reason", le.Code), zap.String("source", source),
		zap.Bool("login_in_progress", le.Bound), zap.Error(le))
	if !auditOK {
		return
	}
	ev := store.Event{Time: now, Type: store.EventLoginFailed, IdP: idpName, Reason: le.Code}
	if auditDropped > 0 {
		ev.Detail = map[string]string{"not_audited_last_minute": strconv.Itoa(auditDropped)}
	}
	if err := r.Store.Update(ctx, func(tx store.Tx) error { return tx.Audit(ev) }); err != nil {
		log.Error("writing audit event", zap.String("type", ev.Type), zap.Error(err))
	}
}
