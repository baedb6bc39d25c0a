package account

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// What the admin API and `caddy sso` show of accounts. The types are the
// admin API's JSON, so both sides of it (caddymodule's admin.api.sso and
// the CLI's client) use one definition.

// Page sizes of the lists.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// DefaultSessionsPageSize is how many sessions a user's detail shows
	// unless asked for more.
	DefaultSessionsPageSize = 20
)

// UsersPage is one page of users; Next, when set, is the after= of the
// next page.
type UsersPage struct {
	Users []*store.User `json:"users"`
	Next  string        `json:"next,omitempty"`
}

// UserDetail is one user with what an operator needs to see about them.
// Sessions are one page of those that have not ended, newest first;
// SessionCount counts them all. A session past its lifetime or idle
// timeout, which the store keeps until the sweep, is neither (see
// SessionJudge).
type UserDetail struct {
	User         *store.User      `json:"user"`
	Groups       []store.GroupRef `json:"groups,omitempty"`
	Sessions     []SessionInfo    `json:"sessions"`
	SessionCount int              `json:"session_count"`
	// NextSessions, when set, is the after= of the next page of sessions.
	NextSessions string `json:"next_sessions,omitempty"`
}

// SessionInfo describes a session without its hash (which would let no
// one in, but is the key of every session index) and says what else the
// store holds for it, so that an operator answering a person's request
// for what is kept about them (right of access) sees all of it.
// Expires is when it ends at the latest: the stored end, or sooner when
// the lifetime has been shortened since the sign-in (SessionJudge).
// AuthTime is when the person last authenticated at the IdP, which the app
// reads as the identity token's auth_time: shown so that an operator asked
// "why was I not asked again?" sees what the app saw; zero when the IdP
// did not say. TokensStored says whether the session holds the IdP's
// tokens, sealed (the OIDC ID token, and the access and refresh tokens of
// a route that passes them); never their value, which is a credential.
// IdPSubject and IdPSession are how the IdP named the person and the
// session at sign-in (SAML NameID and SessionIndex; OIDC sub and sid),
// kept for its sign-out (store.LogoutInfo); empty when it named none.
type SessionInfo struct {
	IdP          string    `json:"idp"`
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	AuthTime     time.Time `json:"auth_time,omitzero"`
	TokensStored bool      `json:"tokens_stored"`
	IdPSubject   string    `json:"idp_subject,omitempty"`
	IdPSession   string    `json:"idp_session,omitempty"`
}

// AuditPage is one page of audit events; Next is the after= that
// continues it (the last Seq returned, or the request's after when none).
type AuditPage struct {
	Events []store.Event `json:"events"`
	Next   uint64        `json:"next"`
}

// EventTypes are the audit event types the gateway writes.
var EventTypes = []string{
	store.EventUserCreated, store.EventUserUpdated, store.EventUserDeactivated, store.EventUserActivated, store.EventUserDeleted,
	store.EventLoginSucceeded, store.EventLoginDenied, store.EventLoginFailed,
	store.EventJITConflict, store.EventJITLinked,
	store.EventSessionRevoked, store.EventSessionLoggedOut,
	store.EventGroupCreated, store.EventGroupUpdated, store.EventGroupDeleted,
	store.EventGroupsOverage,
	EventStoreBackedUp, EventStoreKeysRotated, EventStoreRestored, EventStoreMigrated,
	EventTombstoneLifted,
}

// CheckEventType refuses a type no event has, naming the ones there are:
// a filter on a misspelt type would otherwise match nothing, silently.
func CheckEventType(typ string) error {
	if typ == "" || slices.Contains(EventTypes, typ) {
		return nil
	}
	return fmt.Errorf("unknown event type %q (known: %s)", typ, strings.Join(EventTypes, ", "))
}

// MatchUser reports whether a user matches a search: query is matched,
// ignoring case, as a substring of the ID, email, names, user name and
// display name.
func MatchUser(u *store.User, query string) bool {
	if query == "" {
		return true
	}
	q := strings.ToLower(query)
	for _, f := range []string{u.ID, u.Email, u.FirstName, u.LastName, u.FirstName + " " + u.LastName, u.UserName, u.DisplayName} {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

var errPageFull = errors.New("page full")

// pageSize bounds a requested page size.
func pageSize(limit, def int) int {
	if limit <= 0 {
		return def
	}
	return min(limit, MaxPageSize)
}

// ListUsers returns the users after the given ID that match query, in ID
// order, at most limit of them.
func (s *Service) ListUsers(ctx context.Context, query, after string, limit int) (*UsersPage, error) {
	limit = pageSize(limit, DefaultPageSize)
	page := &UsersPage{Users: []*store.User{}}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		page.Users, page.Next = page.Users[:0], ""
		seen := 0
		err := tx.ForEachUser(after, func(u *store.User) error {
			if seen++; seen%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if !MatchUser(u, query) {
				return nil
			}
			if len(page.Users) == limit {
				page.Next = page.Users[limit-1].ID
				return errPageFull
			}
			page.Users = append(page.Users, withoutSCIMPassword(u))
			return nil
		})
		if errors.Is(err, errPageFull) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return page, nil
}

// User returns a user's detail with one page of their sessions, newest
// first: limit sessions after the first `after` (a position, as
// NextSessions gives it; sessions that start or end between two pages may
// shift it by as many).
func (s *Service) User(ctx context.Context, id, after string, limit int) (*UserDetail, error) {
	skip := 0
	if after != "" {
		n, err := strconv.Atoi(after)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: sessions after %q: want a position such as next_sessions gives", ErrBadQuery, after)
		}
		skip = n
	}
	limit = pageSize(limit, DefaultSessionsPageSize)
	d := new(UserDetail)
	err := s.Store.View(ctx, func(tx store.Tx) error {
		var err error
		if d.User, err = user(tx, id); err != nil {
			return err
		}
		d.User = withoutSCIMPassword(d.User)
		if d.Groups, err = tx.GroupsOfUser(id); err != nil {
			return err
		}
		sessions, err := tx.UserSessions(id)
		if err != nil {
			return err
		}
		// Only sessions that have not ended (sessionEnd): one past its
		// lifetime or idle is refused at its next request, and the store
		// keeps it only until the sweep. Expires is when the session
		// ends now, which a reload that shortened the lifetime brings
		// forward.
		live := sessions[:0]
		ends := make(map[*store.Session]time.Time, len(sessions))
		for _, ss := range sessions {
			if end, ended := s.sessionEnd(ss); !ended {
				live = append(live, ss)
				ends[ss] = end
			}
		}
		slices.SortFunc(live, func(a, b *store.Session) int {
			return cmp.Or(b.Created.Compare(a.Created), strings.Compare(a.Hash, b.Hash))
		})
		d.SessionCount = len(live)
		page := live[min(skip, len(live)):]
		if len(page) > limit {
			page = page[:limit]
			d.NextSessions = strconv.Itoa(skip + limit)
		}
		d.Sessions = make([]SessionInfo, 0, len(page))
		for _, ss := range page {
			// Only whether there are tokens: the blob is read for its
			// length and never opened.
			sealed, err := tx.SessionTokens(ss.Hash)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("tokens of a session of user %s: %w", id, err)
			}
			d.Sessions = append(d.Sessions, SessionInfo{IdP: ss.IdP, Created: ss.Created, Expires: ends[ss], LastSeen: ss.LastSeen, AuthTime: ss.AuthTime,
				TokensStored: len(sealed) > 0, IdPSubject: ss.Logout.Subject, IdPSession: ss.Logout.SessionID})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ErrBadQuery marks a query the caller got wrong (the admin API's 400).
var ErrBadQuery = errors.New("bad query")

// Audit returns the events q selects, at most MaxPageSize of them.
func (s *Service) Audit(ctx context.Context, q store.AuditQuery) (*AuditPage, error) {
	if err := CheckEventType(q.Type); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadQuery, err)
	}
	q.Limit = pageSize(q.Limit, DefaultPageSize)
	page := &AuditPage{Next: q.After}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		var err error
		page.Events, err = tx.AuditEvents(q)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit trail: %w", err)
	}
	if page.Events == nil {
		page.Events = []store.Event{}
	}
	if n := len(page.Events); n > 0 {
		page.Next = page.Events[n-1].Seq
	}
	return page, nil
}
