// Package freshclone holds one test: the repository's committed HEAD,
// cloned into an empty directory, passes the tests that read test data.
// It exists because a test that reads a file outside the repository passes
// on the machine that has the file and fails for everyone who clones it.
package freshclone
