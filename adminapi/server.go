// Package adminapi is the sso admin API, both sides of it, without Caddy:
// Handler serves it over an account.Service (caddymodule's admin.api.sso
// module mounts it on Caddy's admin endpoint), and Client calls it (the
// `caddy sso` CLI). docs/operations.md lists the endpoints:
//
//	GET    /sso/users?query=&after=&limit=
//	GET    /sso/users/{id}?after=&limit=          (after and limit page the sessions)
//	POST   /sso/users/{id}/enable
//	POST   /sso/users/{id}/disable
//	DELETE /sso/users/{id}
//	POST   /sso/users/{id}/sessions/revoke
//	GET    /sso/audit?user=&type=&since=&until=&after=&limit=
//	GET    /sso/tombstones?user=&idp=&after=&limit=  (user: the deleted user's ID)
//	DELETE /sso/tombstones?user=                 (or ?idp=&subject=: one tombstone)
//	GET    /sso/backup
//	GET    /sso/check
//	POST   /sso/keys/rotate?only=                (only: flow, tokens, upstream-jwt; repeated or a comma list)
//	POST   /sso/keys/finish                      (both stream JSON Lines: KeysLine)
//
// A query parameter an endpoint does not take is a 400 naming it.
package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// Prefix is where the admin API lives on Caddy's admin endpoint.
const Prefix = "/sso/"

// The trailers of a backup: the status line goes out before the copy is
// done, so a client checks them before trusting the file.
const (
	BackupSizeTrailer  = "X-Sso-Backup-Size"
	BackupErrorTrailer = "X-Sso-Backup-Error"
)

// MarkHeader is on every answer of Caddy's admin endpoint under Prefix,
// errors and "the sso app is not running" included (caddymodule's admin
// route sets it before anything else; Caddy keeps it on its error
// answers): it tells the CLI that what answered at --address is Caddy's
// admin endpoint with this API, not a site (whose sso answers a 401 of its
// own JSON {"error"}) or another program, whose answers it would otherwise
// take for the API's refusals, or fail to read.
const MarkHeader = "X-Sso-Admin-Api"

// DefaultBackupStall is how long GET /sso/backup waits on a client that
// reads nothing before it gives the backup up. The backup is one store
// read transaction from start to end, and Caddy's admin server sets no
// write timeout: a client that stops reading (a suspended curl, the CLI
// writing to a hung NFS mount) would hold that transaction for good, and
// with it the bbolt store's Close, so that Caddy's stop never ends
// (systemd then kills it, and the last-seen times kept in memory are
// lost), while pages freed meanwhile cannot be reused and the file grows
// (docs/operations.md, "Backup"). The deadline is renewed at every write,
// so it bounds a stall, not the backup: a large store's backup takes
// minutes. A minute is long past any pause of a client that still reads,
// and below systemd's default stop timeout (90 s).
const DefaultBackupStall = time.Minute

// Handler serves the admin API.
type Handler struct {
	Accounts *account.Service
	// Backup writes a consistent copy of the store to w; nil when the
	// store cannot be backed up.
	Backup func(w io.Writer) (int64, error)
	// BackupStall bounds how long a backup waits on a client that reads
	// nothing; 0 means DefaultBackupStall.
	BackupStall time.Duration
	// Check runs the store's integrity check; nil when the backend has
	// none (only bbolt keeps its own indexes).
	Check  func(ctx context.Context) (*StoreCheck, error)
	Logger *zap.Logger // nil: no logs
	Now    func() time.Time
	// Reseal tunes the re-seal of the keys endpoints (its Batch and Rest;
	// the handler sets Progress): zero is the defaults.
	Reseal session.ResealOptions
}

// Error is an answer other than 200: the status, and the message the
// client sees. Err, when set, is the cause, for the log only (a store
// error names its backend and internals).
type Error struct {
	Status  int
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// failure turns an account error into the API's answer.
func failure(err error) error {
	var nf *account.NotFoundError
	switch {
	case errors.As(err, &nf):
		return &Error{Status: http.StatusNotFound, Message: nf.Error(), Err: err}
	case errors.Is(err, account.ErrBadQuery):
		return &Error{Status: http.StatusBadRequest, Message: err.Error(), Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Message: "request cancelled", Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Message: "internal error: the store failed (Caddy's log has the cause)", Err: err}
}

func (h *Handler) log() *zap.Logger {
	if h.Logger == nil {
		return zap.NewNop()
	}
	return h.Logger
}

// Serve answers one request under Prefix. Errors are *Error, for the
// caller to render (Caddy's admin endpoint writes {"error": message}).
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request) error {
	// Split the path as sent, then unescape each part once: r.URL.Path is
	// already unescaped, and unescaping it again would turn an ID such as
	// "100%41" into another one, and an escaped "/" into a separator.
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), Prefix), "/"), "/")
	for i, p := range parts {
		var err error
		if parts[i], err = url.PathUnescape(p); err != nil {
			return errorf(http.StatusBadRequest, "bad path: %v", err)
		}
	}
	method := func(allowed string) error {
		if r.Method != allowed {
			w.Header().Set("Allow", allowed)
			return errorf(http.StatusMethodNotAllowed, "method not allowed: %s (use %s)", r.Method, allowed)
		}
		return nil
	}
	ctx, q := r.Context(), r.URL.Query()
	isUser := len(parts) >= 2 && parts[0] == "users" && parts[1] != ""
	switch {
	case len(parts) == 1 && parts[0] == "users":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		if err := params(q, "query", "after", "limit"); err != nil {
			return err
		}
		limit, err := PageSize(q.Get("limit"))
		if err != nil {
			return err
		}
		page, err := h.Accounts.ListUsers(ctx, q.Get("query"), q.Get("after"), limit)
		return reply(w, page, err)

	case isUser && len(parts) == 2:
		switch r.Method {
		case http.MethodGet:
			if err := params(q, "after", "limit"); err != nil {
				return err
			}
			limit, err := PageSize(q.Get("limit"))
			if err != nil {
				return err
			}
			d, err := h.Accounts.User(ctx, parts[1], q.Get("after"), limit)
			return reply(w, d, err)
		case http.MethodDelete:
			if err := params(q); err != nil {
				return err
			}
			_, err := h.Accounts.Delete(ctx, parts[1], account.ByAdmin)
			return reply(w, map[string]string{"deleted": parts[1]}, err)
		}
		w.Header().Set("Allow", "GET, DELETE")
		return errorf(http.StatusMethodNotAllowed, "method not allowed: %s", r.Method)

	case isUser && len(parts) == 3 && (parts[2] == "enable" || parts[2] == "disable"):
		if err := method(http.MethodPost); err != nil {
			return err
		}
		if err := params(q); err != nil {
			return err
		}
		op := h.Accounts.Deactivate
		if parts[2] == "enable" {
			op = h.Accounts.Activate
		}
		res, err := op(ctx, parts[1], account.ByAdmin)
		if err != nil {
			return failure(err)
		}
		return reply(w, res.User, nil)

	case isUser && len(parts) == 4 && parts[2] == "sessions" && parts[3] == "revoke":
		if err := method(http.MethodPost); err != nil {
			return err
		}
		if err := params(q); err != nil {
			return err
		}
		res, err := h.Accounts.EndSessions(ctx, parts[1], account.ByAdmin)
		if err != nil {
			return failure(err)
		}
		return reply(w, map[string]int{"revoked": res.Sessions}, nil)

	case len(parts) == 1 && parts[0] == "audit":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		if err := params(q, "user", "type", "since", "until", "after", "limit"); err != nil {
			return err
		}
		aq, err := h.auditQuery(q)
		if err != nil {
			return err
		}
		page, err := h.Accounts.Audit(ctx, aq)
		return reply(w, page, err)

	case len(parts) == 1 && parts[0] == "tombstones":
		return h.tombstones(w, r)

	case len(parts) == 1 && parts[0] == "backup":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		if err := params(q); err != nil {
			return err
		}
		return h.backup(w, r)

	case len(parts) == 1 && parts[0] == "check":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		if err := params(q); err != nil {
			return err
		}
		if h.Check == nil {
			return errorf(http.StatusNotImplemented, "the store backend has no integrity check (only bbolt stores keep their own indexes)")
		}
		sc, err := h.Check(ctx)
		return reply(w, sc, err)

	case len(parts) == 2 && parts[0] == "keys" && (parts[1] == "rotate" || parts[1] == "finish"):
		if err := method(http.MethodPost); err != nil {
			return err
		}
		return h.rotateKeys(w, r, parts[1] == "finish")
	}
	return errorf(http.StatusNotFound, "resource not found: %s", r.URL.Path)
}

// params refuses a query parameter the endpoint does not take: a
// misspelt filter (?q= for ?query=, ?user_id= for ?user=) would otherwise
// be ignored, and the answer look like the filtered one.
func params(q url.Values, known ...string) error {
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if slices.Contains(known, k) {
			continue
		}
		if len(known) == 0 {
			return errorf(http.StatusBadRequest, "unknown query parameter %q: this endpoint takes none", k)
		}
		return errorf(http.StatusBadRequest, "unknown query parameter %q (this endpoint takes: %s)", k, strings.Join(known, ", "))
	}
	return nil
}

// reply writes v as JSON, or the error err stands for.
func reply(w http.ResponseWriter, v any, err error) error {
	if err != nil {
		return failure(err)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// backup streams a backup of the store: every key it holds included (the
// SAML SP private keys, the session-token and flow-cookie keys), so the
// admin endpoint is as sensitive as those keys. Each one handed out is
// audited first (account.Service.AuditBackup). A store that takes no
// write (a full disk) still gives its backup, when one is needed most:
// the log then records it, at ERROR.
func (h *Handler) backup(w http.ResponseWriter, r *http.Request) error {
	if h.Backup == nil {
		return errorf(http.StatusNotImplemented, "the store backend cannot be backed up")
	}
	if err := h.Accounts.AuditBackup(r.Context(), account.ByAdmin, account.ViaAdminAPI, r.RemoteAddr); err != nil {
		h.log().Error("store backup handed out without its audit event", zap.String("remote", r.RemoteAddr), zap.Error(err))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="sso.jsonl.gz"`) // the portable format, not a store file
	w.Header().Set("Trailer", BackupSizeTrailer+", "+BackupErrorTrailer)
	w.WriteHeader(http.StatusOK)
	bw, stop := h.stallGuard(r.Context(), w)
	n, err := h.Backup(bw)
	stop()
	if err != nil {
		// Too late for an error status: say so in the trailer and the log.
		// After a stall the connection is dead: the client gets a stream
		// cut short (no last chunk, no size trailer), which Client.Backup
		// and so the CLI refuse.
		msg := "store backup failed"
		if errors.Is(err, os.ErrDeadlineExceeded) {
			msg = "store backup abandoned: the client read nothing for " + h.backupStall().String()
		}
		h.log().Error(msg, zap.Int64("bytes", n), zap.Error(err))
		w.Header().Set(BackupErrorTrailer, "the backup failed (Caddy's log has the cause)")
		return nil
	}
	w.Header().Set(BackupSizeTrailer, strconv.FormatInt(n, 10))
	h.log().Info("store backed up", zap.Int64("bytes", n))
	return nil
}

func (h *Handler) backupStall() time.Duration {
	if h.BackupStall > 0 {
		return h.BackupStall
	}
	return DefaultBackupStall
}

// stallGuard returns w with its write deadline renewed before every write
// (see DefaultBackupStall); net/http clears the deadline once the response
// is done. Once ctx is done (the store is closing: caddymodule) the
// deadline is now, which ends a write blocked on a client that reads
// nothing, and with it the store's read transaction. Call stop once the
// backup has ended. A ResponseWriter that cannot set a deadline gets the
// backup without either.
func (h *Handler) stallGuard(ctx context.Context, w http.ResponseWriter) (_ io.Writer, stop func() bool) {
	rc := http.NewResponseController(w)
	stall := h.backupStall()
	if err := rc.SetWriteDeadline(time.Now().Add(stall)); err != nil {
		h.log().Warn("store backup without a stall timeout: the connection cannot set a write deadline", zap.Error(err))
		return w, func() bool { return false }
	}
	return &stallWriter{ctx: ctx, w: w, rc: rc, stall: stall},
		context.AfterFunc(ctx, func() { _ = rc.SetWriteDeadline(time.Now()) })
}

// stallWriter renews the connection's write deadline before each write.
type stallWriter struct {
	ctx   context.Context
	w     io.Writer
	rc    *http.ResponseController
	stall time.Duration
}

func (s *stallWriter) Write(p []byte) (int, error) {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.stall)); err != nil {
		return 0, fmt.Errorf("renewing the backup's write deadline: %w", err)
	}
	// Checked after the renewal: a cancellation from here on sets the
	// deadline after it (stallGuard's AfterFunc).
	if s.ctx.Err() != nil {
		return 0, context.Cause(s.ctx)
	}
	n, err := s.w.Write(p)
	// The deadline stallGuard set when ctx ended with a cause of its own,
	// not a stall. (net/http ends the request's context, no cause, when a
	// write fails: a stall too.)
	if cause := context.Cause(s.ctx); err != nil && cause != s.ctx.Err() {
		err = fmt.Errorf("%w (writing: %v)", cause, err)
	}
	return n, err
}

// PageSize reads a limit= value: empty for the default (0), else a whole
// number of at least 1 (CheckCount). Pages hold at most
// account.MaxPageSize, so a larger limit asks for that many, as does one
// too large to parse: both mean "as many as you give".
func PageSize(raw string) (int, error) {
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(raw)
	switch {
	case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(raw, "-"):
		return account.MaxPageSize, nil
	case err != nil:
		err = countError("limit", strconv.Quote(raw))
	default:
		err = CheckCount("limit", n)
	}
	if err != nil {
		return 0, errorf(http.StatusBadRequest, "%v (a page holds 1 to %d; a larger limit gets %d)", err, account.MaxPageSize, account.MaxPageSize)
	}
	return min(n, account.MaxPageSize), nil
}

// CheckCount is the one rule for a count a client asks for, the API's
// limit= and the CLI's --limit and --sessions alike: at least 1. Zero or a
// negative count is refused rather than read as "the default" or "all",
// which a script that computed it would not have meant.
func CheckCount(name string, n int) error {
	if n < 1 {
		return countError(name, strconv.Itoa(n))
	}
	return nil
}

func countError(name, got string) error {
	return fmt.Errorf("%s must be a whole number of at least 1, got %s", name, got)
}

// ParseTime reads an RFC 3339 time, a time as the CLI prints one
// (keys.TimeLayout, "2026-12-04 16:15:39 UTC": restore's backup time and a
// rotation's are pasted back into --since), or a duration meaning that long
// before now (24h: a day ago). Empty is the zero time.
func ParseTime(raw string, now time.Time) (time.Time, error) {
	if raw == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return t, nil
	}
	if t, err := time.Parse(keys.TimeLayout, raw); err == nil {
		// Go reads a zone abbreviation the local zone does not use as
		// UTC+0 (its offset is not in the text): CET read on a UTC host
		// would be an hour off, so only UTC and the local zone's own count.
		if t.Location() != time.UTC && t.Location() != time.Local {
			zone, _ := t.Zone()
			return time.Time{}, fmt.Errorf("%q: the zone %s is not this host's; write the time in UTC or as RFC 3339 (2026-12-04T16:15:39+01:00)", raw, zone)
		}
		return t, nil
	}
	if d, err := time.ParseDuration(raw); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time, a time such as 2026-12-04 16:15:39 UTC, nor a duration such as 1h", raw)
}

func (h *Handler) auditQuery(v url.Values) (store.AuditQuery, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	q := store.AuditQuery{UserID: v.Get("user"), Type: v.Get("type")}
	var err error
	if q.Since, err = ParseTime(v.Get("since"), now); err != nil {
		return q, errorf(http.StatusBadRequest, "since: %v", err)
	}
	if q.Until, err = ParseTime(v.Get("until"), now); err != nil {
		return q, errorf(http.StatusBadRequest, "until: %v", err)
	}
	if raw := v.Get("after"); raw != "" {
		if q.After, err = strconv.ParseUint(raw, 10, 64); err != nil {
			return q, errorf(http.StatusBadRequest, "after must be an event sequence number, got %q", raw)
		}
	}
	q.Limit, err = PageSize(v.Get("limit"))
	return q, err
}

// StoreCheck is what the store's integrity check found (GET /sso/check,
// and `caddy sso check --store` on a file).
type StoreCheck struct {
	Store    string   `json:"store"`
	Schema   int      `json:"schema"`
	Users    int      `json:"users"`
	Groups   int      `json:"groups"`
	Sessions int      `json:"sessions"`
	Events   int      `json:"audit_events"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	// More counts problems beyond those listed.
	More int `json:"more_problems,omitempty"`
}

// NewStoreCheck is the report of a check of the store at path: the records
// it read, and the problems it found (the first ones, and how many more).
func NewStoreCheck(path string, schema int, records store.Counts, problems []string, more int) *StoreCheck {
	return &StoreCheck{Store: path, Schema: schema, Users: records.Users, Groups: records.Groups,
		Sessions: records.Sessions, Events: records.AuditEvents, OK: len(problems) == 0 && more == 0,
		Problems: problems, More: more}
}
