//go:build race

package saml

// raceEnabled lets slow exhaustive loops sample under the race detector,
// which makes XML signature verification about ten times slower.
const raceEnabled = true
