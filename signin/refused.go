package signin

import (
	"context"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/internal/logbudget"
	"github.com/caddy-sso/caddy-sso/store"
)

// Defaults of Refusals.
const (
	// DefaultAuditPerMinute bounds the login.failed events written per IdP
	// and reason each minute.
	DefaultAuditPerMinute = 10
	// DefaultBoundAuditPerMinute bounds the login.failed events written
	// each minute for refusals of logins the browser did begin, all IdPs
	// and reasons together. Anyone can begin a login (one GET of the login
	// URL gives a real flow cookie) and post made-up callbacks with
	// copies of it, each refused for a reason of its choice: without this
	// cap, DefaultAuditPerMinute times every reason of every IdP a minute.
	DefaultBoundAuditPerMinute = 30
	// DefaultUnboundAuditPerMinute bounds the login.failed events written
	// each minute for refusals bound to no login of the browser, all IdPs
	// and reasons together. With DefaultBoundAuditPerMinute, an instance
	// writes at most 40 refusal events a minute, whoever sends them.
	DefaultUnboundAuditPerMinute = 10
	// refusalWindow is the period of the audit budget, the log budget's
	// (logbudget.Window).
	refusalWindow = logbudget.Window
)

// Refusals records callbacks the protocol adapter refused, without letting
// unauthenticated traffic grow the store or flood the log
// (docs/security.md, "Unauthenticated traffic"):
//
//   - a refusal of a login the browser did begin is audited
//     (login.failed), at most AuditPerMinute per IdP and reason, and the
//     next event of that IdP and reason written after a full minute says
//     how many were left out (not_audited_last_minute);
//   - those are also capped together, at BoundAuditPerMinute per instance
//     whatever the IdP and reason, since whoever begins a login can send
//     them; the next bound event written after a full minute says how
//     many of any IdP and reason this cap left out
//     (not_audited_instance_cap). The unbound ones below are not counted
//     in it: their budget is separate both ways, so that neither garbage
//     nor made-up callbacks with a real flow cookie crowd out the other;
//   - a refusal without this browser's valid flow cookie (idp.LoginError
//     .Bound false: the back button after a sign-in, no cookie, a forged
//     one, an unsolicited post) is audited too, since the person saw its
//     reference on a page, but anyone can send those without limit: at
//     most UnboundAuditPerMinute of them per instance, whatever the IdP
//     and reason, in a budget of their own (so that they cannot crowd out
//     the refusals of real logins), each event marked as bound to no
//     login of this browser;
//   - the log gets the first refusal per IdP, reason and source each
//     minute at WARN, the rest at DEBUG, counted on the next WARN line
//     (internal/logbudget); at ERROR instead of WARN when the IdP or its
//     configuration is at fault (operatorFault).
//
// Metrics count every refusal (the caller's job).
type Refusals struct {
	Store  store.Store
	Logger *zap.Logger      // nil: no logs
	Now    func() time.Time // nil: time.Now
	// AuditPerMinute: 0 means DefaultAuditPerMinute.
	AuditPerMinute int
	// BoundAuditPerMinute: 0 means DefaultBoundAuditPerMinute.
	BoundAuditPerMinute int
	// UnboundAuditPerMinute: 0 means DefaultUnboundAuditPerMinute.
	UnboundAuditPerMinute int

	mu      sync.Mutex
	audit   map[[2]string]*budget // (idp, code), of bound refusals
	bound   budget                // every bound refusal within its (idp, code) budget
	unbound budget                // every unbound refusal
	logs    logbudget.Budget      // idp, code, source
}

// budget counts one key's events in the current window.
type budget struct {
	start time.Time
	n     int // events in the window
	// left out beyond the limit in windows that have ended, not yet
	// reported: kept until an event is written, so that a count is not
	// lost when the next event is itself left out by the instance cap.
	left int
}

// take counts an event at now and reports whether it is within limit.
func (b *budget) take(now time.Time, limit int) bool {
	if now.Sub(b.start) >= refusalWindow {
		b.left += max(b.n-limit, 0)
		b.start, b.n = now, 0
	}
	b.n++
	return b.n <= limit
}

// report returns the count of events left out, once: for the event about
// to be written.
func (b *budget) report() int {
	n := b.left
	b.left = 0
	return n
}

// UnboundFlow is the "flow" detail of a login.failed event whose callback
// was bound to no login this browser began (idp.LoginError.Bound false).
const UnboundFlow = "not_of_this_browser"

// IdPUnreachable reports the reference codes of an IdP that could not be
// reached (its keys, discovery or metadata could not be fetched): the
// answer may have been good, so the person is told that trying again may
// help (the gateway's unavailable page), at the start of a sign-in and at
// its callback alike.
func IdPUnreachable(code string) bool {
	return code == oidc.CodeIdPUnavailable || code == saml.CodeMetadataUnavailable
}

// operatorFault reports whether a refusal with code says the IdP cannot
// be reached or contradicts the configuration: every sign-in fails until
// an operator acts, whoever the person is. Those are logged at ERROR, as
// the same codes are when a sign-in cannot start (the gateway's
// beginLogin), so that an alert on ERROR lines sees a JWKS outage as it
// sees a discovery outage. A person's bad, expired or forged callback
// stays at WARN.
func operatorFault(code string) bool {
	return code == idp.CodeMisconfigured || IdPUnreachable(code)
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Record notes one refused callback of idpName from source (the client
// address). userID, when set, is the signed-in user it concerns (a
// re-authentication refused: their own step-up, which audit --user must
// show); refusals of anonymous sign-ins name none. It never fails: a store
// error is logged.
func (r *Refusals) Record(ctx context.Context, idpName string, le *idp.LoginError, source, userID string) {
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	r.mu.Lock()
	if r.audit == nil {
		r.audit = make(map[[2]string]*budget)
	}
	var auditOK bool
	var auditDropped, capDropped int
	if le.Bound {
		b := r.audit[[2]string{idpName, le.Code}]
		if b == nil {
			b = &budget{start: now}
			r.audit[[2]string{idpName, le.Code}] = b
		}
		// The instance cap counts only what the IdP's and reason's budget
		// lets through, so each refusal left out is counted once, by the
		// budget that left it out.
		auditOK = b.take(now, orDefault(r.AuditPerMinute, DefaultAuditPerMinute)) &&
			r.bound.take(now, orDefault(r.BoundAuditPerMinute, DefaultBoundAuditPerMinute))
		if auditOK {
			auditDropped, capDropped = b.report(), r.bound.report()
		}
	} else {
		auditOK = r.unbound.take(now, orDefault(r.UnboundAuditPerMinute, DefaultUnboundAuditPerMinute))
		if auditOK {
			auditDropped = r.unbound.report()
		}
	}
	r.mu.Unlock()

	log := zap.NewNop()
	if r.Logger != nil {
		log = r.Logger
	}
	logAt := r.logs.Warn
	if operatorFault(le.Code) {
		logAt = r.logs.Error
	}
	logAt(log, idpName+"\x00"+le.Code+"\x00"+source, now, "sign-in refused",
		zap.String("idp", idpName), zap.String("reason", le.Code), zap.String("source", source),
		zap.Bool("login_in_progress", le.Bound), zap.Error(le))
	if !auditOK {
		return
	}
	ev := store.Event{Time: now, Type: store.EventLoginFailed, IdP: idpName, UserID: userID, Reason: le.Code}
	if auditDropped > 0 || capDropped > 0 || !le.Bound {
		ev.Detail = make(map[string]string, 2)
	}
	if auditDropped > 0 {
		ev.Detail["not_audited_last_minute"] = strconv.Itoa(auditDropped)
	}
	if capDropped > 0 {
		ev.Detail["not_audited_instance_cap"] = strconv.Itoa(capDropped)
	}
	if !le.Bound {
		// Whoever sent it need not have begun a login here: an
		// administrator reading the trail must not take it for one.
		ev.Detail["flow"] = UnboundFlow
	}
	if err := r.Store.Update(ctx, func(tx store.Tx) error { return tx.Audit(ev) }); err != nil {
		log.Error("writing audit event", zap.String("type", ev.Type), zap.Error(err))
	}
}
