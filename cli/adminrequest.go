package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/internal/termtext"
)

// defaultAdminTimeout is how long a command waits for the admin endpoint's
// answer to begin, and, once it streams, for more of it, unless --timeout
// says otherwise. A backup may stream for minutes and is not limited as a
// whole: Caddy itself gives a backup up after a minute in which the client
// read nothing (docs/operations.md, "Backup").
const defaultAdminTimeout = 30 * time.Second

// maxErrorBody caps what is read of an error answer, as
// caddycmd.AdminAPIRequest caps it.
const maxErrorBody = 2 << 20

// notAdminBody and notAdminMessage cap what is read of a JSON answer from
// something that is not the sso admin API, and what of its message is
// quoted (notAdminError): enough for Caddy's own refusals.
const (
	notAdminBody    = 4 << 10
	notAdminMessage = 200
)

// adminClient calls the admin API of the Caddy that --address, or
// --config, names (the default address otherwise), each request bounded by
// --timeout and ended when the command's context ends.
//
// `check` has a --timeout of its own, for each request to an IdP, which
// hides the persistent one: check --running then waits as long as its
// --timeout says when given, and defaultAdminTimeout when not (not the
// IdP's shorter default: the store check answers only once it is done).
func adminClient(c *cobra.Command) (*adminapi.Client, error) {
	ep, err := commandAdminEndpoint(c)
	if err != nil {
		return nil, err
	}
	return &adminapi.Client{Do: func(method, uri string) (*http.Response, error) {
		ctx := c.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		return ep.do(ctx, method, uri)
	}}, nil
}

// commandAdminEndpoint is the admin endpoint that --address, or --config,
// names (the default address otherwise), its waits bounded by --timeout.
func commandAdminEndpoint(c *cobra.Command) (*adminEndpoint, error) {
	address, _ := c.Flags().GetString("address")
	config, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return nil, fmt.Errorf("finding the admin address: %w", err)
	}
	timeout := defaultAdminTimeout
	if f := c.Flags().Lookup("timeout"); f != nil && f.Changed {
		if timeout, err = c.Flags().GetDuration("timeout"); err != nil || timeout <= 0 {
			return nil, fmt.Errorf("--timeout %v: want a positive duration such as 30s", f.Value)
		}
	}
	return newAdminEndpoint(addr, timeout)
}

// adminEndpoint sends requests to Caddy's admin endpoint as
// caddycmd.AdminAPIRequest does (over TCP with an Origin header, or over a
// unix socket, whose address may end in "|" and permission bits), but
// through one client whose requests carry a context: a request that times
// out, or whose command is interrupted, closes its connection and leaves
// no goroutine behind (audit --follow may time out for hours).
type adminEndpoint struct {
	addr    string // as given, for messages
	origin  string // the URL's scheme and host, and the Origin header over TCP
	tcp     bool
	timeout time.Duration
	client  *http.Client
}

func newAdminEndpoint(addr string, timeout time.Duration) (*adminEndpoint, error) {
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("invalid admin address %s: %w", addr, err)
	}
	if na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("invalid admin address %s: a range of ports", addr)
	}
	e := &adminEndpoint{addr: addr, origin: "http://" + na.JoinHostPort(0), tcp: true, timeout: timeout}
	if na.IsUnixNetwork() || na.IsFdNetwork() {
		// Any host will do for the URL; 127.0.0.1 keeps it local should
		// the host ever be used. The permission bits are the server's.
		e.origin, e.tcp = "http://127.0.0.1", false
		na.Host, _, _ = strings.Cut(na.Host, "|")
	}
	network, dialAddr := na.Network, na.JoinHostPort(0)
	var dialer net.Dialer
	e.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, dialAddr)
			if w, ok := ctx.Value(watchKey{}).(*watch); ok && err == nil {
				// The dial's context has the request's values.
				conn = &watchedConn{Conn: conn, w: w}
			}
			return conn, err
		},
		// A connection per request, closed with its answer, as
		// AdminAPIRequest's (which kept it open until Caddy closed it).
		DisableKeepAlives: true,
	}}
	return e, nil
}

// adminTimeout is a request that the admin endpoint left waiting longer
// than --timeout, at some stage of it.
type adminTimeout struct {
	addr    string
	timeout time.Duration
	stage   int32
}

// The stages of a request, for adminTimeout.
const (
	stageConnecting int32 = iota
	stageWaiting          // connected, no answer yet
	stageReading          // reading the answer's body
)

func (e *adminTimeout) Error() string {
	switch e.stage {
	case stageConnecting:
		return fmt.Sprintf("Caddy's admin endpoint at %s did not take the connection within %v; is the address right, and is a firewall dropping it? --timeout raises the limit", e.addr, e.timeout)
	case stageWaiting:
		return fmt.Sprintf("Caddy's admin endpoint at %s accepted the connection but sent no answer within %v; is Caddy stuck or overloaded, or is something other than Caddy's admin endpoint listening there? --timeout raises the limit", e.addr, e.timeout)
	}
	return fmt.Sprintf("Caddy's admin endpoint at %s stopped sending its answer: nothing came for %v; is Caddy stuck or overloaded? --timeout raises the limit", e.addr, e.timeout)
}

// do sends one request. Its failures are sentences: "cannot reach", a
// timeout (adminTimeout), the API's own message and status
// (apiStatusError), or that something else answered (notAdminError).
// The wait for the connection and the answer's headers is bounded by
// e.timeout, and then each wait for more of the body (a body that keeps
// coming may take any time).
func (e *adminEndpoint) do(ctx context.Context, method, uri string) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &watch{timeout: e.timeout}
	w.timer = time.AfterFunc(e.timeout, func() {
		cancel(&adminTimeout{addr: e.addr, timeout: e.timeout, stage: w.stage.Load()})
	})
	fail := func(err error) (*http.Response, error) {
		w.timer.Stop()
		cancel(nil)
		return nil, err
	}
	traced := httptrace.WithClientTrace(context.WithValue(ctx, watchKey{}, w), &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { w.stage.Store(stageWaiting) },
	})
	req, err := http.NewRequestWithContext(traced, method, e.origin+uri, nil)
	if err != nil {
		return fail(fmt.Errorf("making request: %w", err))
	}
	if e.tcp {
		req.Header.Set("Origin", e.origin)
	}
	resp, err := e.client.Do(req) //nolint:gosec // the operator names the address
	if err != nil {
		if to := (*adminTimeout)(nil); errors.As(context.Cause(ctx), &to) {
			return fail(to)
		}
		if ctx.Err() != nil {
			return fail(context.Cause(ctx)) // the command was interrupted
		}
		return fail(fmt.Errorf("cannot reach Caddy's admin endpoint at %s (is Caddy running? for a stopped instance use --store <file>): %w", e.addr, err))
	}
	w.timer.Stop() // from now on it runs while the body is read
	w.stage.Store(stageReading)
	body := &watchedBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel}
	if resp.Header.Get(adminapi.MarkHeader) == "" {
		defer body.Close()
		// Only a JSON answer's message is worth reading (Caddy's own
		// refusals), and only a little of it: something else at the
		// address may stream for ever.
		var b []byte
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" || strings.HasSuffix(mt, "+json") {
			b, _ = io.ReadAll(io.LimitReader(body, notAdminBody))
		}
		return nil, &notAdminError{addr: e.addr, answer: statusError(resp.StatusCode, b),
			contentType: resp.Header.Get("Content-Type"), json: json.Valid(b)}
	}
	if resp.StatusCode < 400 {
		resp.Body = body
		return resp, nil
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxErrorBody))
	if err != nil {
		return nil, fmt.Errorf("HTTP %d: reading error message: %w", resp.StatusCode, err)
	}
	return nil, statusError(resp.StatusCode, b)
}

// notAdminError is an answer from something other than Caddy's admin
// endpoint with the sso module (adminapi.MarkHeader, which the module sets
// on its every answer, "not running" included): --address names a site
// (whose sso refuses the request with a 401 of its own JSON {"error"}), a
// Caddy built without caddy-sso, or another program (whose HTML the CLI
// would fail to read as JSON).
type notAdminError struct {
	addr        string
	contentType string
	answer      *apiStatusError // its status and message, for --json and audit --follow
	json        bool            // the answer was JSON: its message is worth quoting
}

// Error quotes a JSON answer's message: Caddy's admin endpoint itself
// refuses a request before the module sees it (an `admin` block's
// `origins`: "host not allowed"), and that reason is the fix.
func (e *notAdminError) Error() string {
	what := fmt.Sprintf("HTTP %d", e.answer.status)
	if mt, _, err := mime.ParseMediaType(e.contentType); err == nil {
		what += " " + termtext.Line(mt)
	}
	if msg := e.answer.msg; e.json {
		if len(msg) > notAdminMessage {
			msg = strings.ToValidUTF8(msg[:notAdminMessage], "") + "…"
		}
		what += fmt.Sprintf(": %q", msg)
	}
	return fmt.Sprintf("%s did not answer as Caddy's admin endpoint with the sso module (it answered %s); "+
		"--address is the admin address of the Caddyfile's `admin` option, default %s", e.addr, what, caddy.DefaultAdminListen)
}

func (e *notAdminError) Unwrap() error { return e.answer }

// statusError is the admin API's refusal: the message of its JSON answer
// {"error": "..."}, or the start of what it sent otherwise. It may quote
// stored values back, so it is made safe for a terminal.
func statusError(status int, body []byte) *apiStatusError {
	var v struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &v) == nil && v.Error != "" {
		msg = v.Error
	} else if msg == "" {
		msg = "the admin endpoint gave no reason"
	} else if first, _, _ := strings.Cut(msg, "\n"); len(first) > 200 {
		msg = first[:200] + "…"
	} else {
		msg = first
	}
	return &apiStatusError{status: status, msg: termtext.Line(msg)}
}

// watchKey is the context key of a request's watch, which the transport
// hands to the dial with the request's other values.
type watchKey struct{}

// watch times one request: its timer ends the request (adminTimeout)
// unless stopped in time. It runs from the start until the answer's
// headers are in, and then while the connection is read for the body. A
// read of the body (http's chunked reader) may wait for a whole chunk, so
// it is the connection's reads, each returning what has come, that are
// timed: the time between them (the caller writing out what it read)
// does not count.
type watch struct {
	timer   *time.Timer
	timeout time.Duration
	stage   atomic.Int32
}

// watchedConn is a connection of a watched request.
type watchedConn struct {
	net.Conn
	w *watch
}

func (c *watchedConn) Read(p []byte) (int, error) {
	if c.w.stage.Load() != stageReading {
		return c.Conn.Read(p) // the timer runs already
	}
	c.w.timer.Reset(c.w.timeout)
	defer c.w.timer.Stop()
	return c.Conn.Read(p)
}

// watchedBody is an answer's body: it says a read that timed out is
// one, and closing it ends the request's context.
type watchedBody struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		if to := (*adminTimeout)(nil); errors.As(context.Cause(b.ctx), &to) {
			err = to
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// apiStatusError is the admin API's answer to a request it refused: its
// message (sanitised for a terminal) and HTTP status.
type apiStatusError struct {
	status int
	msg    string
}

func (e *apiStatusError) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.msg, e.status, http.StatusText(e.status))
}
