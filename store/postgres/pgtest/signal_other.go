//go:build !unix

package pgtest

import "errors"

// Freeze needs SIGSTOP, which this system has not.
func (c *Cluster) Freeze() error { return errors.ErrUnsupported }

// Thaw needs SIGCONT, which this system has not.
func (c *Cluster) Thaw() error { return errors.ErrUnsupported }

// processAlive cannot tell here: every cluster left behind counts as
// another process's, so removeStale leaves it.
func processAlive(int) bool { return true }
