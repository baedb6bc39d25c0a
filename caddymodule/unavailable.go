package caddymodule

import (
	"net/http"

	"go.uber.org/zap"
)

// While the store cannot be reached (a database that is away, see
// docs/cluster.md "Failover"), requests that need it get 503 with
// Retry-After, which tells browsers, scripts and load balancers alike
// that trying again shortly is the right thing to do. Sessions this
// instance has cached never get here: they keep working.
const (
	storeRetryAfter = "5" // seconds
	// codeStoreUnavailable is the reference code of the page.
	codeStoreUnavailable = "store_unavailable"
)

// storeUnavailable answers a request that the store failed: a session
// that could not be read, a sign-in or sign-out that could not be saved.
// It writes a plain page saying message when asPage (a navigation, a
// browser's return from the IdP, a sign-out), else JSON. The error is
// logged, never shown.
func (h *Handler) storeUnavailable(w http.ResponseWriter, asPage bool, message string, err error) error {
	h.logger.Error("the store failed; answering 503", zap.Error(err))
	w.Header().Set("Retry-After", storeRetryAfter)
	if !asPage {
		w.Header().Set("Cache-Control", "no-store")
		return writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily unavailable; try again shortly"})
	}
	return page{Status: http.StatusServiceUnavailable, Title: "Temporarily unavailable", Message: message,
		Code: codeStoreUnavailable}.write(w)
}
