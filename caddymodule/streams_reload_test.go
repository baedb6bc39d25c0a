package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestStreamsEndWhenAReloadRetiresTheirConfig: an event stream admitted
// under `allow group eng` ends when a reload to `allow group sales`
// retires that config, and its reconnect meets the new rules (403).
// Before, the old config kept checking it against its own rules, which
// still admitted it, for as long as Caddy kept the old server: without
// bound by default (docs/security.md, "Streams").
func TestStreamsEndWhenAReloadRetiresTheirConfig(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	site := func(rules string) string {
		return fmt.Sprintf("%s {\n\tsso test {\n%s\t}\n\treverse_proxy %s\n}\n", w.gw.base, rules, w.upstream.hostPort())
	}
	w.sites = site("\t\tallow group eng\n")
	w.start()
	ada := newBrowser(t)
	upstreamSaw(t, ada.signIn(w.gw.base+"/app", "ada", "ada-pw"))
	events := ada.OpenStream(w.gw.base, "", caddytest.EventStreamPath)
	events.Live(t, "event stream")

	w.sites = site("\t\tallow group sales\n")
	w.gw.reload(w.caddyfile())
	t.Logf("after the reload, the event stream ended in %v",
		events.EndsWithin(t, "event stream admitted under the old rules", 10*time.Second))
	ada.client.CloseIdleConnections()
	resp := ada.get(w.gw.base+caddytest.EventStreamPath, "Accept", "text/event-stream", "Sec-Fetch-Mode", "cors")
	readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("the event stream's reconnect after the reload: %s, want 403", resp.Status)
	}
	if !strings.Contains(w.gw.logs(), "ended the streams of a retired config") {
		t.Errorf("the ended streams were not logged:\n%s", w.gw.logs())
	}
}
