package adminapi_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store/portable"
)

// TestBackupThroughCaddy: on Caddy's admin endpoint, whose handler chain
// wraps the ResponseWriter, the backup still reaches the connection's
// write deadline (so the stall guard is on), and is whole.
func TestBackupThroughCaddy(t *testing.T) {
	w := caddytest.NewOIDC(t, "").Start()
	resp, body := w.GW.Admin(http.MethodGet, adminapi.Prefix+"backup")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %.300s", resp.Status, body)
	}
	if got := resp.Trailer.Get(adminapi.BackupSizeTrailer); got != strconv.Itoa(len(body)) {
		t.Errorf("size trailer %q, received %d bytes", got, len(body))
	}
	if _, err := portable.Verify(bytes.NewReader(body)); err != nil {
		t.Errorf("the backup does not verify: %v", err)
	}
	logs := w.GW.Logs()
	if strings.Contains(logs, "without a stall timeout") {
		t.Errorf("Caddy's admin endpoint hides the connection's write deadline from the backup:\n%s", logs)
	}
	if !strings.Contains(logs, "store backed up") {
		t.Errorf("no log line says the store was backed up:\n%s", logs)
	}
}
