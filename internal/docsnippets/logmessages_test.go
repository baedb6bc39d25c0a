package docsnippets_test

import (
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// documentedLogMessages are the log messages (or, where the code fills in
// a value, their fixed start) that the docs tell operators to search the
// log for, by doc. A message reworded in the code and not in the doc, or
// the other way round, leaves the operator searching for a line that never
// comes: TestDocumentedLogMessages holds the two together.
var documentedLogMessages = map[string][]string{
	"docs/troubleshooting.md": {
		"sign-in refused",
		"sso login denied",
		"sso login denied: email belongs to another user",
		"sso login denied: scim externalId belongs to a user who signs in under another subject",
		"sign-in denied",
		"access denied by the route's rules",
		"sign-out refused",
		"starting sign-in",
		"identity provider checked",
		"answering the error without the server's error routes",
		"saml idp metadata refresh failed; keeping the last good copy",
		"saml idp metadata unavailable",
		"saml idp metadata loaded",
		"oidc discovery refresh failed; keeping the last good copy",
		"oidc jwks refresh failed; keeping the last good keys",
		"userinfo refused the access token",
		"issuer mismatch: the IdP's discovery document says",
		"PKCE S256 not supported (the IdP offers",
		"rendering the operator's page template failed",
		"back-channel logout refused",
		"back-channel logout: the logout token could not be checked",
		"logout message refused",
		"front-channel logout",
		"identity headers too large for many upstream servers",
		"session ended: the identity provider refused to refresh its tokens",
		"another instance sharing the store holds the refresh, and its tokens did not land",
		"the request ended while waiting for its session's token refresh",
		"refreshing a session's tokens failed",
		"the identity provider could not renew an expired access token; answering 502",
		"the store failed; answering 503",
		"sign-in could not be saved; nothing of it was kept",
		"the database's NOTIFY queue is filling up",
		"the database's NOTIFY queue is full: committing without telling the other instances at the commit",
		"telling other instances about ended sessions",
		"the database is read-only (a hot standby, or default_transaction_read_only)",
		"refusing to build sign-in URLs or identity tokens on a trusted proxy's X-Forwarded-Host",
		"the sso handler is in a named route, which any invoke may run",
		"scim request refused: missing or wrong bearer token",
		"the page asked for is too long to come back to after sign-in; coming back to a shorter one",
	},
	"README.md": {
		"the page asked for is too long to come back to after sign-in",
	},
	"docs/scim.md": {
		"SCIM provisioning enabled",
		"scim user adopted by create",
		"sso login denied: scim externalId belongs to a user who signs in under another subject",
		"scim write refused: a user of another identity provider holds the value",
		"scim group members skipped: not users of this IdP",
	},
	"docs/okta-oidc.md": {
		"back-channel logout refused",
	},
	"docs/operations.md": {
		"oidc discovery refresh failed; keeping the last good copy",
		"oidc jwks refresh failed; keeping the last good keys",
		"store backup abandoned",
		"store backup failed",
	},
}

// TestDocumentedLogMessages: each message of documentedLogMessages is in
// its doc (line breaks of the Markdown aside) and in a string literal of
// the non-test Go source, so that rewording either fails here.
func TestDocumentedLogMessages(t *testing.T) {
	literals := sourceStrings(t)
	space := regexp.MustCompile(`\s+`)
	for doc, messages := range documentedLogMessages {
		raw, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		text := space.ReplaceAllString(string(raw), " ")
		for _, msg := range messages {
			if !strings.Contains(text, msg) {
				t.Errorf("%s no longer quotes the log message %q: update documentedLogMessages with the doc", doc, msg)
			}
			if !strings.Contains(literals, msg) {
				t.Errorf("%s quotes the log message %q, which no string in the non-test Go source holds: the code's wording changed", doc, msg)
			}
		}
	}
}

// sourceStrings is every string literal of the repository's non-test Go
// files, each on a line of its own: comments, which may quote a message
// the code no longer logs, are left out.
func sourceStrings(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata"):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		var s scanner.Scanner
		s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0)
		for {
			_, tok, lit := s.Scan()
			if tok == token.EOF {
				return nil
			}
			if tok != token.STRING {
				continue
			}
			v, err := strconv.Unquote(lit)
			if err != nil {
				return err
			}
			b.WriteString(v)
			b.WriteByte('\n')
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
