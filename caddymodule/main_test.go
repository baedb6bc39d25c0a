package caddymodule_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestMain stops the PostgreSQL cluster pgtest.NewDatabase starts on first
// use (TestReloadsLeakNothing/postgres).
func TestMain(m *testing.M) { pgtest.Main(m) }
