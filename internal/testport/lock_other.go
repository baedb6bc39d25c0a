//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package testport

import (
	"errors"
	"os"
)

// lockFile has no lock to take here, and without one parallel test
// processes could share a port: Pick fails rather than hand out ports
// unreserved.
func lockFile(string) (*os.File, error) {
	return nil, errors.ErrUnsupported
}
