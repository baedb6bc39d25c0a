//go:build !unix

package main

// lockDataDir does not lock where flock is missing: two demos given the
// same -data fail only on the store, after the second has rewritten the
// first one's Caddyfile.
func lockDataDir(string) (unlock func(), err error) { return func() {}, nil }
