package testidp

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// ServeUntrustedTLS serves h over TLS on ln with httptest's own
// certificate, which no client trusts unless given it: an IdP behind an
// internal CA, as the gateway meets it on a host that lacks that CA. The
// listener comes from the caller because an IdP must know its https URL
// before its handler exists. The server stops when the test ends.
func ServeUntrustedTLS(t testing.TB, ln net.Listener, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close() //nolint:errcheck // httptest's own listener, replaced by ln
	ts.Listener = ln
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes the client refuses
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}
