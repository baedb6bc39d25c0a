package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/internal/termtext"
	"github.com/caddy-sso/caddy-sso/store"
)

// followInterval is how often `audit --follow` asks for new events.
const followInterval = time.Second

func auditCommand() *cobra.Command {
	audit := &cobra.Command{
		Use:   "audit",
		Short: "Prints the audit trail, optionally following it",
		Long: `Prints the audit trail, oldest first, optionally filtered, and with
--follow keeps printing new events until interrupted.

With --json it prints JSON Lines: one event, a JSON object, per line, as
they come (also with --follow), so no events print no line. (users list
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
	af.BoolP("follow", "f", false, "Keep printing new events (polls every second) until interrupted")
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
		limit = 0
	}
	return withClient(c, true, func(cl client) error {
		out := c.OutOrStdout()
		table := &auditTable{w: out}
		printed := 0
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
				return err
			}
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
			case <-time.After(followInterval):
			}
		}
	})
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
