package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sso/caddy-sso/store/backend"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestStartLogAllowsOnlyTheSlowWriteWarn: TestDemoStartLogHasNoWarn lets
// through the store's slow-write WARN (the disk's or the load's) and
// nothing else. The allowed line is the one the store really logs, under
// the logger name Caddy gives the sso app's store ("sso.store"), so that
// a renamed message shows here rather than as the flake coming back; a
// line of another level, logger or message is still reported.
func TestStartLogAllowsOnlyTheSlowWriteWarn(t *testing.T) {
	var buf bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel)
	spec := backend.Spec{Backend: backend.Bolt, Path: "sso.db"}
	backend.SlowWrites(spec, zap.New(core).Named("sso").Named("store"))(bolt.WriteHold{Held: backend.SlowWriteThreshold, Disk: backend.SlowWriteThreshold, Pages: 3, Calls: 1})
	var real map[string]any
	if err := json.Unmarshal(buf.Bytes(), &real); err != nil {
		t.Fatalf("the store logged no slow write at the threshold: %q (%v)", buf.String(), err)
	}
	if !isSlowStoreWrite(real) {
		t.Fatalf("the store's own slow-write line is not allowed: %s", buf.String())
	}

	with := func(k, v string) map[string]any {
		e := map[string]any{}
		for key, val := range real {
			e[key] = val
		}
		e[k] = v
		return e
	}
	for name, e := range map[string]map[string]any{
		"the same message as an ERROR": with("level", "error"),
		"another logger's WARN":        with("logger", "http.handlers.sso"),
		"another WARN of the store":    with("msg", "the store file is not owned by this user"),
		"Caddy's HTTP/2 skipped WARN":  {"level": "warn", "logger": "http", "msg": "HTTP/2 skipped because it requires TLS"},
	} {
		if isSlowStoreWrite(e) {
			t.Errorf("%s is allowed in the start log: %v", name, e)
		}
	}
}
