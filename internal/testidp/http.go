package testidp

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// Listen listens on addr ("127.0.0.1:0" picks a port) and returns the
// base URL, http://host:port, of a server there. An empty or unspecified
// host becomes 127.0.0.1, so the URL is always one a browser can open.
func Listen(addr string) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return ln, "http://" + net.JoinHostPort(host, port), nil
}

// HTTP is a test IdP's own server, when it runs one (its Start).
type HTTP struct{ srv *http.Server }

// Serve serves h on ln, in the background, until Close.
func (s *HTTP) Serve(ln net.Listener, h http.Handler) {
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
}

// Close stops the server; it is a no-op when none was started.
func (s *HTTP) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Start is a test IdP's Start: it listens on addr (Listen), makes the
// server for the base URL there with newServer, and serves it on its HTTP
// (served) until that HTTP's Close. name begins a listen error's text.
func Start[S http.Handler](name, addr string, newServer func(base string) (S, error), served func(S) *HTTP) (S, error) {
	var none S
	ln, base, err := Listen(addr)
	if err != nil {
		return none, fmt.Errorf("%s: %w", name, err)
	}
	s, err := newServer(base)
	if err != nil {
		_ = ln.Close()
		return none, err
	}
	served(s).Serve(ln, s)
	return s, nil
}
