package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/websocket"

	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// streamsPage is an app page that keeps a WebSocket and an EventSource
// open, as a chat or a dashboard does, and records what becomes of them.
const streamsPage = `<!doctype html><title>live</title><p id=s>loading</p><script>
window.live = {ws: "connecting", es: -1, echoed: ""};
const ws = new WebSocket("ws://" + location.host + "/ws");
ws.onopen = () => { live.ws = "open"; ws.send("ping"); };
ws.onmessage = (m) => { live.echoed = m.data; };
ws.onclose = (e) => { live.ws = "closed " + e.code; };
const es = new EventSource("/events");
setInterval(() => { live.es = es.readyState; }, 50);
</script>`

// streamingApp serves streamsPage, a real WebSocket that echoes (/ws) and
// an event stream (/events).
func streamingApp(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, streamsPage)
	})
	mux.Handle("/ws", websocket.Handler(func(c *websocket.Conn) { _, _ = io.Copy(c, c) }))
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
				return
			}
			_ = http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestBrowserStreamsEndWithTheSession: in Chromium, a page's WebSocket and
// EventSource are open while the person is signed in; when the session
// ends (the user disabled), the WebSocket closes (code 1006) and the
// EventSource, whose reconnect is refused, gives up (readyState CLOSED),
// as docs/security.md, "Streams", says.
func TestBrowserStreamsEndWithTheSession(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, streamingApp(t))
	w.start()
	ctx := newChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/page"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	// waitFor polls the page's record of its streams until ok holds.
	waitFor := func(what string, ok func(ws string, es int, echoed string) bool) {
		t.Helper()
		var ws, echoed string
		es := -1
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			v, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`window.live || null`))
			if err != nil || v == nil {
				continue // still signing in
			}
			n, _ := v["es"].(float64)
			ws, es, echoed = fmt.Sprint(v["ws"]), int(n), fmt.Sprint(v["echoed"])
			if ok(ws, es, echoed) {
				return
			}
		}
		t.Fatalf("%s: WebSocket %q (echoed %q), EventSource readyState %d", what, ws, echoed, es)
	}
	waitFor("signed in", func(ws string, es int, echoed string) bool { return ws == "open" && echoed == "ping" && es == 1 })

	ada := userBySubject(t, "sub-ada")
	w.gw.adminJSON(http.MethodPost, "/sso/users/"+ada.ID+"/disable", http.StatusOK, nil)
	waitFor("after the user was disabled", func(ws string, es int, _ string) bool { return ws == "closed 1006" && es == 2 })
}
