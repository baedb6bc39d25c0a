package adminapi_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/keys"
)

// TestKeysClientCutShort: a keys answer that stops before its last line
// (the connection lost, the CLI's timeout) says what the committed
// rotation or finish did already, and what to do: finish later when the
// previous tokens key is kept, run the finish again when it had begun. An
// error line is the error, and an answer with no line at all is one the
// client could not read.
func TestKeysClientCutShort(t *testing.T) {
	finishAfter := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		name, body string
		want       []string
	}{
		{"rotation, tokens key kept", `{"committed":{"rotated":["flow","tokens"],"tokens_previous_kept":true,"finish_after":"2030-01-02T03:04:05Z"}}` + "\n",
			[]string{"the keys are rotated (flow, tokens), but the answer stopped before the re-seal of the sessions' tokens ended: the answer ended before its report",
				"'caddy sso keys finish' after " + finishAfter.Local().Format(keys.TimeLayout)}},
		{"finish begun", `{"committed":{"rotated":[],"flow_previous_deleted":true,"tokens_previous_found":true}}` + "\n",
			[]string{"the previous flow-cookie-key is deleted, but the answer stopped before the re-seal", "run the same command again to finish"}},
		{"finish begun without a flow key", `{"committed":{"rotated":[],"tokens_previous_found":true}}` + "\n",
			[]string{"the finish began, but the answer stopped before the re-seal"}},
		{"flow only", `{"committed":{"rotated":["flow"],"flow_previous_kept":true}}` + "\n",
			[]string{"the keys are rotated (flow), but the answer stopped before its report"}},
		{"nothing to name", `{"committed":{"rotated":[]}}` + "\n",
			[]string{"the change is committed, but the answer stopped before its report"}},
		{"no line", "", []string{"reading the admin API's answer: the answer ended before its report"}},
		// Cut in the middle of a line: the committed rotation is still told.
		{"cut in a progress line", `{"committed":{"rotated":["tokens"],"tokens_previous_kept":true,"finish_after":"2030-01-02T03:04:05Z"}}` + "\n" + `{"progress":{"pass":1,"sca`,
			[]string{"the keys are rotated (tokens), but the answer stopped before the re-seal of the sessions' tokens ended: unexpected EOF",
				"'caddy sso keys finish' after " + finishAfter.Local().Format(keys.TimeLayout)}},
		{"finish cut in a progress line", `{"committed":{"rotated":[],"flow_previous_deleted":true,"tokens_previous_found":true}}` + "\n" + `{"progress":{"pa`,
			[]string{"the previous flow-cookie-key is deleted, but the answer stopped before the re-seal of the sessions' tokens ended: unexpected EOF",
				"run the same command again to finish"}},
		{"cut in the report", `{"committed":{"rotated":["flow"],"flow_previous_kept":true}}` + "\n" + `{"report":{"rotated":["flow"],"flow_prev`,
			[]string{"the keys are rotated (flow), but the answer stopped before its report: unexpected EOF"}},
		{"cut in the first line", `{"committed":{"rotated":["fl`, []string{"reading the admin API's answer: unexpected EOF"}},
		{"error line", `{"committed":{"rotated":["tokens"]}}` + "\n" + `{"error":"the keys were rotated, but it broke"}` + "\n",
			[]string{"the keys were rotated, but it broke"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var asked string
			cl := &adminapi.Client{Do: func(method, uri string) (*http.Response, error) {
				asked = method + " " + uri
				return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(c.body))}, nil
			}}
			rep, err := cl.FinishKeys(context.Background(), true, adminapi.KeysWatch{})
			if rep != nil || err == nil {
				t.Fatalf("report %+v, error %v", rep, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to say %q", err, w)
				}
			}
			if asked != "POST "+adminapi.Prefix+"keys/finish?now=true" {
				t.Errorf("asked %s", asked)
			}
		})
	}
}

// TestKeysClientCutShortSaysTheOperatorsTime: the time to finish at that a
// cut answer gives is in the operator's zone (keys.TimeLayout), not the
// wire's UTC.
func TestKeysClientCutShortSaysTheOperatorsTime(t *testing.T) {
	local := time.Local
	time.Local = time.FixedZone("XST", 5*3600)
	t.Cleanup(func() { time.Local = local })
	cl := &adminapi.Client{Do: func(method, uri string) (*http.Response, error) {
		body := `{"committed":{"rotated":["tokens"],"tokens_previous_kept":true,"finish_after":"2030-01-02T03:04:05Z"}}` + "\n"
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(body))}, nil
	}}
	_, err := cl.RotateKeys(context.Background(), []keys.Kind{keys.Tokens}, adminapi.KeysWatch{})
	if err == nil || !strings.Contains(err.Error(), "'caddy sso keys finish' after 2030-01-02 08:04:05 XST") {
		t.Errorf("error %v; want the finish time in the operator's zone", err)
	}
}
