package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// "ΐ" (U+0390) is 2 bytes and folds to 6 (ι, combining diaeresis, combining
// acute): the form the userName, email and group name indexes hold.
var (
	foldsLong = strings.Repeat("ΐ", 400) // 800 bytes; 2,400 folded
	foldsFits = strings.Repeat("ΐ", 170) // 340 bytes; 1,020 folded
)

// indexedCases is CheckIndexed's rule: what a value the store indexes may
// be. want nil: accepted.
var indexedCases = []struct {
	name, v string
	want    error
}{
	{"empty (absent)", "", nil},
	{"ASCII", "ada@example.com", nil},
	{"at the limit", strings.Repeat("a", store.MaxKeyBytes), nil},
	{"upper case at the limit", strings.Repeat("A", store.MaxKeyBytes), nil},
	{"non-ASCII", "straße@example.com", nil},
	{"non-ASCII, at the limit once folded", foldsFits, nil},
	{"U+FFFD itself", "ada\uFFFD", nil},
	{"space inside", "Ada Lovelace", nil},
	{"one byte over", strings.Repeat("a", store.MaxKeyBytes+1), store.ErrValueTooLong},
	{"over the limit once folded", foldsLong, store.ErrValueTooLong},
	{"NUL", "ada\x00", store.ErrControlCharacter},
	{"tab", "ada\tlovelace", store.ErrControlCharacter},
	{"newline", "ada\nadmin", store.ErrControlCharacter},
	{"escape", "sub\x1b[31m", store.ErrControlCharacter},
	{"DEL", "x\x7f", store.ErrControlCharacter},
	{"invalid UTF-8 byte", "sub\xff", store.ErrNotUTF8},
	{"truncated UTF-8 sequence", "x\xc3", store.ErrNotUTF8},
	{"UTF-8-encoded surrogate", "x\xed\xa0\x80", store.ErrNotUTF8},
}

func TestCheckIndexed(t *testing.T) {
	for _, tt := range indexedCases {
		err := store.CheckIndexed("userName", tt.v)
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("%s: CheckIndexed = %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err == nil {
			continue
		}
		// Both kinds of refusal are what callers test for; the message
		// names the attribute and never holds the value.
		if tt.want != store.ErrValueTooLong && !errors.Is(err, store.ErrInvalidValue) {
			t.Errorf("%s: %v is not an ErrInvalidValue", tt.name, err)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "userName ") || strings.Contains(msg, tt.v) {
			t.Errorf("%s: message %q does not start with the attribute, or holds the value", tt.name, msg)
		}
	}
}

// TestPutUserRefusesAlikeOnBothBackends: every value CheckIndexed refuses,
// in any attribute of a user the store indexes, is refused by PutUser with
// the same error on bolt and on PostgreSQL, and every value it accepts is
// stored by both: the backends have no rule of their own.
func TestPutUserRefusesAlikeOnBothBackends(t *testing.T) {
	backends := backendtest.All()
	attrs := []struct {
		name string
		set  func(u *store.User, v string)
	}{
		{"userName", func(u *store.User, v string) { u.UserName = v }},
		{"email", func(u *store.User, v string) { u.Email = v }},
		{"externalId", func(u *store.User, v string) { u.IdP, u.ExternalID = "okta", v }},
		{"displayName", func(u *store.User, v string) { u.DisplayName = v }},
		{"link subject", func(u *store.User, v string) { u.Links = []store.Link{{IdP: "okta", Subject: v}} }},
	}
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			st := be.Open(t)
			for _, a := range attrs {
				for _, tt := range indexedCases {
					if tt.v == "" {
						continue
					}
					u := &store.User{Active: true}
					a.set(u, tt.v)
					err := st.Update(context.Background(), func(tx store.Tx) error {
						err := tx.PutUser(u)
						if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
							t.Errorf("%s %s: PutUser = %v, want %v", a.name, tt.name, err, tt.want)
						}
						if err == nil {
							return tx.DeleteUser(u.ID) // the next value may be the same
						}
						return nil
					})
					if err != nil {
						t.Fatalf("%s %s: Update: %v", a.name, tt.name, err)
					}
				}
			}
		})
	}
}

// TestPutGroupRefusesAlikeOnBothBackends: a group's display name and
// externalId are held to the same rule on both backends (bolt took a name
// that folds past the limit, or is not UTF-8, which PostgreSQL refused).
func TestPutGroupRefusesAlikeOnBothBackends(t *testing.T) {
	for _, be := range backendtest.All() {
		t.Run(be.Name, func(t *testing.T) {
			st := be.Open(t)
			for _, attr := range []string{"displayName", "externalId"} {
				for _, tt := range indexedCases {
					if tt.v == "" || strings.TrimSpace(tt.v) == "" {
						continue
					}
					g := &store.Group{IdP: "okta", DisplayName: "engineering"}
					if attr == "displayName" {
						g.DisplayName = tt.v
					} else {
						g.ExternalID = tt.v
					}
					err := st.Update(context.Background(), func(tx store.Tx) error {
						err := tx.PutGroup(g)
						if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
							t.Errorf("%s %s: PutGroup = %v, want %v", attr, tt.name, err, tt.want)
						}
						if err == nil {
							return tx.DeleteGroup(g.ID)
						}
						return nil
					})
					if err != nil {
						t.Fatalf("%s %s: Update: %v", attr, tt.name, err)
					}
				}
			}
		})
	}
}
