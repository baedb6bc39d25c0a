package signin_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestUnboundRefusalAudited: the back button after a sign-in brings the
// callback again without its flow cookie (flow_missing, not bound to a
// login of this browser), and the person is shown that reference: the
// audit trail has it, marked as bound to no login of this browser, and
// the next such event after a minute counts those its budget left out.
func TestUnboundRefusalAudited(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	r := &signin.Refusals{Store: e.db, Now: func() time.Time { return now }, UnboundAuditPerMinute: 1}
	ctx := context.Background()
	r.Record(ctx, "okta", &idp.LoginError{Code: "flow_missing"}, "192.0.2.1", "")
	r.Record(ctx, "okta", &idp.LoginError{Code: "flow_missing"}, "192.0.2.2", "") // beyond the budget
	now = now.Add(time.Minute)
	r.Record(ctx, "entra", &idp.LoginError{Code: "saml_flow_missing"}, "192.0.2.3", "")
	events := e.auditEvents(store.EventLoginFailed)
	if len(events) != 2 {
		t.Fatalf("%d login.failed events, want 2: %+v", len(events), events)
	}
	first, next := events[0], events[1]
	if first.IdP != "okta" || first.Reason != "flow_missing" || first.Detail["flow"] != signin.UnboundFlow {
		t.Errorf("the refusal shown to the person: %+v, want login.failed okta flow_missing, flow %s", first, signin.UnboundFlow)
	}
	if next.Reason != "saml_flow_missing" || next.Detail["flow"] != signin.UnboundFlow || next.Detail["not_audited_last_minute"] != "1" {
		t.Errorf("the next minute's event: %+v, want the one left out counted", next)
	}
}
