// Package clustertest holds the tests of several caddy-sso instances on one
// PostgreSQL database (docs/cluster.md): real Caddy processes built from
// cmd/caddy, a third Caddy balancing them round robin, real OpenID Connect
// and SAML sign-ins against the in-process test IdPs, and a throwaway
// PostgreSQL cluster (store/postgres/pgtest). Without PostgreSQL the tests
// skip with one line, except under CI (internal/ci), where they fail.
//
//	go test -race -count=1 -v ./internal/clustertest/
package clustertest
