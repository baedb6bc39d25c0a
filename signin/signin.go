// Package signin completes a sign-in. Given an assertion its protocol
// adapter verified (idp/oidc, idp/saml), SignIn maps it to a profile,
// consumes its single-use IDs, applies the JIT rules, starts the session,
// ends the session the browser had before, and writes every audit event,
// all in one store transaction: a sign-in is one durable commit (shared
// with concurrent sign-ins by the store's batching), a replay can never
// yield a second session even on another instance, and a crash leaves
// either all of it or none (docs/architecture.md, "A sign-in's path").
//
// Nothing here knows HTTP or Caddy: the handler turns an Outcome into a
// response.
package signin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/logbudget"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// IdP is one identity provider's sign-in settings: how its assertions map
// to a profile, and the JIT rules for the users it signs in.
type IdP struct {
	Name   string
	Mapper *mapping.Mapper
	Rules  provision.Rules
	// KeepAccessToken keeps the access token and its expiry with the
	// session, for routes that pass it upstream; KeepRefreshToken also
	// the refresh token that renews it. A token no route passes is only a
	// liability, so by default a session keeps the ID token alone (which
	// logout needs as id_token_hint). See the README, "Tokens for the
	// upstream".
	KeepAccessToken, KeepRefreshToken bool
}

// kept is what of the tokens the IdP issued p keeps with a session.
func (p *IdP) kept(t *idp.Tokens) *session.Tokens {
	if t == nil {
		return nil
	}
	k := &session.Tokens{IDToken: t.IDToken}
	if p.KeepAccessToken {
		k.AccessToken, k.Expiry = t.AccessToken, t.Expiry
		if p.KeepRefreshToken {
			k.RefreshToken = t.RefreshToken
		}
	}
	return k
}

// Service completes sign-ins against one store and session manager.
type Service struct {
	Store    store.Store
	Sessions *session.Manager
	Logger   *zap.Logger      // nil: no logs
	Now      func() time.Time // nil: time.Now
	// Observe, when set, is told every committed sign-in's outcome, and
	// every replay's (for metrics).
	Observe func(idpName string, o *Outcome)

	// paddedGroups keeps the warning about group names with white space
	// at an end to one line per IdP a minute: every sign-in of such a
	// user would repeat it.
	paddedGroups logbudget.Budget
}

// Outcome is what one sign-in came to. Exactly one of Session, Denial and
// Replay is set.
type Outcome struct {
	// Session is the new session: its Token goes into the cookie.
	Session *session.NewSession
	// Denial is a sign-in the JIT rules (or a mapping that found no user
	// ID) refused; its audit event has been committed.
	Denial *provision.Denial
	// Unmapped is set with a Denial when attributes the mapping needs are
	// missing: it names what arrived and what was expected, for the page
	// an IdP administrator can act on.
	Unmapped *mapping.MissingError
	// Replay is set when one of the assertion's single-use IDs had been
	// consumed already: the same response or callback came twice.
	Replay *idp.LoginError
	// User is the user signed in, or the one a denial concerns (nil when
	// there is none, as for an unknown subject).
	User *store.User
	// Result is what the JIT rules decided (nil for a replay or an
	// unmapped assertion).
	Result *provision.Result
	// EndedPrevious: the session the browser came with was live, and
	// this sign-in ended it (audited). One that had ended already (signed
	// out, expired) is deleted all the same, without either.
	EndedPrevious bool
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) logger() *zap.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return zap.NewNop()
}

// SignIn completes the sign-in of a, verified by p's protocol adapter.
// previousHash is the hash (session.Hash) of the session the browser came
// with ("" for none): a sign-in always starts a new session and ends that
// one, so a token planted before sign-in is worthless after it. A denial
// or a replay is an Outcome, not an error; an error means nothing was
// written. A replay writes nothing (its transaction rolls back): the
// caller records it with Refusals.Record, as it does the refusals of the
// protocol adapter.
func (s *Service) SignIn(ctx context.Context, p *IdP, a *idp.Assertion, previousHash string) (*Outcome, error) {
	prof, err := p.Mapper.Map(a)
	var unmapped *mapping.MissingError
	if err != nil && !errors.As(err, &unmapped) {
		return nil, fmt.Errorf("signin via %s: mapping: %w", p.Name, err)
	}
	// The tokens are kept sealed with the session, apart from its record.
	fresh, err := s.Sessions.Prepare(p.Name, store.LogoutInfo{Subject: a.Logout.Subject,
		SubjectFormat: a.Logout.SubjectFormat, NameQualifier: a.Logout.NameQualifier,
		SPNameQualifier: a.Logout.SPNameQualifier, SessionID: a.Logout.SessionID}, p.kept(a.Tokens))
	if err != nil {
		return nil, fmt.Errorf("signin via %s: %w", p.Name, err)
	}
	// The IdP's bound on the session (SAML SessionNotOnOrAfter) caps the
	// configured lifetime: a session the IdP has ended must not go on here
	// for the rest of the lifetime. The cached copy Remember makes and
	// the stored record both take it from here.
	if end := a.SessionNotOnOrAfter; !end.IsZero() && end.Before(fresh.Session.Expires) {
		fresh.Session.Expires = end
	}
	// Kept with the session, for the identity JWT's auth_time: an app asks
	// how long ago the person proved who they are, not when this session
	// began (an IdP that still has one signs in without asking).
	fresh.Session.AuthTime = a.AuthTime
	now := s.now()

	var out *Outcome
	// stale is what the sign-in made stale in the session caches; told,
	// that the transaction tells the other instances as it commits.
	var stale store.Invalidation
	var told bool
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		// Update may run this more than once: start afresh each time.
		out, stale, told = &Outcome{}, store.Invalidation{}, false
		for _, su := range a.SingleUse {
			first, err := tx.Consume(su.Kind, su.ID, su.Until)
			if err != nil {
				return fmt.Errorf("consuming %s: %w", su.Kind, err)
			}
			if !first {
				// Written nowhere here: whoever replays can repeat it,
				// so the caller records it with its Refusals, whose
				// audit and log have a budget. Returned as an error,
				// the transaction rolls back: committed, even empty,
				// each replay would cost a durable commit (bbolt's
				// meta page and its fsync), as a logout message seen
				// before does not (account.IdPLogout.EndSessions).
				return &replayed{&idp.LoginError{Code: su.Code, Bound: !a.Unbound, Err: fmt.Errorf("%s already used", su.Kind)}}
			}
		}
		if unmapped != nil {
			// Without a user ID there is no user to look up or create.
			out.Denial = &provision.Denial{Reason: provision.ReasonMissingSubject, IdP: p.Name, Missing: unmapped.Missing}
			out.Unmapped = unmapped
			return tx.Audit(store.Event{Time: now, Type: store.EventLoginDenied, IdP: p.Name,
				Reason: provision.ReasonMissingSubject, Detail: map[string]string{"received": joinNames(unmapped.Received)}})
		}
		res, err := provision.Apply(tx, p.Name, p.Rules, prof, emailVerified(a, prof.Email), now)
		if err != nil {
			return err
		}
		out.Result, out.User, out.Denial = res, res.User, res.Denial
		stale = store.Invalidation{Users: changedUsers(res)}
		if res.Denial == nil {
			// The browser's previous session ends first: the per-user cap
			// (Write) must not count it, or a sign-in at the cap would end
			// another device's session besides it.
			var previous []string
			if previousHash != "" && previousHash != fresh.Session.Hash {
				// Locked with those the cap may end, in one order.
				if err := fresh.LockEnding(tx, res.User.ID, previousHash); err != nil {
					return err
				}
				found, ended, err := s.endSession(tx, previousHash, now)
				if err != nil {
					return err
				}
				out.EndedPrevious = ended
				if found {
					previous = []string{previousHash}
				}
			}
			if err := fresh.Write(tx, res.User); err != nil {
				return err
			}
			out.Session = fresh
			stale = fresh.Stale(previous, stale.Users)
		}
		// One notification, delivered with the commit, where the store
		// can: else each would be a write transaction of its own.
		told, err = s.Sessions.TellAtCommit(tx, stale)
		return err
	})
	if r := (*replayed)(nil); errors.As(err, &r) {
		// Rolled back, having written nothing: an outcome all the same.
		out, stale, told, err = &Outcome{Replay: r.login}, store.Invalidation{}, false, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signin via %s: %w", p.Name, err)
	}

	// Committed: now the cache, the logs and the metrics.
	// The users' forgets drop the new session's entry too (changedUsers).
	if out.Session != nil {
		s.Sessions.Cache(out.Session)
	}
	s.Sessions.Forget(stale, told)
	s.log(p, a, out)
	if s.Observe != nil {
		s.Observe(p.Name, out)
	}
	return out, nil
}

// replayed is the error SignIn's transaction returns for a single-use ID
// consumed before, so that it rolls back; SignIn makes it Outcome.Replay.
type replayed struct{ login *idp.LoginError }

func (r *replayed) Error() string { return "replayed: " + r.login.Error() }

// changedUsers names the users whose cached sessions a committed sign-in
// made stale. One that changed the user's groups or email: the user's other
// sessions (other devices, other instances) carry what the access rules
// match, and their streams were admitted on it. One that took a re-issued
// address from its holder (email_released): the holder's sessions still
// present the address, now another user's. Forgetting them, as a SCIM
// change does (docs/security.md, "Streams"), here and on other instances,
// checks their streams again. The new session's cache entry goes too: its
// first request reads it from the store.
func changedUsers(r *provision.Result) []string {
	if r == nil {
		return nil
	}
	var ids []string
	if r.User != nil && slices.ContainsFunc(r.Changed, func(f string) bool { return f == "groups" || f == "email" }) {
		ids = append(ids, r.User.ID)
	}
	if r.ReleasedFrom != "" {
		ids = append(ids, r.ReleasedFrom)
	}
	return ids
}

// verifiedClaim is the one attribute an OIDC assertion's EmailVerified
// vouches for: email_verified speaks of the standard "email" claim (OpenID
// Connect Core 5.1) and of no other, whatever claim `map email` reads.
const verifiedClaim = "email"

// emailVerified is the one verdict on whether the mapped email is verified,
// which every JIT rule that trusts an address reads (link_by_email, a force
// update taking an address from another user: docs/security.md): only when
// the IdP vouched and the mapped email is the address it vouched for. A
// mapped namespaced claim, a preferred_username (the entra preset's OIDC
// fallback) or any claim a user may edit is unverified, even when
// email_verified is true for the user's own address: else setting that
// claim to someone else's address would link to their account.
// Canonically equal (provision.CanonEmail, the same mailbox test the
// linking itself applies), not byte-equal: two spellings of one mailbox
// are one address verified.
func emailVerified(a *idp.Assertion, email string) bool {
	if !a.EmailVerified || email == "" {
		return false
	}
	if a.Protocol == idp.ProtocolSAML {
		// SAML vouches only by the operator's trust_email
		// (saml.Config.TrustEmail), which speaks of the attribute the
		// mapping keeps as the email, whichever it is: the mapped address.
		return true
	}
	// The value mapping reads from the claim: its first non-blank one.
	for _, v := range a.Attributes[verifiedClaim] {
		if v = strings.TrimSpace(v); v != "" {
			return provision.CanonEmail(v) == provision.CanonEmail(email)
		}
	}
	return false
}

// endSession deletes the session the browser signed in with, if it is
// still stored (found), and audits it as a logout (ended) unless it had
// ended already: signed out, past its lifetime or idle (Sessions.Ends),
// it stays stored until the sweep, no request can use it, and its end
// was audited when it came, if ever (a sign-out's is), not by this
// sign-in a second time.
func (s *Service) endSession(tx store.Tx, hash string, now time.Time) (found, ended bool, err error) {
	old, err := tx.Session(hash)
	if errors.Is(err, store.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("previous session: %w", err)
	}
	if err := tx.DeleteSession(hash); err != nil {
		return false, false, fmt.Errorf("ending previous session: %w", err)
	}
	if _, over := s.Sessions.Ends(old); over {
		return true, false, nil
	}
	return true, true, tx.Audit(store.Event{Time: now, Type: store.EventSessionLoggedOut, IdP: old.IdP, UserID: old.UserID,
		Reason: "signed_in_again"})
}

func (s *Service) log(p *IdP, a *idp.Assertion, out *Outcome) {
	log := s.logger()
	switch {
	case out.Replay != nil:
		// Refusals logs it, within its budget.
	case out.Unmapped != nil:
		log.Warn("sign-in denied", zap.String("idp", p.Name), zap.String("reason", provision.ReasonMissingSubject),
			zap.Strings("received", out.Unmapped.Received), zap.String("refused_name_id_format", out.Unmapped.NameIDFormat))
	case out.Result != nil:
		out.Result.Log(log)
		if out.Session != nil {
			// The login.succeeded event is audited; audit events are log
			// lines too (docs/security.md), which may be kept longer. The
			// user ID, never the email: logs travel further than the store.
			// ended_over_limit: the session.revoked events of
			// max_sessions_per_user, audited in the same transaction.
			log.Info("signed in", zap.String("idp", p.Name), zap.String("user_id", out.User.ID),
				zap.Bool("created", out.Result.Created), zap.Bool("updated", len(out.Result.Changed) > 0 && !out.Result.Created),
				zap.Bool("ended_previous_session", out.EndedPrevious), zap.Int("ended_over_limit", len(out.Session.Ended)))
		}
		s.warnPaddedGroups(p.Name, out.User)
	}
}

// warnPaddedGroups tells the operator about group names with white space
// or an invisible character at an end (session.PaddedGroupName). They are groups of their own, compared and passed exactly
// (docs/security.md, "Groups"): an IdP's "admins " passes no `allow group
// admins`, which, before names were kept exact, it did. Most such names are
// a typo at the IdP.
func (s *Service) warnPaddedGroups(idpName string, u *store.User) {
	if u == nil {
		return
	}
	var padded []string
	for _, g := range u.Groups {
		if session.PaddedGroupName(g) && len(padded) < 3 {
			padded = append(padded, strconv.Quote(g))
		}
	}
	if len(padded) > 0 {
		s.paddedGroups.Warn(s.logger(), idpName, s.now(), "group names with white space or an invisible character at an end are groups of their own: allow group and deny group compare them exactly",
			zap.String("idp", idpName), zap.String("user_id", u.ID), zap.Strings("groups", padded))
	}
}

func joinNames(names []string) string {
	const limit = 20 // the audit trail is not the place for a whole claim set
	if len(names) > limit {
		names = append(names[:limit:limit], "…")
	}
	return strings.Join(names, ",")
}
