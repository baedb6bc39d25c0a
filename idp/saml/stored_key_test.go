package saml

import (
	"bytes"
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestGeneratedSPKeyLogged: Start generates the SP key pair of an IdP
// whose store holds none (the first start, or a store restored from a
// backup older than the IdP) and says so at INFO, naming the IdP and where
// its SP metadata is, since an IdP holding another certificate must be
// given it again. A start that loads the kept pair says nothing and uses
// the same pair, and so does one whose pair lost the race to another
// instance's.
func TestGeneratedSPKeyLogged(t *testing.T) {
	db := backendtest.OpenBolt(t)
	srv, err := samltest.NewServer("https://idp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	md, err := srv.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	flows, err := idp.NewFlowCookies(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	const generated = "generated a new SAML SP key pair and kept it in the store: an IdP that holds another SP certificate must be given this SP's metadata again (sp_metadata, under the route's path_prefix if it sets one)"
	start := func(t *testing.T, name string, secrets idp.Secrets) (*Provider, []observer.LoggedEntry) {
		t.Helper()
		core, logs := observer.New(zap.InfoLevel)
		p, err := New(Config{Name: name, MetadataXML: md, Logger: zap.New(core)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		if err := p.Start(context.Background(), idp.Runtime{Flows: flows, Sessions: sessionEnder{}, Secrets: secrets}); err != nil {
			t.Fatal(err)
		}
		return p, logs.FilterMessage(generated).AllUntimed()
	}

	first, lines := start(t, "corp", store.Secrets{Store: db})
	if len(lines) != 1 {
		t.Fatalf("%d lines %q on generating the key pair, want 1", len(lines), generated)
	}
	if lines[0].Level != zapcore.InfoLevel {
		t.Errorf("level %v, want INFO", lines[0].Level)
	}
	fields := lines[0].ContextMap()
	for k, want := range map[string]string{
		"idp":         "corp",
		"secret":      "saml-sp-key/corp",
		"sp_metadata": "https://<site>/.sso/saml/corp/metadata",
	} {
		if fields[k] != want {
			t.Errorf("field %s = %v, want %q", k, fields[k], want)
		}
	}

	again, lines := start(t, "corp", store.Secrets{Store: db})
	if len(lines) != 0 {
		t.Errorf("loading the kept key pair logged %q", generated)
	}
	if !again.keys[0].Certificate.Equal(first.keys[0].Certificate) {
		t.Error("the second start did not load the key pair the first one kept")
	}

	// Another instance on the same store generated and stored its pair
	// while this one generated its own: the one in use is the other's,
	// which that instance reported.
	theirs := testKeys()[2]
	lost, lines := start(t, "race", racingSecrets{Secrets: store.Secrets{Store: db}, db: db, theirs: theirs})
	if len(lines) != 0 {
		t.Errorf("a start that lost the race logged %q", generated)
	}
	if !lost.keys[0].Certificate.Equal(theirs.Certificate) {
		t.Error("the start that lost the race does not use the pair stored first")
	}
}

// racingSecrets is a real store's Secrets where another instance stores
// its key pair (theirs) while this one generates.
type racingSecrets struct {
	store.Secrets
	db     store.Store
	theirs KeyPair
}

func (r racingSecrets) LoadOrStore(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	return r.Secrets.LoadOrStore(ctx, name, func() ([]byte, error) {
		ours, err := generate()
		if err != nil {
			return nil, err
		}
		theirs, err := EncodeKeyPairPEM(r.theirs)
		if err != nil {
			return nil, err
		}
		err = r.db.Update(ctx, func(tx store.Tx) error { _, err := tx.LoadOrStoreSecret(name, theirs); return err })
		return ours, err
	})
}
