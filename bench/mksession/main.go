// Command mksession gets a session cookie for load tests, in one of two
// ways, and prints the session token, to be sent as the sso_session cookie.
//
// With -store it creates a user and a session directly in a bbolt store
// file (Caddy must not be running on it):
//
//	go run ./bench/mksession -store /tmp/bench/sso.db
//
// With -signin it signs in for real through a running Caddy: it starts the
// in-process OpenID provider (idp/oidc/oidctest) on -idp-listen, which the
// Caddyfile names as the IdP's issuer with -client-id and -client-secret,
// opens the protected URL as a browser would, submits the provider's login
// form and follows the redirects back through the callback. The user has
// the groups of -groups and is provisioned by the IdP's jit rules. Any
// callback on the site's origin is accepted, so the same sign-in serves
// other gateways measured beside Caddy (oauth2-proxy); with -cookie-header
// it prints every cookie the site set, as a Cookie header value, instead
// of the sso session token.
//
//	go run ./bench/mksession -signin http://127.0.0.1:18502/ -idp-listen 127.0.0.1:18509
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// The user both ways create.
const (
	userEmail   = "load@example.com"
	userSubject = "load-test"
)

func main() {
	path := flag.String("store", "", "bbolt store file to create the session in")
	idpName := flag.String("idp", "bench", "with -store: the IdP name the session belongs to")
	signin := flag.String("signin", "", "protected URL to sign in at through a running Caddy")
	idpListen := flag.String("idp-listen", "127.0.0.1:18509", "with -signin: address of the OpenID provider (the issuer is http://<address>)")
	clientID := flag.String("client-id", "bench", "with -signin: the client ID in the Caddyfile")
	clientSecret := flag.String("client-secret", "bench-secret", "with -signin: the client secret in the Caddyfile")
	groups := flag.String("groups", "bench", "the user's groups, comma-separated")
	cookieHeader := flag.Bool("cookie-header", false, "with -signin: print all the site's cookies as a Cookie header value")
	flag.Parse()
	var (
		token string
		err   error
	)
	switch {
	case *signin != "":
		token, err = signIn(*signin, *idpListen, *clientID, *clientSecret, splitList(*groups), *cookieHeader)
	case *path != "":
		token, err = createSession(*path, *idpName, splitList(*groups))
	default:
		err = errors.New("-store or -signin is required")
	}
	if err != nil {
		log.Fatalf("mksession: %v", err)
	}
	fmt.Println(token)
}

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// createSession writes a user and a session straight into the store.
func createSession(path, idpName string, groups []string) (string, error) {
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		return "", err
	}
	defer db.Close()
	ctx := context.Background()
	u := &store.User{Email: userEmail, FirstName: "Load", LastName: "Test",
		Groups: groups, Active: true, Source: store.SourceAdmin,
		Links: []store.Link{{IdP: idpName, Subject: userSubject}}}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		return "", err
	}
	token, _, err := session.New(db, session.Config{}, nil, nil).Create(ctx, u, idpName, store.LogoutInfo{})
	return token, err
}

// signIn runs one OpenID Connect sign-in through the gateway at protected
// and returns the session cookie it set (or all its cookies).
func signIn(protected, idpListen, clientID, clientSecret string, groups []string, all bool) (string, error) {
	site, err := url.Parse(protected)
	if err != nil || site.Host == "" {
		return "", fmt.Errorf("-signin %q is not an absolute URL", protected)
	}
	op, err := oidctest.Start(idpListen)
	if err != nil {
		return "", err
	}
	defer op.Close()
	op.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{site.Scheme + "://" + site.Host + "/"}, PrefixMatch: true})
	const username, password = "load", "load-pw"
	op.AddUser(username, password, map[string]any{
		"sub": userSubject, "email": userEmail, "email_verified": true,
		"given_name": "Load", "family_name": "Test", "groups": groups,
	})

	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{Jar: jar}
	// The navigation is sent (perhaps through a page of the gateway's own)
	// to the provider's authorization endpoint; stop there.
	req, err := http.NewRequest(http.MethodGet, protected, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/html")
	toProvider := *client
	toProvider.CheckRedirect = func(next *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(next.URL.String(), op.Issuer+"/") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := toProvider.Do(req)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", protected, err)
	}
	_ = resp.Body.Close()
	authorize, err := resp.Location()
	if err != nil || !strings.HasPrefix(authorize.String(), op.Issuer+oidctest.PathAuthorize) {
		return "", fmt.Errorf("opening %s: expected a redirect to %s, got %s", protected, op.Issuer, resp.Status)
	}
	// The provider's login form posts the authorization request back with
	// the credentials; then the redirects lead through Caddy's callback
	// to the page first asked for.
	form := authorize.Query()
	form.Set("username", username)
	form.Set("password", password)
	resp, err = client.PostForm(op.Issuer+oidctest.PathAuthorize, form)
	if err != nil {
		return "", fmt.Errorf("signing in: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("signing in: %s ended at %s: %s", resp.Request.URL, resp.Status, body)
	}
	var pairs []string
	for _, c := range jar.Cookies(site) {
		if all {
			pairs = append(pairs, c.Name+"="+c.Value)
		} else if c.Name == "sso_session" || c.Name == "__Host-sso_session" {
			return c.Value, nil
		}
	}
	if len(pairs) > 0 {
		return strings.Join(pairs, "; "), nil
	}
	return "", fmt.Errorf("signing in: the site set no session cookie (ended at %s)", resp.Request.URL)
}
