package oidc

// The bounds of the dotted claim paths, for the tests of package oidc_test.
const (
	MaxClaimPathDepth = maxClaimPathDepth
	MaxClaimPathBytes = maxClaimPathBytes
	MaxClaimMembers   = maxClaimMembers
	MaxClaimPaths     = maxClaimPaths
)
