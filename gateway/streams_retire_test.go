package gateway_test

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// TestStreamsEndWhenTheirConfigRetires: a stream is checked against the
// rules of the config that admitted it, so when that config retires (a
// reload: the new one may admit fewer users) its streams end, for their
// clients to reconnect to the running config (docs/security.md,
// "Streams"); one admitted by the retired config afterwards (its server
// still finishing a connection) ends at once. Nothing about the session
// changed: without the retirement the stream would stay open.
func TestStreamsEndWhenTheirConfigRetires(t *testing.T) {
	w := newStreamWorld(t, time.Hour)
	ended := w.open(t)
	l := gateway.NewLive()
	l.Set(w.run)
	l.Started()
	core, logs := observer.New(zap.InfoLevel)
	released := false
	if err := l.Retire(time.Second, false, func() error { released = true; return nil }, zap.New(core)); err != nil || !released {
		t.Fatalf("Retire: %v, released %v", err, released)
	}
	endsWithin(t, ended, 5*time.Second)
	if got := logs.FilterMessage("ended the streams of a retired config, for their clients to reconnect").All(); len(got) != 1 || got[0].ContextMap()["streams"] != int64(1) {
		t.Errorf("want one line counting 1 stream, logged: %v", logs.All())
	}

	endsWithin(t, w.open(t), 5*time.Second)
	if n := w.logs.FilterMessage("ended a stream: the config that admitted it has retired").Len(); n != 1 {
		t.Errorf("the stream admitted after the retirement: logged %d times, want once:\n%v", n, w.logs.All())
	}
}
