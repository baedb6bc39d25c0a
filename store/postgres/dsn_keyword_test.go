package postgres

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestPasswordOfKeywordDSN: the password secretsOf keeps out of errors,
// and whose presence makes the gateway warn that the admin API shows it
// (HasPassword), is the one pgconn connects with, in every keyword/value
// spelling libpq accepts (spaces around "=", quotes, escapes, a key that
// ends in "password", a repeated key) and in a URL's user info or query.
func TestPasswordOfKeywordDSN(t *testing.T) {
	for _, dsn := range []string{
		"host=db user=sso password = s3cr3t-pw dbname=sso",
		"host=db user=sso password =s3cr3t-pw dbname=sso",
		"host=db user=sso password= s3cr3t-pw dbname=sso",
		"host=db user=sso sslpassword=k password='s3cr3t-pw' dbname=sso",
		"host=db password=first password=s3cr3t-pw",
		"host=db password = 's3cr3t-pw'",
		// URLs: the password in the query, with or without user info.
		"postgres://db/sso?user=sso&password=s3cr3t-pw",
		"postgresql://sso@db/sso?password=s3cr3t-pw&sslmode=disable",
		"postgres://sso:s3cr3t-pw@db/sso",
	} {
		c, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("%q: %v", dsn, err)
		}
		if c.Password != "s3cr3t-pw" {
			t.Fatalf("%q: pgconn reads password %q; the case is wrong", dsn, c.Password)
		}
		if !HasPassword(dsn) || !slices.Contains(secretsOf(dsn), "s3cr3t-pw") {
			t.Errorf("%q: secretsOf = %q, lacks the password pgconn connects with", dsn, secretsOf(dsn))
		}
	}
	for _, c := range []struct{ dsn, want string }{
		{`password='it\'s a pw'`, "it's a pw"},
		{`password=a\ b host=db`, "a b"},
		{`sslpassword=k host=db`, ""},
		{`password='unclosed`, ""},
	} {
		if got := keywordValue(c.dsn, "password"); got != c.want {
			t.Errorf("keywordValue(%q) = %q, want %q", c.dsn, got, c.want)
		}
	}
}
