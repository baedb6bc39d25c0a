// Package referencecodes holds one test: every reference code the gateway
// can show a person or write to the audit trail is explained in
// docs/troubleshooting.md, the page an administrator reads with the code in
// hand.
package referencecodes
