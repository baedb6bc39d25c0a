package adminapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/adminapi"
)

// TestParseTime: --since and --until take what the CLI prints back (the
// backup time restore names, in UTC), besides RFC 3339 and durations, and
// refuse a zone abbreviation whose offset this host does not know rather
// than reading it as UTC.
func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		raw, want, err string
	}{
		{raw: ""},
		{raw: "2026-12-04T16:15:39Z", want: "2026-12-04T16:15:39Z"},
		{raw: "2026-12-04T17:15:39+01:00", want: "2026-12-04T16:15:39Z"},
		{raw: "2026-12-04 16:15:39 UTC", want: "2026-12-04T16:15:39Z"},
		{raw: "2h", want: "2026-12-04T16:00:00Z"},
		{raw: "2026-12-04 16:15:39 XYZ", err: "the zone XYZ is not this host's"},
		{raw: "2026-12-04 16:15", err: "neither an RFC 3339 time"},
		{raw: "-1h", err: "neither an RFC 3339 time"},
	} {
		got, err := adminapi.ParseTime(tc.raw, now)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTime(%q) = %v, %v; want an error with %q", tc.raw, got, err, tc.err)
			}
		case err != nil:
			t.Errorf("ParseTime(%q): %v", tc.raw, err)
		case tc.want == "" && !got.IsZero():
			t.Errorf("ParseTime(%q) = %v, want the zero time", tc.raw, got)
		case tc.want != "" && got.UTC().Format(time.RFC3339) != tc.want:
			t.Errorf("ParseTime(%q) = %v, want %s", tc.raw, got, tc.want)
		}
	}
}
