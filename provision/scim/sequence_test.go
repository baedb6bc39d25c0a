package scim_test

import (
	"fmt"
	"testing"
)

// step is one request of a replayed provisioning sequence.
type step struct {
	name         string
	method, path string
	body         string
	status       int
	// save stores a string from the response body (by at() path) under a
	// name usable as {{name}} in later steps.
	save  map[string][]any
	check func(t *testing.T, e *env, r resp)
}

// replay runs the steps in order against one env; each is a subtest, and
// the first failure stops the sequence (later steps depend on it).
func replay(t *testing.T, e *env, steps []step) {
	t.Helper()
	defer func() { e.t = t }()
	for i, s := range steps {
		ok := t.Run(fmt.Sprintf("%02d %s", i+1, s.name), func(t *testing.T) {
			e.t = t
			r := e.do(s.method, s.path, s.body)
			if r.status != s.status {
				t.Fatalf("%s %s: status %d, want %d: %s", s.method, e.expand(s.path), r.status, s.status, r.raw)
			}
			for name, p := range s.save {
				v, ok := at(r.body, p...).(string)
				if !ok || v == "" {
					t.Fatalf("no string at %v to save as %s: %s", p, name, r.raw)
				}
				e.vars[name] = v
			}
			if s.check != nil {
				s.check(t, e, r)
			}
		})
		if !ok {
			t.FailNow()
		}
	}
}
