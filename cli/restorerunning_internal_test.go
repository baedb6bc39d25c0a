package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestRunningStoreAnswers: what restore makes of the admin endpoint's
// answer for /config/apps/sso. Only a 200 with the app's config means a
// Caddy runs the sso app (and restore, given no --store, is refused as
// writing a store that Caddy does not use); a Caddy without the app answers
// 400 with a JSON error, which must not read as an sso app with the default
// store, and `null` or a page that is not JSON are not an sso app either.
func TestRunningStoreAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // in the error; "" for none
		store  string // the store described, when there is no error
	}{
		{"a Caddy without the sso app", http.StatusBadRequest, `{"error":"invalid traversal path at: config/apps/sso"}`,
			"answers HTTP 400, not with Caddy's config", ""},
		{"an error with a JSON object", http.StatusInternalServerError, `{}`, "answers HTTP 500, not with Caddy's config", ""},
		{"no sso app", http.StatusOK, `null`, "runs no sso app", ""},
		{"not JSON", http.StatusOK, `<html>`, "answers HTTP 200, not with Caddy's config", ""},
		{"the sso app with a bolt store", http.StatusOK, `{"store":{"backend":"bolt","path":"/srv/sso.db"}}`, "", "the store bolt:/srv/sso.db"},
		{"the sso app with its default store", http.StatusOK, `{}`, "", "its default store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/config/apps/sso" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := &cobra.Command{}
			c.Flags().String("address", "", "")
			c.Flags().String("config", "", "")
			c.Flags().String("adapter", "", "")
			if err := c.Flags().Set("address", strings.TrimPrefix(srv.URL, "http://")); err != nil {
				t.Fatal(err)
			}
			_, got, err := runningStore(c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("runningStore: %v, want %q", err, tc.store)
			case tc.want == "" && !strings.Contains(got.describe, tc.store):
				t.Errorf("runningStore described %q, want %q", got.describe, tc.store)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("runningStore: %v (store %q), want an error with %q", err, got.describe, tc.want)
			}
			// With --address, restore is refused either way, but it must say
			// that no sso app answers rather than name a store it would not
			// write.
			err = refuseRunning(c, "b.jsonl")
			if tc.want != "" && (err == nil || strings.Contains(err.Error(), "a Caddy running the sso app") || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("refuseRunning: %v, want the --address refusal with %q", err, tc.want)
			}
		})
	}
}
