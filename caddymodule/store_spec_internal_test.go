package caddymodule

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/store/backend"
)

// TestProvisionResolvesTheStore: Provision resolves the store a JSON
// config names to what Start opens. A bolt store without a path, written
// or not, is the documented default file (StoreConfig.Path); a path or a
// DSN placeholder is resolved; the PostgreSQL pool settings reach the spec.
func TestProvisionResolvesTheStore(t *testing.T) {
	t.Setenv("SSO_TEST_STORE_DIR", "/srv/sso")
	t.Setenv("SSO_TEST_DATABASE_URL", "postgres://caddy@db.internal:5432/sso")
	tests := []struct {
		name, store string // the app's "store" object; "" for none
		want        backend.Spec
	}{
		{"no store", "", backend.Spec{Backend: backend.Bolt, Path: DefaultStorePath()}},
		{"bolt without a path", `{"backend":"bolt"}`, backend.Spec{Backend: backend.Bolt, Path: DefaultStorePath()}},
		{"empty store", `{}`, backend.Spec{Backend: backend.Bolt, Path: DefaultStorePath()}},
		{"path placeholder", `{"path":"{env.SSO_TEST_STORE_DIR}/sso.db"}`, backend.Spec{Backend: backend.Bolt, Path: "/srv/sso/sso.db"}},
		{"postgres", `{"backend":"postgres","dsn":"{env.SSO_TEST_DATABASE_URL}","pool_size":7,"statement_timeout":"5s"}`,
			backend.Spec{Backend: backend.Postgres, DSN: "postgres://caddy@db.internal:5432/sso", MaxConns: 7, StatementTimeout: 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := `{}`
			if tt.store != "" {
				raw = `{"store":` + tt.store + `}`
			}
			a := new(App)
			if err := json.Unmarshal([]byte(raw), a); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			if err := a.Provision(ctx); err != nil {
				t.Fatalf("Provision: %v", err)
			}
			if a.store.Backend != tt.want.Backend || a.store.Path != tt.want.Path || a.store.DSN != tt.want.DSN ||
				a.store.MaxConns != tt.want.MaxConns || a.store.StatementTimeout != tt.want.StatementTimeout {
				t.Errorf("store = %+v, want %+v", a.store, tt.want)
			}
		})
	}
}
