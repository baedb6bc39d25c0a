package gateway

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestIdentityJWTResignedWhenAuthTimeChanges: the token carries auth_time,
// which an app reads to ask for a recent sign-in (a payment, an admin
// page). When the session's authentication time moves on (the person
// signed in again at the IdP), the cached token saying the old time must
// not be handed out: the app would send them to sign in again for ever.
func TestIdentityJWTResignedWhenAuthTimeChanges(t *testing.T) {
	e := newSignerEnv(t)
	id1 := e.resolve()
	id1.AuthTime = time.Unix(e.ns.Load()/1e9, 0).Add(-time.Hour)
	t1 := e.sign(id1)
	e.m.ForgetUser(e.u.ID)
	id2 := e.resolve() // a new Identity of the same session, as a cache reload gives
	id2.AuthTime = id1.AuthTime.Add(50 * time.Minute)
	t2 := e.sign(id2)
	if t2 == t1 {
		t.Fatal("the token signed before the session's authentication time moved on is still handed out")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(t2, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		AuthTime int64 `json:"auth_time"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.AuthTime != id2.AuthTime.Unix() {
		t.Errorf("auth_time %d, want %d", claims.AuthTime, id2.AuthTime.Unix())
	}
}
