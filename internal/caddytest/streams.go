package caddytest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Paths of the EchoUpstream's answers that outlive a page.
const (
	// WebSocketPath switches protocols, as a WebSocket endpoint does, and
	// then echoes what it receives.
	WebSocketPath = "/.stream/ws"
	// EventStreamPath is an event stream (text/event-stream) with a tick
	// every 50 ms.
	EventStreamPath = "/.stream/events"
)

// serveStream serves the stream paths; it reports false for other paths.
func serveStream(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case WebSocketPath:
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return true
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw) // until either side closes
	case EventStreamPath:
		w.Header().Set("Content-Type", "text/event-stream")
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
				return true
			}
			_ = http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				return true
			case <-tick.C:
			}
		}
	default:
		return false
	}
	return true
}

// Stream is one stream the browser opened through a gateway, read in the
// background.
type Stream struct {
	conn  net.Conn
	lines chan string
	ended chan struct{} // closed once the gateway (or the app) ended it
}

// OpenStream opens path (WebSocketPath or EventStreamPath) of the site at
// base as a browser would, with the browser's cookies for base: a
// WebSocket handshake, or an EventSource's request. It connects to addr,
// or to base's host when addr is "". It fails the test unless the app's
// answer starts.
func (b *Browser) OpenStream(base, addr, path string) *Stream {
	b.T.Helper()
	if path == WebSocketPath {
		return b.openStream(base, addr, path,
			"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-Fetch-Mode: websocket\r\n",
			http.StatusSwitchingProtocols)
	}
	return b.openStream(base, addr, path, "Accept: text/event-stream\r\nSec-Fetch-Mode: cors\r\n", http.StatusOK)
}

// FetchEventStream opens the EventStreamPath as a script's fetch() does,
// which does not say it wants an event stream (Accept: */*); otherwise as
// OpenStream.
func (b *Browser) FetchEventStream(base, addr string) *Stream {
	b.T.Helper()
	return b.openStream(base, addr, EventStreamPath, "Accept: */*\r\nSec-Fetch-Mode: cors\r\n", http.StatusOK)
}

// openStream sends a GET of path with the browser's cookies and the
// header lines, and reads the answer in the background once its status is
// want.
func (b *Browser) openStream(base, addr, path, header string, want int) *Stream {
	t := b.T
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	if addr == "" {
		addr = u.Host
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var cookies []string
	for _, c := range b.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nCookie: " + strings.Join(cookies, "; ") + "\r\n" + header + "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s: %s, want %d", path, resp.Status, want)
	}
	s := &Stream{conn: conn, lines: make(chan string, 1000), ended: make(chan struct{})}
	var body io.Reader = br // a WebSocket's frames follow the 101 as they are
	if want != http.StatusSwitchingProtocols {
		body = resp.Body
	}
	go func() {
		defer close(s.ended)
		sc := bufio.NewScanner(body)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	return s
}

// Live fails the test unless the stream still carries the app's data
// within 5 s: the echo of a line sent (WebSocket), a new tick (event
// stream).
func (s *Stream) Live(t testing.TB, what string) {
	t.Helper()
	for len(s.lines) > 0 {
		<-s.lines
	}
	_, _ = io.WriteString(s.conn, "ping\n") // the event stream ignores it
	select {
	case <-s.lines:
	case <-s.ended:
		t.Fatalf("%s: ended, want it open", what)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no data for 5s", what)
	}
}

// EndsWithin fails the test unless the stream ends within d, and returns
// how long it took.
func (s *Stream) EndsWithin(t testing.TB, what string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-s.ended:
		return time.Since(start)
	case <-time.After(d):
		t.Fatalf("%s: still open %v later", what, d)
		return d
	}
}
