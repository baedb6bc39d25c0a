package saml

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// flakyStore is a real store whose next Update can be made to fail after
// its work is done, so that the transaction rolls back as a failed commit
// would. It counts the Updates that committed.
type flakyStore struct {
	store.Store
	mu       sync.Mutex
	failNext error
	commits  int
}

func (f *flakyStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	f.mu.Lock()
	fail := f.failNext
	f.failNext = nil
	f.mu.Unlock()
	err := f.Store.Update(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return fail
	})
	if err == nil {
		f.mu.Lock()
		f.commits++
		f.mu.Unlock()
	}
	return err
}

func (f *flakyStore) failOnce(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

func (f *flakyStore) committed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commits
}

// storeSLO is a harness whose Provider ends sessions as the gateway does:
// account.IdPLogout over a real bolt store (behind flakyStore).
type storeSLO struct {
	*harness
	db       *flakyStore
	sessions *session.Manager
	user     *store.User
}

func newStoreSLO(t *testing.T) *storeSLO {
	t.Helper()
	h := newHarness(t)
	db := backendtest.OpenBolt(t)
	s := &storeSLO{harness: h, db: &flakyStore{Store: db}, sessions: session.New(db, session.Config{}, nil, nil)}
	s.user = &store.User{Email: "ada@example.com", Active: true}
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(s.user) }); err != nil {
		t.Fatal(err)
	}
	h.p.rt.Sessions = account.IdPLogout{Accounts: &account.Service{Store: s.db, Cache: s.sessions}}
	return s
}

// signIn makes a session of the IdP "test" for the NameID and
// SessionIndex, as a sign-in would.
func (s *storeSLO) signIn(t *testing.T, nameID, sessionIndex string) string {
	t.Helper()
	token, _, err := s.sessions.Create(context.Background(), s.user, "test", store.LogoutInfo{Subject: nameID, SessionID: sessionIndex})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func (s *storeSLO) signedIn(t *testing.T, token string) bool {
	t.Helper()
	_, err := s.sessions.Resolve(context.Background(), token)
	if err != nil && !errors.Is(err, session.ErrNoSession) {
		t.Fatal(err)
	}
	return err == nil
}

// send delivers the IdP's LogoutRequest (the URL the IdP redirects the
// browser to) to the slo endpoint, as the gateway does.
func (s *storeSLO) send(u string) (*httptest.ResponseRecorder, error) {
	rec := httptest.NewRecorder()
	err := s.p.ServeEndpoint(rec, httptest.NewRequest(http.MethodGet, u, nil), s.base, SLOEndpoint)
	return rec, err
}

// logoutStatus is the status of the LogoutResponse rec redirects to.
func logoutStatus(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || loc.Query().Get("SAMLResponse") == "" {
		t.Fatalf("no LogoutResponse: %d %v", rec.Code, rec.Header())
	}
	var lr saml.LogoutResponse
	if err := xml.Unmarshal(decodeRedirect(t, loc.Query().Get("SAMLResponse")), &lr); err != nil {
		t.Fatal(err)
	}
	return lr.Status.StatusCode.Value
}

// TestSLORetryAfterFailedLogout: a LogoutRequest whose sessions could not
// be ended (the store failed) is answered with status Responder and is not
// used up, so the IdP's retry of the same request ends them; once it has,
// the request is refused as a replay and ends nothing, not even sessions
// signed in since. The request ID is used up in the transaction that ends
// the sessions (account.IdPLogout), not when crewjam verifies it.
func TestSLORetryAfterFailedLogout(t *testing.T) {
	s := newStoreSLO(t)
	ada := s.signIn(t, "ada", "idx-1")
	u := s.logoutRequestURL(t, samlLogoutSpec(s.harness, "ada"), "rs")

	s.db.failOnce(errors.New("store down"))
	rec, err := s.send(u)
	if err != nil {
		t.Fatalf("a failed logout is answered to the IdP, not refused: %v", err)
	}
	if got := logoutStatus(t, rec); got != saml.StatusResponder {
		t.Fatalf("failed logout answered %q, want %q", got, saml.StatusResponder)
	}
	if !s.signedIn(t, ada) {
		t.Fatal("the failed logout ended the session")
	}

	rec, err = s.send(u)
	if err != nil {
		t.Fatalf("the IdP's retry of a failed logout was refused: %v", err)
	}
	if got := logoutStatus(t, rec); got != saml.StatusSuccess {
		t.Fatalf("retry answered %q, want %q", got, saml.StatusSuccess)
	}
	if s.signedIn(t, ada) {
		t.Fatal("the retry left the session signed in")
	}

	again := s.signIn(t, "ada", "idx-1")
	rec, err = s.send(u)
	var le *idp.LoginError
	if !errors.As(err, &le) || le.Code != CodeReplayed || !le.Logout {
		t.Fatalf("the request replayed after a success: %v, want a refusal with %s", err, CodeReplayed)
	}
	if rec.Body.Len() != 0 || rec.Header().Get("Location") != "" {
		t.Fatalf("the refused replay wrote %d %v", rec.Code, rec.Header())
	}
	if !s.signedIn(t, again) {
		t.Fatal("the replayed request ended a session signed in after the logout")
	}
}

// TestSLOSeveralSessionIndexes: a LogoutRequest with two SessionIndex
// values ends both sessions, and only those, in one transaction that uses
// the request up.
func TestSLOSeveralSessionIndexes(t *testing.T) {
	s := newStoreSLO(t)
	first, second, other := s.signIn(t, "ada", "idx-1"), s.signIn(t, "ada", "idx-2"), s.signIn(t, "ada", "idx-3")
	bob := s.signIn(t, "bob", "idx-1")
	u := s.logoutRequestURL(t, samltest.LogoutRequestSpec{
		Destination: s.slo(), NameID: "ada", SessionIndexes: []string{"idx-1", "idx-2"}, Sign: true}, "")
	before := s.db.committed()
	rec, err := s.send(u)
	if err != nil {
		t.Fatal(err)
	}
	if got := logoutStatus(t, rec); got != saml.StatusSuccess {
		t.Fatalf("answered %q, want %q", got, saml.StatusSuccess)
	}
	if n := s.db.committed() - before; n != 1 {
		t.Errorf("%d transactions, want 1", n)
	}
	if s.signedIn(t, first) || s.signedIn(t, second) {
		t.Error("a session the request named survived")
	}
	if !s.signedIn(t, other) || !s.signedIn(t, bob) {
		t.Error("a session the request did not name ended")
	}
	if _, err := s.send(u); codeOf(err) != CodeReplayed {
		t.Fatalf("sent again: %v, want %s", err, CodeReplayed)
	}
	if !s.signedIn(t, other) || !s.signedIn(t, bob) {
		t.Error("the replay ended a session")
	}
}
