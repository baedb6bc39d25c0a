package idpcheck

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
)

// clock records, for every answer a check's client gets from the IdP
// (discovery, JWKS, metadata by URL), its Date header and the local times
// its request left and its answer arrived: an IdP whose clock is off from
// this host's by more than sign-in tolerates fails every sign-in on the
// token's or the assertion's times (docs/troubleshooting.md, "Clock
// skew"), and its answers say so before anyone signs in.
type clock struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []dated
}

// dated is one answer's Date (and Age, for a cached one) with the local
// times around it.
type dated struct {
	date, sent, got time.Time
	age             time.Duration
}

// withClock returns a copy of client (nil: one with idp.DefaultHTTPTimeout)
// whose answers the returned clock records.
func withClock(client *http.Client) (*http.Client, *clock) {
	c := &http.Client{Timeout: idp.DefaultHTTPTimeout}
	if client != nil {
		cp := *client
		c = &cp
	}
	clk := &clock{next: c.Transport}
	if clk.next == nil {
		clk.next = http.DefaultTransport
	}
	c.Transport = clk
	return c, clk
}

func (c *clock) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if date, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		age, _ := strconv.Atoi(resp.Header.Get("Age"))
		c.mu.Lock()
		c.seen = append(c.seen, dated{date: date, sent: sent, got: time.Now(), age: time.Duration(max(age, 0)) * time.Second})
		c.mu.Unlock()
	}
	return resp, nil
}

// CloseIdleConnections passes http.Client.CloseIdleConnections on.
func (c *clock) CloseIdleConnections() {
	if t, ok := c.next.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// offset is how far the IdP's clock is ahead of this host's (negative:
// behind) by the answers seen, the least the answers allow: a Date has
// one-second resolution and was set somewhere between the request leaving
// and the answer arriving (earlier still by its Age, when a cache kept
// it), so each answer bounds the offset to an interval, and the answer
// whose interval comes closest to 0 decides. ok is false without a Date.
func (c *clock) offset() (off time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.seen {
		lo := d.date.Sub(d.got) // the IdP is at least this far ahead
		hi := d.date.Add(time.Second).Sub(d.sent)
		if d.age > 0 {
			hi += d.age + time.Second
		}
		o := time.Duration(0)
		switch {
		case lo > 0:
			o = lo
		case hi < 0:
			o = hi
		}
		if !ok || o.Abs() < off.Abs() {
			off, ok = o, true
		}
	}
	return off, ok
}

// clock judges the IdP's clock by the answers clk recorded: more than
// ahead (behind) away from this host's draws a warning with its effect on
// sign-in.
func (fs *findings) clock(clk *clock, ahead, behind time.Duration, aheadEffect, behindEffect string) {
	off, ok := clk.offset()
	switch {
	case !ok:
	case off > ahead:
		fs.add(Warn, "the IdP's clock is at least %v ahead of this host's (the Date header of its answers; %v tolerated): %s: set both clocks right (NTP)", off.Truncate(time.Second), ahead, aheadEffect)
	case -off > behind:
		fs.add(Warn, "the IdP's clock is at least %v behind this host's (the Date header of its answers; %v tolerated): %s: set both clocks right (NTP)", (-off).Truncate(time.Second), behind, behindEffect)
	default:
		fs.add(OK, "the IdP's clock agrees with this host's (the Date header of its answers)")
	}
}
