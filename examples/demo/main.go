// Command demo runs caddy-sso end to end on this machine, with nothing to
// set up: a local OpenID provider with demo users, Caddy with the sso
// handler in front of a small app, and that app, which shows the identity
// headers it receives.
//
//	go run ./examples/demo
//
// Then open http://localhost:8080 (OpenID Connect) or http://localhost:8081
// (SAML) and sign in as alice (password alice).
// Users are created Just-In-Time in a bbolt store under the data directory
// on their first sign-in; the app page shows how the user came to exist.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.host, "host", "localhost", "host name the browser uses for the demo sites")
	flag.IntVar(&cfg.appPort, "port", 8080, "port of the protected app (Caddy)")
	flag.IntVar(&cfg.idpPort, "idp-port", 9080, "port of the local OpenID provider")
	flag.IntVar(&cfg.samlPort, "saml-port", 8081, "port of the same app behind SAML sign-in (Caddy)")
	flag.IntVar(&cfg.samlIdPPort, "saml-idp-port", 9082, "port of the local SAML IdP")
	flag.IntVar(&cfg.upstreamPort, "upstream-port", 9081, "port of the demo app behind Caddy")
	flag.StringVar(&cfg.dataDir, "data", filepath.Join(os.TempDir(), "caddy-sso-demo"), "directory for the store and Caddy's data")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf(`
caddy-sso demo is running.

  Open   %s   (sign-in over OpenID Connect)
  or     %s   (the same app, sign-in over SAML 2.0)
  Sign in as alice / alice  (or bob / bob, or carol / carol who has no email
  address at the IdP: she sees the page that explains a missing attribute)

  The local OpenID provider is at %s, the SAML IdP at %s
  The store is %s

Press Ctrl-C to stop.
`, d.appURL, d.samlAppURL, d.idp.Issuer, d.samlIdP.MetadataURL(), d.storePath)
	<-ctx.Done()
	if err := d.close(); err != nil {
		log.Fatal(err)
	}
}
