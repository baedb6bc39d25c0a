package postgres

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDSNPasswordNeverShown: a password with characters a URL gives
// meaning to (an unencoded "/", as base64 passwords have, or "@"), or
// one with a space in key=value form, appears neither in Open's error for
// the DSN nor in Describe, which CLI messages and log lines print
// (backend.Spec.String); a DSN that parses as written is still described.
func TestDSNPasswordNeverShown(t *testing.T) {
	for _, c := range []struct {
		dsn, secret, describe string
	}{
		// url.Parse fails, and quoted ":Xq7Kp" in its error.
		{"postgres://sso:Xq7Kp/2vN9+wZ@db.internal:5432/sso", "Xq7Kp", "(connection string not shown)"},
		// Parses: host "sso", port 1234, database "s3cr3t@db.internal:5432/sso".
		{"postgres://sso:1234/s3cr3t@db.internal:5432/sso", "s3cr3t", "(connection string not shown)"},
		{"postgresql://sso:1234/s3cr3t@db.internal:5432/sso", "1234", "(connection string not shown)"},
		// pgconn reads password "p" and host "ss@db.internal".
		{"postgres://sso:p@ss@db.internal/sso", "ss@db", "(connection string not shown)"},
		{"host=db.internal user=sso password=Xq7Kp 2vN9+wZ dbname=sso", "Xq7Kp", "(connection string not shown)"},
		// Shown: the password is where it belongs.
		{"postgres://sso:Xq7Kp%2F2vN9%2BwZ@db.internal:5432/sso", "Xq7Kp", "db.internal:5432/sso"},
		// pgconn, like libpq, ends the user info at the first "@" before a
		// "/", so these passwords are read whole.
		{"postgres://sso:4321?s3cr3t@db.internal/sso", "4321", "db.internal:5432/sso"},
		{"postgres://sso:4321#s3cr3t@db.internal/sso", "4321", "db.internal:5432/sso"},
		{"postgres://db.internal/sso?user=sso&password=Xq7Kp", "Xq7Kp", "db.internal:5432/sso"},
		{"host=db.internal user=sso password=1234/s3cr3t dbname=sso", "s3cr3t", "db.internal:5432/sso"},
		{"host=db.internal user=sso password='Xq7Kp 2vN9' dbname=sso", "Xq7Kp", "db.internal:5432/sso"},
	} {
		if got := Describe(c.dsn); got != c.describe {
			t.Errorf("Describe(%q) = %q, want %q", c.dsn, got, c.describe)
		}
		if c.describe != "(connection string not shown)" {
			continue // it parses: Open would connect
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := Open(ctx, Config{DSN: c.dsn})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "does not parse") {
			t.Errorf("Open(%q): %v, want a DSN that does not parse", c.dsn, err)
		} else if strings.Contains(err.Error(), c.secret) {
			t.Errorf("Open(%q): the error shows the password's %q: %v", c.dsn, c.secret, err)
		}
	}
}
