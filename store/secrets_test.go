package store_test

import (
	"context"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSecretsLoadOrStoreFirstStoredWins: when another instance stores the
// secret (a SAML SP key pair) while this one generates its own, both use
// the one stored first: this instance's fresh key is dropped, not
// returned, or the instances would sign with keys the IdP does not all
// know. Later calls read the stored secret without generating.
func TestSecretsLoadOrStoreFirstStoredWins(t *testing.T) {
	const name = "saml-sp-key"
	ctx := context.Background()
	for _, be := range backendtest.All() {
		t.Run(be.Name, func(t *testing.T) {
			st := be.Open(t)
			secrets := store.Secrets{Store: st}
			got, err := secrets.LoadOrStore(ctx, name, func() ([]byte, error) {
				// The other instance, between this one's read and write.
				other, err := store.Secrets{Store: st}.LoadOrStore(ctx, name, func() ([]byte, error) { return []byte("theirs"), nil })
				if err != nil || string(other) != "theirs" {
					t.Errorf("other instance's LoadOrStore = %q, %v", other, err)
				}
				return []byte("mine"), nil
			})
			if err != nil || string(got) != "theirs" {
				t.Fatalf("LoadOrStore = %q, %v; want the secret stored first, %q", got, err, "theirs")
			}
			again, err := secrets.LoadOrStore(ctx, name, func() ([]byte, error) {
				t.Error("generate called for a stored secret")
				return []byte("again"), nil
			})
			if err != nil || string(again) != "theirs" {
				t.Errorf("second LoadOrStore = %q, %v; want %q", again, err, "theirs")
			}
		})
	}
}
