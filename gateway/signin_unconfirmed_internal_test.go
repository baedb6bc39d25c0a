package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestSignInOutcomeUnknown: a sign-in whose commit the store sent but
// could not confirm (store.ErrOutcomeUnknown: the connection lost during
// COMMIT, the disk failing the sync after bbolt wrote its header) may have
// been saved, user, session and audit event: the page and the log say it
// may or may not have been, with a reference of its own, never "Nothing was
// changed". A store that failed before its commit still says that.
func TestSignInOutcomeUnknown(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		code      string
		page      string // in the page's message
		notPage   string
		logged    string
		notLogged string
	}{
		{"commit not confirmed",
			fmt.Errorf("signin via okta: postgres: commit: %w: conn closed", store.ErrOutcomeUnknown),
			CodeStoreOutcomeUnknown, "may or may not have been saved", "Nothing was changed", "may or may not have been saved", "nothing of it was kept"},
		{"nothing written",
			errors.New("signin via okta: bolt: commit to /x/sso.db: the disk is full; nothing of this change was written"),
			CodeStoreUnavailable, "Nothing was changed", "may or may not", "nothing of it was kept", "may or may not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			rt := &Route{Logger: zap.New(core)}
			w := httptest.NewRecorder()
			pe, ok := AsPageError(rt.signInNotSaved(w, &IdP{Name: "okta"}, tc.err))
			if !ok {
				t.Fatal("no page")
			}
			if pe.Name != PageStoreUnavailable || pe.Status != http.StatusServiceUnavailable || pe.Code != tc.code || pe.IdP != "okta" {
				t.Errorf("page %s %d code %q IdP %q; want %s 503 %q okta", pe.Name, pe.Status, pe.Code, pe.IdP, PageStoreUnavailable, tc.code)
			}
			if !strings.Contains(pe.Message, tc.page) || strings.Contains(pe.Message, tc.notPage) {
				t.Errorf("message %q; want it to say %q, not %q", pe.Message, tc.page, tc.notPage)
			}
			if w.Header().Get("Retry-After") != StoreRetryAfter {
				t.Errorf("Retry-After %q, want %s", w.Header().Get("Retry-After"), StoreRetryAfter)
			}
			entries := logs.FilterLevelExact(zapcore.ErrorLevel).All()
			if len(entries) != 1 || !strings.Contains(entries[0].Message, tc.logged) || strings.Contains(entries[0].Message, tc.notLogged) {
				t.Fatalf("ERROR lines %v; want one saying %q", entries, tc.logged)
			}
			if got := entries[0].ContextMap()["error"]; !strings.Contains(fmt.Sprint(got), "signin via okta") {
				t.Errorf("the log line's error %q does not carry the store's", got)
			}
		})
	}
}
