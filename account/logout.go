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

// endIdPSessionsTx ends the sessions of idp that an IdP's logout message
// names (idpSessions): those of subject, narrowed to sessionIDs when it
// names any; or, with no subject (an OIDC logout token may carry only
// "sid"), those of sessionIDs. A SAML LogoutRequest names NameID and
// SessionIndexes; an OIDC back-channel logout token names sub and sid.
// Each ended session is audited as session.logged_out with
// ReasonIdPLogout. It returns how many ended; none is not an error (the
// user may have signed out already). A named session that had ended
// already (sessionEnd: past its lifetime or idle, refused at its next
// request and waiting for the sweep) is deleted all the same, but the
// message ended nothing there: it is neither audited nor counted, as
// everywhere else in account.
func (s *Service) endIdPSessionsTx(tx store.Tx, c *Change, idp, subject string, sessionIDs []string) (int, error) {
	sessions, err := idpSessions(tx, idp, subject, sessionIDs)
	if err != nil {
		return 0, err
	}
	ended := 0
	for _, ss := range sessions {
		if err := tx.DeleteSession(ss.Hash); err != nil {
			return 0, fmt.Errorf("end IdP sessions: %w", err)
		}
		c.sessions = append(c.sessions, ss.Hash)
		if !s.live(ss) {
			continue
		}
		ev := store.Event{Time: s.now(), Type: store.EventSessionLoggedOut, IdP: idp, UserID: ss.UserID, Reason: ReasonIdPLogout}
		if err := tx.Audit(ev); err != nil {
			return 0, fmt.Errorf("audit: %w", err)
		}
		ended++
	}
	if ended > 0 {
		c.log("sessions ended by the identity provider", zap.String("idp", idp), zap.String("reason", ReasonIdPLogout),
			zap.Int("sessions_ended", ended))
	}
	return ended, nil
}

// idpSessions returns the sessions of idp that a logout message names,
// each once: with a subject, the subject's sessions, narrowed to those
// whose session ID is one of sessionIDs unless sessionIDs is empty or
// holds "" (which narrows nothing, as it always has); without one, the
// sessions with one of sessionIDs.
func idpSessions(tx store.Tx, idp, subject string, sessionIDs []string) ([]*store.Session, error) {
	ids := slices.Compact(slices.Sorted(slices.Values(sessionIDs)))
	if subject != "" {
		sessions, err := tx.SessionsBySubject(idp, subject)
		if err != nil {
			return nil, fmt.Errorf("end IdP sessions: %w", err)
		}
		if len(ids) == 0 || ids[0] == "" { // sorted: "" comes first
			return sessions, nil
		}
		return slices.DeleteFunc(sessions, func(ss *store.Session) bool {
			_, found := slices.BinarySearch(ids, ss.Logout.SessionID)
			return !found
		}), nil
	}
	if len(ids) > 0 && ids[0] == "" {
		ids = ids[1:]
	}
	if len(ids) == 0 {
		return nil, errors.New("end IdP sessions: neither a subject nor a session ID")
	}
	var sessions []*store.Session
	for _, id := range ids {
		found, err := tx.SessionsBySessionID(idp, id)
		if err != nil {
			return nil, fmt.Errorf("end IdP sessions: %w", err)
		}
		// The index may hold sessions of another session ID (as the
		// subject's holds every session): keep only this one's.
		sessions = append(sessions, slices.DeleteFunc(found, func(ss *store.Session) bool { return ss.Logout.SessionID != id })...)
	}
	return sessions, nil
}

// EndIdPSessions ends the sessions of idp that info names (its subject,
// narrowed to its session ID when set), in a transaction of its own: the
// one-ID form of endIdPSessions.
func (s *Service) EndIdPSessions(ctx context.Context, idp string, info store.LogoutInfo) (int, error) {
	return s.endIdPSessions(ctx, idp, info.Subject, []string{info.SessionID})
}

// live reports whether a stored session has not ended (sessionEnd).
func (s *Service) live(ss *store.Session) bool {
	_, ended := s.sessionEnd(ss)
	return !ended
}

// endIdPSessions is endIdPSessionsTx in a transaction of its own. Anyone
// can name a session (a front-channel logout is a GET with a sid), so a
// message that names no live session costs a read, not a commit: one
// whose sessions have all ended already is left to the sweep.
func (s *Service) endIdPSessions(ctx context.Context, idp, subject string, sessionIDs []string) (int, error) {
	var found bool
	err := s.Store.View(ctx, func(tx store.Tx) error {
		sessions, err := idpSessions(tx, idp, subject, sessionIDs)
		found = slices.ContainsFunc(sessions, s.live)
		return err
	})
	if err != nil || !found {
		return 0, err
	}
	var n int
	err = s.Update(ctx, func(tx store.Tx, c *Change) error {
		var err error
		n, err = s.endIdPSessionsTx(tx, c, idp, subject, sessionIDs)
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

// EndSessions ends the sessions of idpName the message names, for every
// session ID it names, in one transaction (EndIdPSessions). With once, the
// message is used up in that transaction: a message seen before ends
// nothing, and one whose sessions could not be ended stays unused for the
// IdP's retry.
func (l IdPLogout) EndSessions(ctx context.Context, idpName, subject string, sessionIDs []string, once *idp.SingleUse) (int, error) {
	if once == nil {
		return l.Accounts.endIdPSessions(ctx, idpName, subject, sessionIDs)
	}
	var n int
	err := l.Accounts.Update(ctx, func(tx store.Tx, c *Change) error {
		n = 0
		first, err := tx.Consume(once.Kind, once.ID, once.Until)
		if err != nil {
			return fmt.Errorf("consuming %s: %w", once.Kind, err)
		}
		if !first {
			return idp.FailLogout(once.Code, fmt.Errorf("%s %.64q used before", once.Kind, once.ID))
		}
		n, err = l.Accounts.endIdPSessionsTx(tx, c, idpName, subject, sessionIDs)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
