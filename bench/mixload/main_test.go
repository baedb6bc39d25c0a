package main

import (
	"strings"
	"testing"
)

// TestLongestWriteHold picks the longest slow-write line from Caddy's
// output, in either duration encoding, and reports where its time went.
func TestLongestWriteHold(t *testing.T) {
	for _, tt := range []struct {
		name, output, want string
	}{
		{"none", `{"level":"info","msg":"server running"}`, "every write held it less than 100 ms"},
		{"seconds", strings.Join([]string{
			`{"level":"warn","logger":"sso.store","msg":"a store write held the write lock long","held":0.12,"work":0.01,"build":0.002,"disk":0.1,"pages":30,"calls":2,"background":false}`,
			`{"level":"info","msg":"sso user created"}`,
			`{"level":"warn","logger":"sso.store","msg":"a store write held the write lock long","held":0.149373093,"work":0.003,"build":0.001,"disk":0.145,"pages":34,"faults":2,"calls":1,"background":true}`,
		}, "\n"), "149ms (2 writes held it 100 ms or more); of it work 3ms, build 1ms, disk 145ms (34 pages), 2 pages read from disk, 1 calls, background"},
		{"strings", `{"msg":"a store write held the write lock long","held":"210ms","work":"200ms","build":"1ms","disk":"9ms","pages":5,"calls":1}`,
			"210ms (1 writes held it 100 ms or more); of it work 200ms, build 1ms, disk 9ms (5 pages), 0 pages read from disk, 1 calls, foreground"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := longestWriteHold(tt.output); !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
