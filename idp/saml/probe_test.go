package saml

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

func TestProbe(t *testing.T) {
	idpSrv, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer idpSrv.Close()
	md, err := idpSrv.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "idp.xml")
	if err := os.WriteFile(file, md, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, client := context.Background(), &http.Client{Timeout: 5 * time.Second}
	for name, src := range map[string]MetadataSource{
		"url":    {URL: idpSrv.MetadataURL()},
		"file":   {File: file},
		"inline": {XML: md},
	} {
		r, err := Probe(ctx, client, src, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.EntityID != idpSrv.EntityID() || r.Usable != nil || len(r.Certificates) != 1 || r.Certificates[0].Err != nil ||
			r.Certificates[0].Name != "samltest IdP" || !r.Certificates[0].NotAfter.After(time.Now()) || r.Source == "" {
			t.Errorf("%s: %+v", name, r)
		}
	}

	// What sign-in refuses, the probe reports.
	noSSO := bytes.ReplaceAll(md, []byte("SingleSignOnService"), []byte("ArtifactResolutionService"))
	if r, err := Probe(ctx, client, MetadataSource{XML: noSSO}, ""); err != nil || r.Usable == nil ||
		!strings.Contains(r.Usable.Error(), "SingleSignOnService") {
		t.Errorf("metadata without SSO: %+v, %v", r, err)
	}
	if _, err := Probe(ctx, client, MetadataSource{XML: append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), md...)}, ""); err == nil {
		t.Error("a DOCTYPE was accepted")
	}
	if _, err := Probe(ctx, client, MetadataSource{URL: "http://idp.example/metadata"}, ""); err == nil {
		t.Error("a plain-http metadata URL off loopback was fetched")
	}
	if _, err := Probe(ctx, client, MetadataSource{XML: md}, "urn:other"); err == nil {
		t.Error("metadata for another entity was accepted")
	}
}
