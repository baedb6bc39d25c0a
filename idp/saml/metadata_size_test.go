package saml

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestMetadataTooLarge: metadata over maxMetadataSize, which is what a
// federation's aggregate of every member (InCommon, eduGAIN: tens of MiB)
// looks like at metadata_url, is refused as metadata an administrator must
// replace (idp_misconfigured, with the limit and the fix), not as an IdP
// that cannot be reached (saml_metadata_unavailable asks people to try
// again). As a file it fails the configuration with the same words, and
// `caddy sso check` (Probe) says the same.
func TestMetadataTooLarge(t *testing.T) {
	big := make([]byte, maxMetadataSize+1)
	copy(big, `<?xml version="1.0"?><md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(big) }))
	t.Cleanup(srv.Close)
	says := func(t *testing.T, err error) {
		t.Helper()
		for _, want := range []string{"larger than 8 MiB", "the IdP's own metadata", "(MDQ)"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("the error does not say %q: %v", want, err)
			}
		}
	}

	t.Run("metadata_url", func(t *testing.T) {
		p, err := New(Config{Name: "fed", MetadataURL: srv.URL, IdPEntityID: "https://idp.example.edu/idp/shibboleth"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		_, err = p.signInMetadata(context.Background())
		if got := codeOf(err); got != idp.CodeMisconfigured {
			t.Fatalf("code = %q, want %q (err: %v)", got, idp.CodeMisconfigured, err)
		}
		says(t, err)
	})
	t.Run("metadata_file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "aggregate.xml")
		if err := os.WriteFile(file, big, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(Config{Name: "fed", MetadataFile: file})
		says(t, err)
	})
	t.Run("caddy sso check", func(t *testing.T) {
		_, err := Probe(context.Background(), srv.Client(), MetadataSource{URL: srv.URL}, "")
		says(t, err)
	})
}

// TestReadCapped: a document of exactly the limit is read whole; one byte
// more is a *tooLargeError, not a truncated document.
func TestReadCapped(t *testing.T) {
	const limit = 64
	for _, tc := range []struct {
		size    int
		tooMany bool
	}{{0, false}, {limit - 1, false}, {limit, false}, {limit + 1, true}, {4 * limit, true}} {
		data, err := readCapped(bytes.NewReader(bytes.Repeat([]byte("x"), tc.size)), limit)
		var tl *tooLargeError
		if got := errors.As(err, &tl); got != tc.tooMany {
			t.Errorf("%d bytes: err = %v, want too large: %v", tc.size, err, tc.tooMany)
		}
		if !tc.tooMany && len(data) != tc.size {
			t.Errorf("%d bytes: read %d", tc.size, len(data))
		}
	}
}
