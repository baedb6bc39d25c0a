package caddymodule_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/store"
)

// HTTP/3 0-RTT end to end: requests sent in real TLS early data to a real
// Caddy, as a replay sends them (gateway/earlydata_test.go and
// provision/scim/earlydata_test.go fake the TLS state; this proves that
// quic-go hands the handler a request whose handshake is incomplete).

// zeroRTTWorld is a gateway on an https site (h1, h2, h3) with a
// certificate the test made (tls internal would issue one in the
// background, which races inside Caddy under -race), with sso_scim under
// /scim/v2/ and sso in front of the echoing upstream everywhere else.
type zeroRTTWorld struct {
	*caddytest.OIDC
	https string       // https://127.0.0.1:port
	addr  *net.UDPAddr // its HTTP/3 address
	roots *x509.CertPool
}

func newZeroRTTWorld(t *testing.T) *zeroRTTWorld {
	t.Helper()
	t.Setenv("CADDY_SSO_TEST_SCIM_TEST", scimTokenTest)
	o := caddytest.NewOIDC(t, "\t\t\tjit\n\t\t\tscim\n")
	port := testport.For(t)
	w := &zeroRTTWorld{OIDC: o, https: fmt.Sprintf("https://127.0.0.1:%d", port),
		addr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
	o.IdP.RegisterClient(oidctest.Client{ID: caddytest.ClientID, Secret: caddytest.ClientSecret,
		RedirectURIs:         []string{w.https + "/.sso/oidc/test/callback"},
		BackChannelLogoutURI: w.https + "/.sso/oidc/test/backchannel-logout"})
	certFile, keyFile, cert := caddytest.SelfSignedCert(t, "127.0.0.1")
	w.roots = x509.NewCertPool()
	w.roots.AddCert(cert)
	// The plain site is the port the harness waits on.
	o.Sites = fmt.Sprintf(`%s {
	respond 404
}

%s {
	tls %s %s
	handle /scim/v2/* {
		sso_scim {
			idp test {env.CADDY_SSO_TEST_SCIM_TEST}
		}
	}
	handle {
		sso test
		reverse_proxy %s
	}
}
`, o.GW.Base, w.https, certFile, keyFile, o.Upstream.HostPort())
	o.Start()
	return w
}

func (w *zeroRTTWorld) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: w.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
}

// signIn signs Ada in on the https site over HTTP/1.1 and returns her
// browser and session token.
func (w *zeroRTTWorld) signIn(t *testing.T) (*browser, string) {
	t.Helper()
	b := newBrowser(t)
	b.client.Transport = &http.Transport{TLSClientConfig: w.tlsConfig()}
	upstreamSaw(t, b.signIn(w.https+"/", "ada", "ada-pw"))
	tok := b.cookieValue(w.https, "__Host-sso_session")
	if tok == "" {
		t.Fatal("no __Host-sso_session after the sign-in")
	}
	return b, tok
}

// ticket returns a client config for HTTP/3 whose session cache holds a
// ticket from one completed connection, so the next connection can send
// early data.
func (w *zeroRTTWorld) ticket(t *testing.T) *tls.Config {
	t.Helper()
	cache := &ticketCache{ClientSessionCache: tls.NewLRUClientSessionCache(4), got: make(chan struct{})}
	conf := w.tlsConfig()
	conf.NextProtos = []string{http3.NextProtoH3}
	conf.ClientSessionCache = cache
	tr := &http3.Transport{TLSClientConfig: conf}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.https+"/.sso/whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("HTTP/3 to %s: %v", w.https, err)
	}
	readBody(t, resp)
	// The server sends its ticket after the handshake, not with the answer.
	select {
	case <-cache.got:
	case <-ctx.Done():
		t.Fatal("no session ticket from the server")
	}
	return conf
}

// ticketCache says when the first ticket has arrived.
type ticketCache struct {
	tls.ClientSessionCache
	once sync.Once
	got  chan struct{}
}

func (c *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	c.ClientSessionCache.Put(key, cs)
	if cs != nil {
		c.once.Do(func() { close(c.got) })
	}
}

// replay sends req, with body, in the early data of a fresh connection
// resumed with conf's ticket, as an attacker replaying captured packets
// does: the client's Finished never reaches the server, so the handshake
// never completes. A browser's own early request may be read after its
// handshake completed, and is then served as any other; a replay never
// is. It returns the answer and its body.
func (w *zeroRTTWorld) replay(t *testing.T, conf *tls.Config, req *http.Request, body string) (*http.Response, string) {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn := &earlyOnlyConn{PacketConn: udp, wrote: make(chan struct{}, 1), release: make(chan struct{})}
	tr := &quic.Transport{Conn: conn}
	defer tr.Close()
	defer conn.open() // before the close, which waits for a blocked read
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	qc, err := tr.DialEarly(ctx, w.addr, conf, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	str, err := (&http3.Transport{}).NewClientConn(qc).OpenRequestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := str.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	if body != "" {
		// SendRequestHeader sends content-length from a request without
		// a body to read; the body goes in a DATA frame after it.
		req.Body, req.ContentLength = http.NoBody, int64(len(body))
	}
	if err := str.SendRequestHeader(req); err != nil {
		t.Fatal(err)
	}
	if body != "" {
		if _, err := str.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := str.Close(); err != nil {
		t.Fatal(err)
	}
	conn.sentAll()
	resp, err := str.ReadResponse()
	if err != nil {
		t.Fatalf("%s %s in early data: %v", req.Method, req.URL.Path, err)
	}
	answer, err := io.ReadAll(io.LimitReader(str, 1<<16))
	if err != nil {
		t.Fatalf("%s %s in early data: reading the answer: %v", req.Method, req.URL.Path, err)
	}
	if !qc.ConnectionState().Used0RTT {
		t.Fatalf("%s %s: the server took no early data, the test proves nothing", req.Method, req.URL.Path)
	}
	return resp, string(answer)
}

// earlyOnlyConn passes to the server only the client's Initial packets
// (its ClientHello) and 0-RTT packets, never its Handshake packets (its
// Finished) or 1-RTT ones, so the server's handshake never completes, as
// for a replay of captured packets. It reads nothing from the server until
// sentAll: once the client has the server's Finished it sends in 1-RTT, so
// the whole request must have left in 0-RTT before.
type earlyOnlyConn struct {
	net.PacketConn
	wrote   chan struct{} // a 0-RTT packet left
	release chan struct{} // closed by open
	once    sync.Once
}

// sentAll waits until the client's 0-RTT packets have stopped, then lets
// the server's answer in.
func (c *earlyOnlyConn) sentAll() {
	for {
		select {
		case <-c.wrote:
		case <-time.After(50 * time.Millisecond):
			c.open()
			return
		}
	}
}

func (c *earlyOnlyConn) open() { c.once.Do(func() { close(c.release) }) }

// SetReadBuffer keeps quic-go from warning that it cannot size the
// receive buffer: a few packets on loopback need no more than the default.
func (*earlyOnlyConn) SetReadBuffer(int) error { return nil }

func (c *earlyOnlyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	<-c.release
	return c.PacketConn.ReadFrom(b)
}

func (c *earlyOnlyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var keep []byte
	early := false
	for rest := b; len(rest) > 0; {
		if rest[0]&0x80 == 0 { // a short header (1-RTT) runs to the datagram's end
			break
		}
		typ, end := longHeaderPacket(rest)
		switch typ {
		case 0x0: // Initial
			keep = append(keep, rest[:end]...)
		case 0x1: // 0-RTT
			keep = append(keep, rest[:end]...)
			early = true
		}
		rest = rest[end:]
	}
	if early {
		select {
		case c.wrote <- struct{}{}:
		default:
		}
	}
	if len(keep) > 0 {
		if _, err := c.PacketConn.WriteTo(keep, addr); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// longHeaderPacket returns the type of the QUIC v1 long-header packet at
// the start of b (RFC 9000 17.2) and where it ends (several may share a
// datagram).
func longHeaderPacket(b []byte) (typ byte, end int) {
	typ = (b[0] >> 4) & 0x3
	i := 5 // first byte, version
	if i < len(b) {
		i += 1 + int(b[i]) // destination connection ID
	}
	if i < len(b) {
		i += 1 + int(b[i]) // source connection ID
	}
	if typ == 0x0 && i < len(b) { // Initial: token
		n, l := quicVarint(b[i:])
		i += l + int(n)
	}
	if i >= len(b) {
		return typ, len(b)
	}
	n, l := quicVarint(b[i:]) // length of the rest
	return typ, min(i+l+int(n), len(b))
}

// quicVarint decodes a QUIC variable-length integer (RFC 9000 16).
func quicVarint(b []byte) (v uint64, n int) {
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, len(b)
	}
	v = uint64(b[0] & 0x3f)
	for _, x := range b[1:n] {
		v = v<<8 | uint64(x)
	}
	return v, n
}

// TestZeroRTTReplayRefusedAtEndpoints: in real HTTP/3 early data whose
// handshake never completes (a replay), the gateway's POST endpoints
// (sign-out, OIDC back-channel logout with a valid logout token, OIDC
// callback) and an sso_scim PATCH active=false each answer 425 Too Early
// and change nothing: the session still works, the user is still active,
// no session was logged out, each checked after its request. A GET of a protected page in the same early
// data reaches the app with the identity headers and Early-Data: 1.
func TestZeroRTTReplayRefusedAtEndpoints(t *testing.T) {
	w := newZeroRTTWorld(t)
	b, tok := w.signIn(t)
	ada := userBySubject(t, "sub-ada")
	conf := w.ticket(t)
	cookie := "__Host-sso_session=" + tok

	newReq := func(method, path string, header ...string) *http.Request {
		req, err := http.NewRequest(method, w.https+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		return req
	}

	t.Run("GET page", func(t *testing.T) {
		resp, body := w.replay(t, conf, newReq(http.MethodGet, "/page?x=1", "Cookie", cookie, "Accept", "application/json"), "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET in early data: %s %s, want the app's 200", resp.Status, body)
		}
		var saw echoed
		if err := json.Unmarshal([]byte(body), &saw); err != nil {
			t.Fatalf("not the app's answer: %v: %s", err, body)
		}
		if saw.Path != "/page?x=1" || saw.header("X-Forwarded-User") != ada.ID || saw.header("Early-Data") != "1" {
			t.Errorf("the app got %s with X-Forwarded-User %q, Early-Data %q; want /page?x=1, %q, 1",
				saw.Path, saw.header("X-Forwarded-User"), saw.header("Early-Data"), ada.ID)
		}
	})

	logoutToken := func() string {
		lt, err := w.IdP.SignToken(caddytest.ClientID, w.IdP.NewLogoutToken(caddytest.ClientID, "ada", w.IdP.SessionID("ada")))
		if err != nil {
			t.Fatal(err)
		}
		return url.Values{"logout_token": {lt}}.Encode()
	}
	signedIn := func(t *testing.T) {
		t.Helper()
		resp := b.get(w.https+"/after", "Accept", "application/json")
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
			t.Errorf("the session no longer works: %s %s", resp.Status, body)
		}
	}
	active := func(t *testing.T) {
		t.Helper()
		if !userBySubject(t, "sub-ada").Active {
			t.Error("the user was deactivated")
		}
	}
	// The sign-out last: were it taken, it would end the session the
	// others check.
	for _, c := range []struct {
		name, method, path string
		header             []string
		body               string
		unchanged          func(*testing.T)
	}{
		{"back-channel logout", http.MethodPost, "/.sso/oidc/test/backchannel-logout",
			[]string{"Content-Type", "application/x-www-form-urlencoded"}, logoutToken(), signedIn},
		{"OIDC callback", http.MethodPost, "/.sso/oidc/test/callback",
			[]string{"Cookie", cookie, "Content-Type", "application/x-www-form-urlencoded"}, "code=x&state=y", signedIn},
		{"SCIM deactivation", http.MethodPatch, "/scim/v2/Users/" + ada.ID,
			[]string{"Authorization", "Bearer " + scimTokenTest, "Content-Type", "application/scim+json"},
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`,
			active},
		{"sign-out", http.MethodPost, "/.sso/logout",
			[]string{"Cookie", cookie, "Origin", w.https, "Content-Type", "application/x-www-form-urlencoded"}, "", signedIn},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := w.replay(t, conf, newReq(c.method, c.path, c.header...), c.body)
			if resp.StatusCode != http.StatusTooEarly {
				t.Errorf("%s %s in early data: %s %.200s, want 425 Too Early", c.method, c.path, resp.Status, strings.TrimSpace(body))
			}
			c.unchanged(t)
		})
	}
	if got := auditReasons(t, store.EventSessionLoggedOut); len(got) != 0 {
		t.Errorf("sessions logged out by requests in early data: %v", got)
	}
	if got := auditReasons(t, store.EventUserDeactivated); len(got) != 0 {
		t.Errorf("user.deactivated events after a SCIM write in early data: %v", got)
	}
}
