// Package exampletest runs the examples' shipped configuration files (the
// nginx and Traefik examples) and the configurations the docs give (a
// fenced block of a Markdown page) as they are: read with the few
// replacements a test needs (ports, addresses, certificate paths), each of
// which must still match, and served with a self-signed certificate
// (caddytest.SelfSignedCert).
package exampletest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Shipped reads the file name (of the test's directory) and applies the
// replacements, old and new in pairs, each of which must match: a test
// that no longer finds what it replaces fails instead of testing
// something else.
func Shipped(t testing.TB, name string, replace ...string) string {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return replaced(t, name, string(raw), replace)
}

// replaced applies the replacements to s, read from name, failing the
// test when one no longer matches.
func replaced(t testing.TB, name, s string, replace []string) string {
	t.Helper()
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("%s no longer contains %q", name, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return s
}

// DocBlock reads the first fenced code block of language lang (```lang)
// after the heading line heading (as written, "## Caddy's forward_auth")
// of the Markdown page name, and applies the replacements as Shipped
// does: a test runs the configuration the docs give operators, not a copy
// of it that could drift. A page without that heading or block fails the
// test.
func DocBlock(t testing.TB, name, heading, lang string, replace ...string) string {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no heading %q", name, heading)
	}
	_, rest, ok = strings.Cut(rest, "\n```"+lang+"\n")
	if !ok {
		t.Fatalf("%s has no ```%s block after %q", name, lang, heading)
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("%s: the ```%s block after %q does not end", name, lang, heading)
	}
	return replaced(t, name, block+"\n", replace)
}

// Write writes content to path, making its directory.
func Write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
