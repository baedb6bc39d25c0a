package idp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestCheckURLPort: url.Parse takes any digits for a port; CheckURL (and
// ParseOrigin, the base_url rule) takes only a port a connection can have.
func TestCheckURLPort(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://idp.example.com":        true,
		"https://idp.example.com:1":      true,
		"https://idp.example.com:65535":  true,
		"http://127.0.0.1:8080":          true,
		"https://[::1]:8443":             true,
		"https://idp.example.com:0":      false,
		"https://idp.example.com:65536":  false,
		"https://idp.example.com:99999":  false,
		"https://idp.example.com:":       false,
		"https://[::1]:0":                false,
		"https://idp.example.com:00443":  true, // 443, as browsers read it
		"https://idp.example.com:999999": false,
	} {
		_, err := idp.CheckURL(raw)
		_, oerr := idp.ParseOrigin(raw)
		if ok != (err == nil) || ok != (oerr == nil) {
			t.Errorf("%s: CheckURL %v, ParseOrigin %v; want accepted=%v", raw, err, oerr, ok)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "port must be 1-65535")) {
			t.Errorf("%s: error %v does not say the port's range", raw, err)
		}
	}
}

// TestCheckDuration: a JSON number is nanoseconds, so a positive duration
// under a second is a forgotten unit; none is negative; 0 is unset.
func TestCheckDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                      "",
		time.Second:            "",
		90 * 24 * time.Hour:    "",
		60:                     "clock_skew 60ns must be at least 1s",
		999 * time.Millisecond: "clock_skew 999ms must be at least 1s",
		-time.Second:           "clock_skew -1s must not be negative",
	} {
		err := idp.CheckDuration("clock_skew", d)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckDuration(%v) = %v, want %q", d, err, want)
		}
	}
}
