package cli_test

import "testing"

// users delete says which user it deleted, as users disable and enable do.
func TestCLIUsersDeleteSays(t *testing.T) {
	path, _, active := stoppedStore(t)
	stdout, stderr, err := run("users", "delete", active.ID, "--store", path)
	if err != nil {
		t.Fatalf("users delete: %v\n%s", err, stderr)
	}
	if want := "user " + active.ID + " deleted\n"; stdout != want {
		t.Errorf("users delete printed %q, want %q", stdout, want)
	}
}
