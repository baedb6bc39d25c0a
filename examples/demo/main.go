// Command demo runs caddy-sso end to end on this machine, with nothing to
// set up: a local OpenID provider and a local SAML IdP with demo users,
// Caddy with the sso handler in front of a small app on two sites (one per
// protocol), and that app, which shows the identity headers it receives.
//
//	go run ./examples/demo
//
// Then open http://localhost:8080 (OpenID Connect) or http://127.0.0.1:8081
// (SAML) and sign in as alice / alice (or bob / bob on the SAML site).
// Users are created Just-In-Time in a bbolt store under the data directory
// on their first sign-in; the app page shows how the user came to exist.
// Caddy's admin endpoint listens on 127.0.0.1:2019, so the `caddy sso`
// commands, the admin API and /metrics work against the running demo; the
// banner lists them, and the Caddyfile it loaded is in the data directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.oidcPort, "port", 8080, "port of the app over OpenID Connect (Caddy, http://"+oidcHost+")")
	flag.IntVar(&cfg.samlPort, "saml-port", 8081, "port of the app over SAML (Caddy, http://"+samlHost+")")
	flag.IntVar(&cfg.oidcIdPPort, "idp-port", 9080, "port of the local OpenID provider (http://"+oidcIdPHost+")")
	flag.IntVar(&cfg.samlIdPPort, "saml-idp-port", 9082, "port of the local SAML IdP (http://"+samlIdPHost+")")
	flag.IntVar(&cfg.upstreamPort, "upstream-port", 9081, "port of the demo app behind Caddy")
	flag.StringVar(&cfg.admin, "admin", "127.0.0.1:2019", "address of Caddy's admin endpoint (loopback only)")
	flag.StringVar(&cfg.dataDir, "data", filepath.Join(os.TempDir(), "caddy-sso-demo"), "directory for the Caddyfile, the store, Caddy's data and log")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := start(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
	fmt.Print(d.banner())
	<-ctx.Done()
	if err := d.close(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: stopping: %v\n", err)
		os.Exit(1)
	}
}

// banner is what the demo prints once it runs: the Caddyfile, how to
// operate it, and, last (where a terminal shows it), where to go and who
// to sign in as.
func (d *demo) banner() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nThe Caddyfile the demo loaded (%s):\n\n", d.caddyfilePath)
	for _, line := range strings.Split(strings.TrimRight(d.caddyfile, "\n"), "\n") {
		fmt.Fprintf(&b, "    %s\n", line)
	}
	address := ""
	if d.cfg.admin != "127.0.0.1:2019" {
		address = " --address " + d.cfg.admin
	}
	adminHost, adminPort, _ := net.SplitHostPort(d.cfg.admin)
	admin := net.JoinHostPort(adminName(adminHost), adminPort)
	fmt.Fprintf(&b, `
Operate it from the repository, in another terminal (README, "Operate"):

    go run ./cmd/caddy sso users list%[1]s
    go run ./cmd/caddy sso audit --follow%[1]s
    curl %[2]s/sso/users
    curl -s %[2]s/metrics | grep caddy_sso
    go run ./cmd/caddy sso check --config %[3]s

The store is %[4]s (delete the directory %[5]s to start over).
Caddy's log is %[6]s.

caddy-sso demo is running.
`, address, admin, shellWord(d.caddyfilePath), d.storePath, d.cfg.dataDir, d.logPath)
	site := func(url, how, idpURL string, users []demoUser) {
		fmt.Fprintf(&b, "\n  Open %s   sign-in over %s, at %s\n", url, how, idpURL)
		for _, u := range users {
			for i, line := range wrap(u.note, 60) {
				name := ""
				if i == 0 {
					name = u.username + " / " + u.username
				}
				fmt.Fprintf(&b, "    %-15s %s\n", name, line)
			}
		}
	}
	site(d.appURL, "OpenID Connect", d.idp.Issuer, oidcUsers)
	site(d.samlAppURL, "SAML 2.0", d.samlIdP.URL, samlUsers)
	b.WriteString(`
  The two sites are on two host names, so each has its own session and its own sign-in.

Press Ctrl-C to stop.
`)
	return b.String()
}

// shellWord writes s as one word of a POSIX shell command line, for the
// commands a newcomer copies from the banner: as it is when it has no
// character the shell reads, else in single quotes, in which nothing but
// a single quote is special (it is written as quote, backslash, quote, quote).
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,:/@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// wrap breaks text into lines of at most width bytes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
