package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the sso admin endpoints under /sso/ on Caddy's admin
// endpoint. It looks the running sso app up at request time, so it always
// talks to the config that is live now, across reloads.
//
//	GET    /sso/users?query=&after=&limit=
//	GET    /sso/users/{id}
//	POST   /sso/users/{id}/enable
//	POST   /sso/users/{id}/disable
//	DELETE /sso/users/{id}
//	POST   /sso/users/{id}/sessions/revoke
//	GET    /sso/audit?user=&type=&since=&until=&after=&limit=
//	GET    /sso/backup
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
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

const adminPrefix = "/sso/"

// Paging limits of the list endpoints.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// Reasons and actor recorded in audit events written by administration.
const (
	adminActor          = "admin"
	revokeReasonAdmin   = "admin_revoked"
	revokeReasonDisable = "admin_disabled"
)

func adminError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// adminStoreError turns a store error into an API error with its status.
func adminStoreError(err error) error {
	var apiErr caddy.APIError
	switch {
	case errors.As(err, &apiErr):
		return err
	case errors.Is(err, store.ErrNotFound):
		return adminError(http.StatusNotFound, "%v", err)
	case errors.Is(err, context.Canceled):
		return adminError(http.StatusServiceUnavailable, "%v", err)
	}
	return adminError(http.StatusInternalServerError, "%v", err)
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	app, err := runningSSOApp()
	if err != nil {
		return err
	}
	o := &adminOps{db: app.Store(), sessions: app.Sessions()}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, adminPrefix), "/"), "/")
	for i, p := range parts {
		if parts[i], err = url.PathUnescape(p); err != nil {
			return adminError(http.StatusBadRequest, "bad path: %v", err)
		}
	}
	method := func(allowed string) error {
		if r.Method != allowed {
			w.Header().Set("Allow", allowed)
			return adminError(http.StatusMethodNotAllowed, "method not allowed: %s (use %s)", r.Method, allowed)
		}
		return nil
	}
	ctx := r.Context()
	switch {
	case len(parts) == 1 && parts[0] == "users":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		q := r.URL.Query()
		limit, err := adminPageSize(q.Get("limit"))
		if err != nil {
			return err
		}
		page, err := o.listUsers(ctx, q.Get("query"), q.Get("after"), limit)
		if err != nil {
			return adminStoreError(err)
		}
		return writeJSON(w, http.StatusOK, page)

	case len(parts) == 2 && parts[0] == "users" && parts[1] != "":
		switch r.Method {
		case http.MethodGet:
			d, err := o.showUser(ctx, parts[1])
			if err != nil {
				return adminStoreError(err)
			}
			return writeJSON(w, http.StatusOK, d)
		case http.MethodDelete:
			if err := o.deleteUser(ctx, parts[1]); err != nil {
				return adminStoreError(err)
			}
			a.log.Info("user deleted", zap.String("user_id", parts[1]))
			return writeJSON(w, http.StatusOK, map[string]string{"deleted": parts[1]})
		}
		w.Header().Set("Allow", "GET, DELETE")
		return adminError(http.StatusMethodNotAllowed, "method not allowed: %s", r.Method)

	case len(parts) == 3 && parts[0] == "users" && parts[1] != "" && (parts[2] == "enable" || parts[2] == "disable"):
		if err := method(http.MethodPost); err != nil {
			return err
		}
		u, err := o.setActive(ctx, parts[1], parts[2] == "enable")
		if err != nil {
			return adminStoreError(err)
		}
		a.log.Info("user "+parts[2]+"d", zap.String("user_id", u.ID))
		return writeJSON(w, http.StatusOK, u)

	case len(parts) == 4 && parts[0] == "users" && parts[1] != "" && parts[2] == "sessions" && parts[3] == "revoke":
		if err := method(http.MethodPost); err != nil {
			return err
		}
		n, err := o.revokeSessions(ctx, parts[1])
		if err != nil {
			return adminStoreError(err)
		}
		return writeJSON(w, http.StatusOK, map[string]int{"revoked": n})

	case len(parts) == 1 && parts[0] == "audit":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		q, err := adminAuditQuery(r.URL.Query(), time.Now())
		if err != nil {
			return err
		}
		page, err := o.audit(ctx, q)
		if err != nil {
			return adminStoreError(err)
		}
		return writeJSON(w, http.StatusOK, page)

	case len(parts) == 1 && parts[0] == "backup":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		return a.backup(w, app)
	}
	return adminError(http.StatusNotFound, "resource not found: %s", r.URL.Path)
}

// runningSSOApp is the sso app of the config Caddy runs now.
func runningSSOApp() (*App, error) {
	v, err := caddy.ActiveContext().AppIfConfigured("sso")
	if err != nil {
		return nil, adminError(http.StatusServiceUnavailable, "the sso app is not running: %v", err)
	}
	app, ok := v.(*App)
	if !ok || app.Store() == nil {
		return nil, adminError(http.StatusServiceUnavailable, "the sso app is not running")
	}
	return app, nil
}

// backupTrailer carries the byte count of a complete backup (or the error
// that cut it short): the status line is sent before the copy is done, so
// a client checks the trailer before trusting the file.
const (
	backupSizeTrailer  = "X-Sso-Backup-Size"
	backupErrorTrailer = "X-Sso-Backup-Error"
)

type adminBackuper interface {
	Backup(w io.Writer) (int64, error)
}

func (a *adminAPI) backup(w http.ResponseWriter, app *App) error {
	b, ok := app.Store().(adminBackuper)
	if !ok {
		return adminError(http.StatusNotImplemented, "the store backend cannot be backed up")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="sso.db"`)
	w.Header().Set("Trailer", backupSizeTrailer+", "+backupErrorTrailer)
	w.WriteHeader(http.StatusOK)
	n, err := b.Backup(w)
	if err != nil {
		// Too late for an error status: say so in the trailer and the log.
		a.log.Error("store backup failed", zap.Int64("bytes", n), zap.Error(err))
		w.Header().Set(backupErrorTrailer, err.Error())
		return nil
	}
	w.Header().Set(backupSizeTrailer, strconv.FormatInt(n, 10))
	a.log.Info("store backed up", zap.Int64("bytes", n))
	return nil
}

func adminPageSize(raw string) (int, error) {
	if raw == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return 0, adminError(http.StatusBadRequest, "limit must be a positive number, got %q", raw)
	}
	return min(n, maxPageSize), nil
}

// adminParseTime reads an RFC 3339 time, or a duration meaning that long before now.
func adminParseTime(raw string, now time.Time) (time.Time, error) {
	if raw == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(raw); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 1h", raw)
}

func adminAuditQuery(v url.Values, now time.Time) (store.AuditQuery, error) {
	q := store.AuditQuery{UserID: v.Get("user"), Type: v.Get("type")}
	var err error
	if q.Since, err = adminParseTime(v.Get("since"), now); err != nil {
		return q, adminError(http.StatusBadRequest, "since: %v", err)
	}
	if q.Until, err = adminParseTime(v.Get("until"), now); err != nil {
		return q, adminError(http.StatusBadRequest, "until: %v", err)
	}
	if raw := v.Get("after"); raw != "" {
		if q.After, err = strconv.ParseUint(raw, 10, 64); err != nil {
			return q, adminError(http.StatusBadRequest, "after must be an event sequence number, got %q", raw)
		}
	}
	if q.Limit, err = adminPageSize(v.Get("limit")); err != nil {
		return q, err
	}
	return q, nil
}

// ---- operations shared by the admin API and the CLI's offline mode ----

// UsersPage is one page of users; Next, when set, is the after= of the next page.
type UsersPage struct {
	Users []*store.User `json:"users"`
	Next  string        `json:"next,omitempty"`
}

// UserDetail is one user with what an operator needs to see about them.
type UserDetail struct {
	User     *store.User      `json:"user"`
	Groups   []store.GroupRef `json:"groups,omitempty"`
	Sessions []SessionInfo    `json:"sessions"`
}

// SessionInfo describes a session without its hash or logout tokens.
type SessionInfo struct {
	IdP      string    `json:"idp"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// AuditPage is one page of audit events; Next is the after= that
// continues it (the last Seq returned, or the request's after when none).
type AuditPage struct {
	Events []store.Event `json:"events"`
	Next   uint64        `json:"next"`
}

// adminOps works on a store directly. sessions is nil offline (no running
// Caddy, so no session cache to drop).
type adminOps struct {
	db       store.Store
	sessions *session.Manager
}

// adminMatchUser reports whether a user matches a search: query is matched,
// ignoring case, as a substring of the ID, email, names, user name and
// display name.
func adminMatchUser(u *store.User, query string) bool {
	if query == "" {
		return true
	}
	q := strings.ToLower(query)
	for _, f := range []string{u.ID, u.Email, u.FirstName, u.LastName, u.FirstName + " " + u.LastName, u.UserName, u.DisplayName} {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

var errAdminPageFull = errors.New("page full")

func (o *adminOps) listUsers(ctx context.Context, query, after string, limit int) (*UsersPage, error) {
	if limit <= 0 {
		limit = defaultPageSize
	}
	page := &UsersPage{Users: []*store.User{}}
	err := o.db.View(ctx, func(tx store.Tx) error {
		page.Users, page.Next = page.Users[:0], ""
		seen := 0
		err := tx.ForEachUser(after, func(u *store.User) error {
			if seen++; seen%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if !adminMatchUser(u, query) {
				return nil
			}
			if len(page.Users) == limit {
				page.Next = page.Users[limit-1].ID
				return errAdminPageFull
			}
			page.Users = append(page.Users, u)
			return nil
		})
		if errors.Is(err, errAdminPageFull) {
			return nil
		}
		return err
	})
	return page, err
}

func (o *adminOps) showUser(ctx context.Context, id string) (*UserDetail, error) {
	d := new(UserDetail)
	err := o.db.View(ctx, func(tx store.Tx) error {
		var err error
		if d.User, err = tx.User(id); err != nil {
			return err
		}
		if d.Groups, err = tx.GroupsOfUser(id); err != nil {
			return err
		}
		sessions, err := tx.UserSessions(id)
		if err != nil {
			return err
		}
		d.Sessions = make([]SessionInfo, 0, len(sessions))
		for _, s := range sessions {
			d.Sessions = append(d.Sessions, SessionInfo{IdP: s.IdP, Created: s.Created, Expires: s.Expires, LastSeen: s.LastSeen})
		}
		return nil
	})
	return d, err
}

// setActive enables or disables a user. Disabling ends their sessions in
// the same transaction and drops them from the session cache, so the very
// next request with an old cookie is treated as signed out. Enabling also
// approves a pending user. An unchanged user is not written or audited.
func (o *adminOps) setActive(ctx context.Context, id string, active bool) (*store.User, error) {
	var u *store.User
	var revoked int
	err := o.db.Update(ctx, func(tx store.Tx) error {
		var err error
		revoked = 0
		if u, err = tx.User(id); err != nil {
			return err
		}
		if u.Active == active && (!active || !u.Pending) {
			return nil
		}
		u.Active = active
		if active {
			u.Pending = false
		}
		u.Updated = time.Now().UTC()
		if err := tx.PutUser(u); err != nil {
			return err
		}
		typ := store.EventUserActivated
		if !active {
			typ = store.EventUserDeactivated
		}
		if err := tx.Audit(store.Event{Type: typ, UserID: id, IdP: u.IdP, Reason: adminActor}); err != nil {
			return err
		}
		if active {
			return nil
		}
		hashes, err := tx.DeleteUserSessions(id)
		if err != nil {
			return err
		}
		if revoked = len(hashes); revoked == 0 {
			return nil
		}
		return tx.Audit(store.Event{Type: store.EventSessionRevoked, UserID: id, Reason: revokeReasonDisable,
			Detail: map[string]string{"sessions": strconv.Itoa(revoked)}})
	})
	if o.sessions != nil {
		// Also after an error: a cached active identity must not outlive
		// an attempt to disable it.
		o.sessions.ForgetUser(id)
		if err == nil && !active {
			// Sessions created between the transaction and ForgetUser.
			if _, rerr := o.sessions.RevokeUser(ctx, id, revokeReasonDisable); rerr != nil {
				return nil, rerr
			}
		}
	}
	return u, err
}

func (o *adminOps) deleteUser(ctx context.Context, id string) error {
	err := o.db.Update(ctx, func(tx store.Tx) error {
		u, err := tx.User(id)
		if err != nil {
			return err
		}
		if err := tx.DeleteUser(id); err != nil {
			return err
		}
		return tx.Audit(store.Event{Type: store.EventUserDeleted, UserID: id, IdP: u.IdP, Reason: adminActor,
			Detail: map[string]string{"email": u.Email}})
	})
	if o.sessions != nil {
		o.sessions.ForgetUser(id)
	}
	return err
}

func (o *adminOps) revokeSessions(ctx context.Context, id string) (int, error) {
	err := o.db.View(ctx, func(tx store.Tx) error {
		_, err := tx.User(id)
		return err
	})
	if err != nil {
		return 0, err
	}
	if o.sessions != nil {
		return o.sessions.RevokeUser(ctx, id, revokeReasonAdmin)
	}
	var n int
	err = o.db.Update(ctx, func(tx store.Tx) error {
		hashes, err := tx.DeleteUserSessions(id)
		if n = len(hashes); err != nil || n == 0 {
			return err
		}
		return tx.Audit(store.Event{Type: store.EventSessionRevoked, UserID: id, Reason: revokeReasonAdmin,
			Detail: map[string]string{"sessions": strconv.Itoa(n)}})
	})
	return n, err
}

func (o *adminOps) audit(ctx context.Context, q store.AuditQuery) (*AuditPage, error) {
	page := &AuditPage{Next: q.After}
	err := o.db.View(ctx, func(tx store.Tx) error {
		var err error
		page.Events, err = tx.AuditEvents(q)
		return err
	})
	if page.Events == nil {
		page.Events = []store.Event{}
	}
	if n := len(page.Events); n > 0 {
		page.Next = page.Events[n-1].Seq
	}
	return page, err
}

var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
