package saml

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// BenchmarkACS compares Callback (the whole ACS: body cap, DTD refusal, flow
// cookie, crewjam's verification, clock-skew checks, conversion; the
// assertion ID is consumed later, by the sign-in transaction) with crewjam's ServiceProvider.ParseResponse alone, on the
// same pre-generated SP-initiated responses, each with a fresh assertion ID
// and its own flow cookie. The clocks are frozen so that the pool stays
// valid however long the benchmark runs.
//
//	go test -run '^$' -bench BenchmarkACS -benchmem ./idp/saml/
func BenchmarkACS(b *testing.B) {
	for _, variant := range []struct {
		name    string
		encrypt bool
	}{{"signed", false}, {"signed+encrypted", true}} {
		b.Run(variant.name, func(b *testing.B) {
			frozen := time.Now()
			h := newHarness(b, func(c *Config) { c.Now = func() time.Time { return frozen } })
			h.idp.SetClock(func() time.Time { return frozen })
			h.flows.Now = func() time.Time { return frozen }
			type sample struct {
				pend pending
				form url.Values
			}
			pool := make([]sample, 64)
			for i := range pool {
				pend := h.begin(b)
				spec := h.spec(pend)
				if variant.encrypt {
					spec.EncryptTo = testKeys()[0].Certificate
				}
				pool[i] = sample{pend: pend, form: h.forge(b, spec, pend.relayState, nil)}
			}
			bodies := make([]string, len(pool))
			for i, s := range pool {
				bodies[i] = s.form.Encode()
			}
			request := func(i int) *http.Request {
				r := httptest.NewRequest(http.MethodPost, h.acs(), strings.NewReader(bodies[i]))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for _, c := range pool[i].pend.cookies {
					r.AddCookie(c)
				}
				return r
			}
			e, err := h.p.siteEndpoints(h.base)
			if err != nil {
				b.Fatal(err)
			}
			md, err := h.p.metadata(context.Background())
			if err != nil {
				b.Fatal(err)
			}

			b.Run("ParseResponse", func(b *testing.B) {
				sp := h.p.serviceProvider(e, md.ed, frozen)
				sp.ReplayCache = nil
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					r := request(i % len(pool))
					if err := r.ParseForm(); err != nil {
						b.Fatal(err)
					}
					if _, err := sp.ParseResponse(r, []string{pool[i%len(pool)].pend.requestID}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("Callback", func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, _, err := h.p.Callback(httptest.NewRecorder(), request(i%len(pool)), h.base); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkAssertionCount is the count of a response's assertions that
// the ACS makes before crewjam parses it, on a signed response of one
// assertion (the byte scan of the common case; compare with
// BenchmarkACS/signed/ParseResponse):
//
//	go test -run '^$' -bench 'AssertionCount|ACS/signed/ParseResponse' -benchmem ./idp/saml/
func BenchmarkAssertionCount(b *testing.B) {
	frozen := time.Now()
	h := newHarness(b, func(c *Config) { c.Now = func() time.Time { return frozen } })
	h.idp.SetClock(func() time.Time { return frozen })
	h.flows.Now = func() time.Time { return frozen }
	pend := h.begin(b)
	data, err := base64.StdEncoding.DecodeString(h.forge(b, h.spec(pend), pend.relayState, nil).Get("SAMLResponse"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if assertionCount(data) != 1 {
			b.Fatal("want one assertion")
		}
	}
}
