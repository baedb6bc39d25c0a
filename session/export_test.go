package session

import "github.com/caddy-sso/caddy-sso/store"

// RefreshClaimID lets the external tests hold a refresh claim as another
// instance would (refreshClaimID).
var RefreshClaimID = refreshClaimID

// StoredTokens opens the tokens stored for the session under hash in tx,
// whether or not the session has ended (Tokens refuses an ended one).
func StoredTokens(tx store.Tx, hash string) (*Tokens, error) {
	st, err := readSealed(tx, hash)
	if err != nil {
		return nil, err
	}
	return openTokens(st.key, hash, st.blob)
}

// SweepGrace lets the external tests sweep a session once its grace is over.
const SweepGrace = sweepGrace
