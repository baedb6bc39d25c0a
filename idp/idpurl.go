package idp

import (
	"fmt"
	"net/url"
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
