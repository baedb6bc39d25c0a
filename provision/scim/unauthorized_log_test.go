package scim_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/session"
)

// TestUnauthorizedLineCapped: the WARN line of a request without a valid
// token quotes its method and path capped, so an unauthenticated client
// cannot write a line of 600 KB (Go's server takes a path up to its 1 MB
// header limit) with each request.
func TestUnauthorizedLineCapped(t *testing.T) {
	db := backendtest.OpenBolt(t)
	core, logs := observer.New(zapcore.DebugLevel)
	accounts := &account.Service{Store: db, Cache: session.New(db, session.Config{}, nil, nil)}
	h, err := scim.New(scim.Config{IdP: "entra", Token: entraToken, Accounts: accounts, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/scim/v2/Users/"+strings.Repeat("A", 500000), nil)
	r.Method = strings.Repeat("M", 100000)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if w.Code != 401 || len(warns) != 1 {
		t.Fatalf("status %d, %d WARN lines", w.Code, len(warns))
	}
	f := warns[0].ContextMap()
	path, method := f["path"].(string), f["method"].(string)
	if len(path) > 200 || len(method) > 20 || !strings.HasPrefix(path, "/scim/v2/Users/AAA") || !strings.HasPrefix(method, "MMM") {
		t.Errorf("WARN line quotes a path of %d bytes (%.30q…) and a method of %d, want them capped at 200 and 20", len(path), path, len(method))
	}
}
