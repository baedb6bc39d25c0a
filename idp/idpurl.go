package idp

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CheckURL parses an identity provider's URL (an OIDC issuer or endpoint,
// a SAML metadata URL) and enforces the rule both protocols share: what
// comes from that URL decides whose signatures are trusted, so it must be
// https. Plain http is accepted only for loopback hosts (local IdPs in
// demos and tests).
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Host == "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q must be an absolute URL without fragment or credentials", raw)
	}
	// url.Parse takes any digits for a port: one no TCP connection can
	// have would make every sign-in redirect where no browser can go.
	if port, err := strconv.Atoi(u.Port()); strings.HasSuffix(u.Host, ":") || u.Port() != "" && (err != nil || port < 1 || port > 65535) {
		return nil, fmt.Errorf("%q: the port must be 1-65535", raw)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		if IsLoopbackHost(u.Hostname()) {
			return u, nil
		}
		return nil, fmt.Errorf("%q must be https (plain http is allowed only for loopback hosts)", raw)
	}
	return nil, fmt.Errorf("%q: scheme must be https", raw)
}

// CheckDuration is the rule every configured duration shares (clock_skew,
// metadata_refresh, token_refresh_margin, the session and audit
// durations, and every Caddyfile duration; store/backend, below idp,
// holds statement_timeout to the same floor itself): not negative, and
// one above zero is at least a second. JSON reads a bare number as nanoseconds, so "clock_skew": 60 is
// a forgotten unit (60ns: no tolerance at all), never a setting anyone
// meant; the Caddyfile holds its durations to the same rule, so both
// spellings agree. Zero is unset (the setting's default, or its "none").
func CheckDuration(setting string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s %v must not be negative", setting, d)
	}
	if d > 0 && d < time.Second {
		return fmt.Errorf("%s %v must be at least 1s (in JSON, write it with a unit, such as \"30s\": a bare number is nanoseconds)", setting, d)
	}
	return nil
}

// Blank reports an empty or all-white-space value: a list setting (scopes,
// hosted_domain, default_groups) holding one would send or store nothing
// anyone meant, so the rules that load a configuration refuse it.
func Blank(v string) bool { return strings.TrimSpace(v) == "" }
