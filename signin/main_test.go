package signin_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// The PostgreSQL tests share pgtest's throwaway cluster, stopped here.
func TestMain(m *testing.M) { pgtest.Main(m) }
