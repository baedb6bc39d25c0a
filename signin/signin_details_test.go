package signin_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestMissingSubjectReceivedListCapped: the login.denied event of an
// assertion without a user ID names the attributes that arrived, the
// first 20 of them and "…": an IdP that sends hundreds does not make the
// event as large.
func TestMissingSubjectReceivedListCapped(t *testing.T) {
	e := newEnv(t)
	p := e.idp(idp.ProtocolSAML, "okta")
	a := samlAssertion("many", "Lovelace", false)
	delete(a.Attributes, "uniqueUserId")
	for i := range 30 {
		a.Attributes[fmt.Sprintf("extra%02d", i)] = []string{"x"}
	}
	out, err := e.svc.SignIn(context.Background(), p, a, "")
	if err != nil || out.Denial == nil || out.Denial.Reason != provision.ReasonMissingSubject {
		t.Fatalf("got %+v %v", out, err)
	}
	evs := e.auditEvents(store.EventLoginDenied)
	if len(evs) != 1 {
		t.Fatalf("%d login.denied events, want 1", len(evs))
	}
	got := strings.Split(evs[0].Detail["received"], ",")
	if len(got) != 21 || got[20] != "…" || !slices.Equal(got[:20], out.Unmapped.Received[:20]) {
		t.Errorf("received = %q, want the first 20 of the %d names received and …", got, len(out.Unmapped.Received))
	}
}

// TestPaddedGroupsWarningNamesThree: the warning about padded group names
// names the first three of them, however many the user has: an IdP that
// pads every one of hundreds of groups does not make one line as long.
func TestPaddedGroupsWarningNamesThree(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.WarnLevel)
	e.svc.Logger = zap.New(core)
	a := oidcAssertion("padded", "Lovelace", false)
	a.Attributes["groups"] = []string{"a ", "b ", "c ", "d ", "e "}
	if out, err := e.svc.SignIn(context.Background(), e.idp("oidc", ""), a, ""); err != nil || out.Session == nil {
		t.Fatalf("sign-in: %v %+v", err, out)
	}
	got := logs.FilterMessageSnippet("invisible character at an end").All()
	if len(got) != 1 {
		t.Fatalf("%d warnings, want 1", len(got))
	}
	if g := fmt.Sprint(got[0].ContextMap()["groups"]); g != `["a " "b " "c "]` {
		t.Errorf("groups named %s, want the first three", g)
	}
}
