package adminapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestKeysEndpoints: POST /sso/keys/rotate rotates the keys only= names
// (every kind without it) and answers with the report, audited as asked
// through the admin API; POST /sso/keys/finish deletes the flow cookies'
// previous key. Other methods and unknown kinds are refused.
func TestKeysEndpoints(t *testing.T) {
	srv, db := apiServer(t)
	ctx := context.Background()
	if err := db.Update(ctx, func(tx store.Tx) error { _, err := tx.Secret(idp.FlowCookieKeySecret, 32); return err }); err != nil {
		t.Fatal(err)
	}
	cl := &adminapi.Client{Do: func(method, uri string) (*http.Response, error) {
		req, err := http.NewRequest(method, srv.URL+uri, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil && resp.StatusCode >= 400 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return nil, &adminapi.Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
		}
		return resp, err
	}}
	rep, err := cl.RotateKeys(ctx, []keys.Kind{keys.Flow, keys.UpstreamJWT})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rotated) != 2 || !rep.FlowPreviousKept || rep.Tokens != nil || rep.UpstreamJWT == nil || rep.FinishAfter.IsZero() {
		t.Fatalf("rotate report %+v", rep)
	}
	if status, body := apiGet(t, srv, http.MethodGet, adminapi.Prefix+"keys/rotate"); status != http.StatusMethodNotAllowed {
		t.Errorf("GET keys/rotate: %d %s", status, body)
	}
	if status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+"keys/rotate?only=saml"); status != http.StatusBadRequest || !strings.Contains(body, "unknown key") {
		t.Errorf("only=saml: %d %s", status, body)
	}
	if status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+"keys/finish?only=flow"); status != http.StatusBadRequest {
		t.Errorf("finish with only=: %d %s", status, body)
	}
	status, body := apiGet(t, srv, http.MethodPost, adminapi.Prefix+"keys/rotate")
	var all keys.Report
	if status != http.StatusOK || json.Unmarshal([]byte(body), &all) != nil || len(all.Rotated) != 3 || all.Tokens == nil {
		t.Fatalf("rotate of every key: %d %s", status, body)
	}
	fin, err := cl.FinishKeys(ctx)
	if err != nil || !fin.FlowPreviousDeleted {
		t.Fatalf("finish: %+v %v", fin, err)
	}

	var events []store.Event
	_ = db.View(ctx, func(tx store.Tx) (err error) {
		events, err = tx.AuditEvents(store.AuditQuery{Type: account.EventStoreKeysRotated})
		return err
	})
	var steps []string
	for _, e := range events {
		if e.Reason != account.ByAdmin || e.Detail["via"] != "admin_api" || e.Detail["remote"] == "" {
			t.Errorf("event %+v", e)
		}
		steps = append(steps, e.Detail["step"]+":"+e.Detail["keys"])
	}
	if got := strings.Join(steps, " "); got != "rotate:flow,upstream-jwt rotate:flow,tokens,upstream-jwt finish:flow" {
		t.Errorf("audited steps %q", got)
	}
}
