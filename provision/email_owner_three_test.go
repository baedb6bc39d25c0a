package provision_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestEmailOwnerFirstSpellingOfThree: with holders of two spellings
// that both come after the sent one in emailSpellings' order, and in
// FoldName order before it, the holder met is the earlier spelling's
// (m@bücher.example, position 2), not the later's (position 3).
func TestEmailOwnerFirstSpellingOfThree(t *testing.T) {
	e := newEnv(t)
	uni := e.seed(&store.User{ID: "u-unicode", Active: true, Email: "m@bücher.example", Source: store.SourceJIT})
	e.seed(&store.User{ID: "u-unicode-dot", Active: true, Email: "m@bücher.example.", Source: store.SourceJIT})
	_, ev := e.expectDenied("entra", provision.Rules{JIT: true},
		mapping.Profile{UniqueUserID: "sub-x", Email: "m@xn--bcher-kva.example", FirstName: "M", LastName: "B"}, true,
		provision.ReasonEmailConflict, store.EventJITConflict)
	if ev.UserID != uni.ID {
		t.Errorf("conflict with %s, want %s (the holder of the spelling first in emailSpellings)", ev.UserID, uni.ID)
	}
}
