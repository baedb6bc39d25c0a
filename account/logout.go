package account

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/store"
)

// EndIdPSessionsTx ends the sessions of idp that the IdP names: those
// whose Logout.Subject is info.Subject and, when info.SessionID is set,
// whose Logout.SessionID is that too; or, with no subject (an OIDC logout
// token may carry only "sid"), those whose Logout.SessionID is
// info.SessionID. A SAML LogoutRequest names NameID and SessionIndex; an
// OIDC back-channel logout token names sub and sid. Each ended session is
// audited as session.logged_out with ReasonIdPLogout. It returns how many
// ended; none is not an error (the user may have signed out already).
func (s *Service) EndIdPSessionsTx(tx store.Tx, c *Change, idp string, info store.LogoutInfo) (int, error) {
	sessions, err := idpSessions(tx, idp, info)
	if err != nil {
		return 0, err
	}
	ended := 0
	for _, ss := range sessions {
		if err := tx.DeleteSession(ss.Hash); err != nil {
			return 0, fmt.Errorf("end IdP sessions: %w", err)
		}
		ev := store.Event{Time: s.now(), Type: store.EventSessionLoggedOut, IdP: idp, UserID: ss.UserID, Reason: ReasonIdPLogout}
		if err := tx.Audit(ev); err != nil {
			return 0, fmt.Errorf("audit: %w", err)
		}
		c.sessions = append(c.sessions, ss.Hash)
		ended++
	}
	if ended > 0 {
		c.log("sessions ended by the identity provider", zap.String("idp", idp), zap.String("reason", ReasonIdPLogout),
			zap.Int("sessions_ended", ended))
	}
	return ended, nil
}

// idpSessions returns the sessions of idp that info names.
func idpSessions(tx store.Tx, idp string, info store.LogoutInfo) ([]*store.Session, error) {
	var (
		sessions []*store.Session
		err      error
	)
	switch {
	case info.Subject != "":
		sessions, err = tx.SessionsBySubject(idp, info.Subject)
	case info.SessionID != "":
		sessions, err = tx.SessionsBySessionID(idp, info.SessionID)
	default:
		return nil, errors.New("end IdP sessions: neither a subject nor a session ID")
	}
	if err != nil {
		return nil, fmt.Errorf("end IdP sessions: %w", err)
	}
	if info.SessionID != "" {
		sessions = slices.DeleteFunc(sessions, func(ss *store.Session) bool { return ss.Logout.SessionID != info.SessionID })
	}
	return sessions, nil
}

// EndIdPSessions is EndIdPSessionsTx in a transaction of its own. Anyone
// can name a session (a front-channel logout is a GET with a sid), so
// one that names none costs a read, not a durable commit.
func (s *Service) EndIdPSessions(ctx context.Context, idp string, info store.LogoutInfo) (int, error) {
	var found bool
	err := s.Store.View(ctx, func(tx store.Tx) error {
		sessions, err := idpSessions(tx, idp, info)
		found = len(sessions) > 0
		return err
	})
	if err != nil || !found {
		return 0, err
	}
	var n int
	err = s.Update(ctx, func(tx store.Tx, c *Change) error {
		var err error
		n, err = s.EndIdPSessionsTx(tx, c, idp, info)
		return err
	})
	return n, err
}

// IdPLogout is the Service as identity providers reach it with their
// logout messages (idp.SessionEnder): SAML Single Logout and OIDC back- and
// front-channel logout end sessions with the rules every other entry
// point uses.
type IdPLogout struct{ Accounts *Service }

var _ idp.SessionEnder = IdPLogout{}

// EndSessions ends the sessions of idpName the message names
// (EndIdPSessions). With once, the message is used up in the transaction
// that ends them: a message seen before ends nothing, and one whose
// sessions could not be ended stays unused for the IdP's retry.
func (l IdPLogout) EndSessions(ctx context.Context, idpName, subject, sessionID string, once *idp.SingleUse) (int, error) {
	info := store.LogoutInfo{Subject: subject, SessionID: sessionID}
	if once == nil {
		return l.Accounts.EndIdPSessions(ctx, idpName, info)
	}
	var n int
	err := l.Accounts.Update(ctx, func(tx store.Tx, c *Change) error {
		first, err := tx.Consume(once.Kind, once.ID, once.Until)
		if err != nil {
			return fmt.Errorf("consuming %s: %w", once.Kind, err)
		}
		if !first {
			n = 0
			return idp.FailLogout(once.Code, fmt.Errorf("%s %.64q used before", once.Kind, once.ID))
		}
		n, err = l.Accounts.EndIdPSessionsTx(tx, c, idpName, info)
		return err
	})
	return n, err
}
