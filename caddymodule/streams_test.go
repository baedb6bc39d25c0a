package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestStreamsEndWithTheirSession: a WebSocket or an event stream admitted
// through sso ends as soon as its session ends (signed out, the user
// disabled), and not before: another session's stream of the same user
// stays open until its own session ends. Without it, such a stream stays
// open for days after the person was signed out or deactivated.
func TestStreamsEndWithTheirSession(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	laptop, phone := newBrowser(t), newBrowser(t)
	for _, b := range []*browser{laptop, phone} {
		upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	}
	laptopWS := laptop.OpenStream(w.gw.base, "", caddytest.WebSocketPath)
	laptopEvents := laptop.OpenStream(w.gw.base, "", caddytest.EventStreamPath)
	// An event stream a script fetches, without asking for one: known
	// by the answer's type.
	laptopFetched := laptop.FetchEventStream(w.gw.base, "")
	phoneWS := phone.OpenStream(w.gw.base, "", caddytest.WebSocketPath)
	laptopWS.Live(t, "laptop's WebSocket")
	laptopEvents.Live(t, "laptop's event stream")
	laptopFetched.Live(t, "laptop's fetched event stream")
	phoneWS.Live(t, "phone's WebSocket")

	// Signing out on the laptop ends the laptop's streams only.
	req, _ := http.NewRequest(http.MethodPost, w.gw.base+"/.sso/logout", nil)
	req.Header.Set("Origin", w.gw.base)
	resp, err := laptop.noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	t.Logf("after the sign-out's answer, the laptop's WebSocket ended in %v, its event stream in %v, its fetched one in %v",
		laptopWS.EndsWithin(t, "laptop's WebSocket after signing out", 5*time.Second),
		laptopEvents.EndsWithin(t, "laptop's event stream after signing out", 5*time.Second),
		laptopFetched.EndsWithin(t, "laptop's fetched event stream after signing out", 5*time.Second))
	phoneWS.Live(t, "phone's WebSocket after the laptop signed out")

	// Disabling the user ends every stream of hers.
	ada := userBySubject(t, "sub-ada")
	w.gw.adminJSON(http.MethodPost, "/sso/users/"+ada.ID+"/disable", http.StatusOK, nil)
	t.Logf("after the disable's answer, the phone's WebSocket ended in %v",
		phoneWS.EndsWithin(t, "phone's WebSocket after the user was disabled", 5*time.Second))

	if n := strings.Count(w.gw.logs(), "ended a stream: its session has ended"); n != 4 {
		t.Errorf("logged %d ended streams, want 4", n)
	}
	// A new stream of the ended session is refused at the door.
	resp = phone.get(w.gw.base+caddytest.EventStreamPath, "Accept", "text/event-stream", "Sec-Fetch-Mode", "cors")
	readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("event stream after the user was disabled: %s, want 401", resp.Status)
	}
}

// TestStreamEndsAtSessionLifetime: a stream ends when its session's
// lifetime does, though nothing ended the session and no request came.
func TestStreamEndsAtSessionLifetime(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	o := caddytest.OIDC{IdP: w.idp, GW: w.gw.Gateway, IdPBlock: w.idpBlock}
	w.gw.start(w.gw.caddyfile(o.IdPConfig()+"\t\tsession {\n\t\t\tlifetime 3s\n\t\t}\n", w.sites))

	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	signedIn := time.Now()
	ws := b.OpenStream(w.gw.base, "", caddytest.WebSocketPath)
	ws.Live(t, "WebSocket")
	ws.EndsWithin(t, "WebSocket", 10*time.Second)
	// At the session's end, 3 s after the sign-in, with room for a loaded
	// machine; the periodic check would have come after 30 s.
	if d := time.Since(signedIn); d > 8*time.Second {
		t.Errorf("ended %v after the sign-in, want at the session's end (3s)", d)
	}
}

// TestWebSocketInputIsAUse: what the browser sends on a WebSocket (keys
// typed into a web terminal) keeps its session from the idle timeout, as
// requests do; once it sends nothing, the session idles out as ever.
func TestWebSocketInputIsAUse(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	o := caddytest.OIDC{IdP: w.idp, GW: w.gw.Gateway, IdPBlock: w.idpBlock}
	w.gw.start(w.gw.caddyfile(o.IdPConfig()+"\t\tsession {\n\t\t\tidle_timeout 3s\n\t\t}\n", w.sites))

	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	ws := b.OpenStream(w.gw.base, "", caddytest.WebSocketPath)
	for range 18 { // 7 s of typing, twice the idle timeout, and no request
		ws.Live(t, "WebSocket while typing")
		time.Sleep(400 * time.Millisecond)
	}
	resp := b.get(w.gw.base+"/after-typing", "Accept", "application/json")
	readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a request after 7s of typing on the WebSocket: %s, want 200 (the input was a use)", resp.Status)
	}
	time.Sleep(4 * time.Second) // nothing sent: idle
	resp = b.get(w.gw.base+"/after-idle", "Accept", "application/json")
	readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a request after 4s without input: %s, want 401 (idle)", resp.Status)
	}
}
