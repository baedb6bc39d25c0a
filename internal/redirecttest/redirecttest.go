// Package redirecttest gives tests the open-redirect payload list
// (testdata/open-redirect-payloads.txt, see testdata/README.md for where it
// comes from), embedded so that every package's tests read the same copy
// and need nothing outside the repository.
package redirecttest

import (
	_ "embed"
	"strings"
)

//go:embed testdata/open-redirect-payloads.txt
var payloadList string

// Payloads returns the non-empty lines of the payload list, in file order.
func Payloads() []string {
	var out []string
	for _, line := range strings.Split(payloadList, "\n") {
		if line = strings.TrimSuffix(line, "\r"); line != "" {
			out = append(out, line)
		}
	}
	return out
}
