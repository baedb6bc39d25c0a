package gateway

import (
	"io"
	"net/http"
	"strings"
)

// GuardHopByHop keeps a client from removing or adding identity headers
// through HTTP's hop-by-hop machinery, after SetIdentity set them
// (docs/security.md, "What the upstream receives"):
//
//   - Connection: a proxy deletes the headers a Connection header names
//     (RFC 9110 7.6.1; Caddy's reverse_proxy does), so
//     "Connection: X-Forwarded-User" would make the upstream see no
//     identity at all. Those tokens are removed from Connection; the rest
//     (keep-alive, Upgrade, …) stay. Refusing such requests would work as
//     well, but a proxy in front may add tokens of its own, and removing
//     ours loses nothing.
//   - trailers: reverse_proxy forwards request trailers, which some
//     upstream stacks merge into the headers. Those named like a
//     protected header (or Cookie, which could carry a session token) are
//     deleted; others, such as a Content-Digest, pass.
//
// A request with neither (nearly every request) pays two map look-ups.
func (p *HeaderPlan) GuardHopByHop(r *http.Request) {
	if lines, ok := r.Header["Connection"]; ok {
		p.guardConnection(r.Header, lines)
	}
	if r.Trailer != nil {
		p.guardTrailers(r)
	}
}

// guardConnection removes protected names from the Connection header's
// tokens. It allocates only when there is one to remove.
func (p *HeaderPlan) guardConnection(h http.Header, lines []string) {
	strip := p.names()
	found := false
	for _, line := range lines {
		for rest := line; rest != "" && !found; {
			var tok string
			tok, rest, _ = strings.Cut(rest, ",")
			found = strip.has(strings.TrimSpace(tok))
		}
	}
	if !found {
		return
	}
	var kept []string
	for _, line := range lines {
		for rest := line; rest != ""; {
			var tok string
			tok, rest, _ = strings.Cut(rest, ",")
			if tok = strings.TrimSpace(tok); tok != "" && !strip.has(tok) {
				kept = append(kept, tok)
			}
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = []string{strings.Join(kept, ", ")}
}

// guardTrailers deletes protected trailers. A request has r.Trailer only
// when its client announced trailers (Trailer header); only then does
// reverse_proxy forward any, from that same map (net/http fills it in
// when the body reaches EOF, with every trailer that arrived, announced
// or not). So the announced names are deleted now and the map is cleaned
// again at EOF, before reverse_proxy copies it.
func (p *HeaderPlan) guardTrailers(r *http.Request) {
	p.deleteTrailers(r.Trailer)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerGuard{ReadCloser: r.Body, r: r, plan: p}
	}
}

func (p *HeaderPlan) deleteTrailers(t http.Header) {
	strip := p.names()
	for k := range t {
		if strip.has(k) || strings.EqualFold(k, "Cookie") {
			delete(t, k)
		}
	}
}

// trailerGuard cleans the request's trailers when its body reaches EOF.
type trailerGuard struct {
	io.ReadCloser
	r    *http.Request
	plan *HeaderPlan
}

func (g *trailerGuard) Read(b []byte) (int, error) {
	n, err := g.ReadCloser.Read(b)
	if err == io.EOF {
		g.plan.deleteTrailers(g.r.Trailer)
	}
	return n, err
}
