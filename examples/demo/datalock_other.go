//go:build !unix

package main

import "os"

// lockDataDir does not lock where flock is missing: two demos given the
// same -data fail only on the store, after the second has rewritten the
// first one's Caddyfile.
func lockDataDir(string) (unlock func(), err error) { return func() {}, nil }

// othersMayWrite says nothing where permissions are not unix mode bits
// (Windows's are ACLs; its %TEMP%, the default's parent, is per user).
func othersMayWrite(os.FileInfo) string { return "" }
