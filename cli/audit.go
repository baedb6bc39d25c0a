package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/internal/termtext"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/postgres"
)

// followRetries is how many times `audit --follow`'s pause between
// attempts to read a trail it cannot read may double: from --interval to
// followRetries times it, a few seconds by default.
const followRetries = 5

func auditCommand() *cobra.Command {
	audit := &cobra.Command{
		Use:   "audit",
		Short: "Prints the audit trail, optionally following it",
		Long: `Prints the audit trail, oldest first, optionally filtered, and with
--follow keeps printing new events until interrupted. While following, a
failure to read the trail (the database or Caddy restarting, a failover)
prints one warning on stderr and is retried, with growing pauses of up to
a few seconds, until the trail can be read again, which prints another
line; the events go on from where they stopped, none skipped or repeated.
Failures that retrying cannot mend (a refused authorisation, a store that
is not a caddy-sso store, a bad flag) end it, as does any failure of the
first read.

With --json it prints JSON Lines: one event, a JSON object, per line, as
they come (also with --follow), so no events print no line. Its fields are
seq, time (RFC 3339, UTC), type, idp, user_id, subject, reason and detail
(an object of strings); empty ones other than seq, time and type are left out. (users list
--json, which has an end, prints one JSON array.) A failure prints one line
{"error": ..., "status": ...} as well (status: the admin API's, when it
answered).

Event types (--type):
  ` + strings.Join(account.EventTypes, "\n  "),
		Args: cobra.NoArgs,
		RunE: runAudit,
	}
	af := audit.Flags()
	af.String("user", "", "Only events of this user ID")
	af.String("type", "", "Only events of this type (listed above)")
	af.String("since", "", "Only events at or after this RFC 3339 time, or this long ago (e.g. 24h)")
	af.String("until", "", "Only events before this RFC 3339 time, or this long ago")
	af.Uint64("after", 0, "Only events after this sequence number")
	af.Int("limit", 0, "At most this many events, at least 1 (default: all; ignored with --follow)")
	af.BoolP("follow", "f", false, "Keep printing new events until interrupted")
	af.Duration("interval", time.Second, "With --follow: how often to ask for new events (while the trail cannot be read, the pause doubles up to 5 times this)")
	return audit
}

func runAudit(c *cobra.Command, _ []string) error {
	f := c.Flags()
	user, _ := f.GetString("user")
	typ, _ := f.GetString("type")
	sinceRaw, _ := f.GetString("since")
	untilRaw, _ := f.GetString("until")
	after, _ := f.GetUint64("after")
	limit, err := countFlag(c, "limit")
	if err != nil {
		return err
	}
	follow, _ := f.GetBool("follow")
	interval, _ := f.GetDuration("interval")
	if interval <= 0 {
		return fmt.Errorf("--interval %v: want a positive duration such as 1s", interval)
	}
	if err := account.CheckEventType(typ); err != nil {
		return fmt.Errorf("--type: %w", err)
	}
	now := time.Now()
	since, err := adminapi.ParseTime(sinceRaw, now)
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	until, err := adminapi.ParseTime(untilRaw, now)
	if err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	ctx := c.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if follow {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt)
		defer stop()
		// A request to the admin endpoint ends with the command's context
		// (adminClient): Ctrl-C then ends a poll Caddy leaves unanswered
		// at once, not after --timeout.
		c.SetContext(ctx)
		limit = 0
	}
	return withClient(c, true, func(cl client) error {
		out := c.OutOrStdout()
		table := &auditTable{w: out}
		printed := 0
		read := false // whether a read has succeeded
		retry := followRetry{w: c.ErrOrStderr(), interval: interval}
		for {
			size := account.MaxPageSize
			if limit > 0 {
				size = min(size, limit-printed)
			}
			page, err := cl.Audit(ctx, store.AuditQuery{After: after, UserID: user, Type: typ, Since: since, Until: until, Limit: size})
			if err != nil {
				if follow && ctx.Err() != nil {
					return nil
				}
				if !follow || !read || lasting(err) {
					return err
				}
				// Asked again with the same after: nothing is skipped
				// or printed twice.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(retry.failed(err)):
				}
				continue
			}
			read = true
			retry.resumed(after)
			if asJSON(c) {
				for _, e := range page.Events {
					// One event per line, so that a follower can stream them.
					b, _ := json.Marshal(e)
					fmt.Fprintf(out, "%s\n", b)
				}
			} else if err := table.print(page.Events); err != nil {
				return err
			}
			printed += len(page.Events)
			after = page.Next
			if len(page.Events) == size && (limit == 0 || printed < limit) {
				continue // more right away
			}
			if !follow {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(interval):
			}
		}
	})
}

// followRetry reports, on stderr, the failures of `audit --follow` to read
// the trail once each time they start and end, not once per attempt, and
// spaces the attempts.
type followRetry struct {
	w        io.Writer
	interval time.Duration // --interval
	failures int           // attempts failed in a row
	since    time.Time     // of the first of them
	pause    time.Duration // before the next attempt
}

// failed notes a failed attempt and returns how long to wait before the
// next one.
func (r *followRetry) failed(err error) time.Duration {
	if r.failures == 0 {
		r.since, r.pause = time.Now(), r.interval
		fmt.Fprintf(r.w, "warning: cannot read the audit trail; retrying until it can be read (Ctrl-C ends): %s\n", termtext.Line(err.Error()))
	} else {
		r.pause = min(2*r.pause, followRetries*r.interval)
	}
	r.failures++
	return r.pause
}

// resumed notes a successful read, after which follows the event after.
func (r *followRetry) resumed(after uint64) {
	if r.failures == 0 {
		return
	}
	fmt.Fprintf(r.w, "the audit trail can be read again (after %d failed attempts in %v); following on after event %d\n",
		r.failures, time.Since(r.since).Round(time.Second), after)
	r.failures = 0
}

// lasting reports the failures to read the trail that trying again cannot
// mend, which end `audit --follow` rather than being retried: the admin
// API's refusal of the request itself (4xx: a bad query, authorisation
// refused, no such endpoint; but not 408 or 429), a query or a store
// this build cannot read, and, from PostgreSQL, refused authentication or
// authorisation, a database that does not exist, or tables that do not
// (a database that is not, or no longer, a caddy-sso store) or may not be
// read. The rest (Caddy or the database unreachable or restarting, the
// store failing behind the admin API, a 5xx, a timeout) may pass.
func lasting(err error) bool {
	if ae := (*apiStatusError)(nil); errors.As(err, &ae) {
		switch ae.status {
		case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
			return false
		}
		return ae.status >= 400 && ae.status < 500
	}
	for _, e := range []error{account.ErrBadQuery, store.ErrInvalidValue, store.ErrValueTooLong, store.ErrUnfinishedImport,
		bolt.ErrNotStore, bolt.ErrNewerSchema, bolt.ErrOldSchema, bolt.ErrDamaged, postgres.ErrNewerSchema} {
		if errors.Is(err, e) {
			return true
		}
	}
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) {
		// Class 28: invalid authorization (password, pg_hba.conf); 3D000:
		// no such database; class 42: no such table or column, no
		// privilege on it.
		return strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000" || strings.HasPrefix(pe.Code, "42")
	}
	return false
}

// auditHeader names the columns of the audit table.
var auditHeader = []string{"SEQ", "TIME", "TYPE", "IDP", "USER", "SUBJECT", "REASON", "DETAIL"}

// auditTable prints events in columns that line up with the header above
// them, page after page, also while following: widths are taken from each
// batch before it is printed, and when a batch needs wider columns than
// the header above it has, the header is printed again with the new
// widths. The last column (DETAIL) is not padded.
type auditTable struct {
	w      io.Writer
	widths []int // of every column but the last; nil before the header
}

func (t *auditTable) print(events []store.Event) error {
	rows := make([][]string, len(events))
	grew := t.widths == nil
	if grew {
		t.widths = make([]int, len(auditHeader)-1)
		for i := range t.widths {
			t.widths[i] = utf8.RuneCountInString(auditHeader[i])
		}
		for _, typ := range account.EventTypes {
			t.widths[2] = max(t.widths[2], len(typ))
		}
	}
	for i, e := range events {
		rows[i] = []string{strconv.FormatUint(e.Seq, 10), e.Time.Local().Format(time.RFC3339), termtext.Line(e.Type),
			dash(e.IdP), dash(e.UserID), dash(e.Subject), dash(e.Reason), dash(detail(e.Detail))}
		for j, w := range t.widths {
			if n := utf8.RuneCountInString(rows[i][j]); n > w {
				t.widths[j], grew = n, true
			}
		}
	}
	var b strings.Builder
	if grew {
		t.row(&b, auditHeader)
	}
	for _, r := range rows {
		t.row(&b, r)
	}
	_, err := io.WriteString(t.w, b.String())
	return err
}

func (t *auditTable) row(b *strings.Builder, cells []string) {
	for j, w := range t.widths {
		b.WriteString(cells[j])
		b.WriteString(strings.Repeat(" ", w-utf8.RuneCountInString(cells[j])+2))
	}
	b.WriteString(cells[len(cells)-1])
	b.WriteByte('\n')
}

// detail renders an event's details as sorted key=value pairs. Values
// may come from an IdP (claim names, say), so one holding a space or "="
// is quoted rather than read as more pairs.
func detail(d map[string]string) string {
	parts := make([]string, 0, len(d))
	for _, k := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, termtext.Line(k)+"="+quoteIf(d[k], " ="))
	}
	return strings.Join(parts, " ")
}
