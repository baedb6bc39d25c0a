//go:build !race

package saml

const raceEnabled = false
