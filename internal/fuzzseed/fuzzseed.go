// Package fuzzseed writes seed corpus files for `go test -fuzz` targets.
//
// Most seeds are literals passed to f.Add, but some can only be made by
// code that is too slow or too stateful to run on every test: responses
// signed by the test IdP at a fixed time, cookies sealed with a fixed key.
// Those are generated once, on request, into testdata/fuzz/<FuzzName>/, the
// directory `go test` replays for every target, and committed; the tests
// that generate them also check, on every run, that the committed files
// still do what their names say (an "ok-" seed is accepted), so a corpus
// that has rotted fails instead of silently covering less.
package fuzzseed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// EnvWrite is the environment variable that makes the generating tests
// (re)write their seed files: WRITE_FUZZ_SEEDS=1 go test -run Seeds ./...
const EnvWrite = "WRITE_FUZZ_SEEDS"

// Writing reports whether the generating tests should write seed files.
func Writing() bool { return os.Getenv(EnvWrite) == "1" }

// Write stores one corpus entry for fuzzName under dir (a package's
// testdata/fuzz), in the "go test fuzz v1" format. Each value must have the
// type of the matching fuzz argument; strings, byte slices and bools are
// supported, which is what the targets of this repository take.
func Write(dir, fuzzName, name string, values ...any) error {
	b := []byte("go test fuzz v1\n")
	for _, v := range values {
		switch v := v.(type) {
		case string:
			b = fmt.Appendf(b, "string(%s)\n", strconv.Quote(v))
		case []byte:
			b = fmt.Appendf(b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case bool:
			b = fmt.Appendf(b, "bool(%t)\n", v)
		default:
			return fmt.Errorf("fuzzseed: unsupported type %T", v)
		}
	}
	d := filepath.Join(dir, fuzzName)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, name), b, 0o644)
}

// Read returns the values of one corpus file written by Write (or by the go
// command, for the types Write supports), so that a test can check what a
// committed seed does.
func Read(path string) ([]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("fuzzseed: %s: not a corpus file", path)
	}
	var out []any
	for _, line := range lines[1:] {
		typ, lit, ok := strings.Cut(line, "(")
		if !ok || !strings.HasSuffix(lit, ")") {
			return nil, fmt.Errorf("fuzzseed: %s: bad line %q", path, line)
		}
		lit = lit[:len(lit)-1]
		switch typ {
		case "string", "[]byte":
			s, err := strconv.Unquote(lit)
			if err != nil {
				return nil, fmt.Errorf("fuzzseed: %s: %w", path, err)
			}
			if typ == "string" {
				out = append(out, s)
			} else {
				out = append(out, []byte(s))
			}
		case "bool":
			b, err := strconv.ParseBool(lit)
			if err != nil {
				return nil, fmt.Errorf("fuzzseed: %s: %w", path, err)
			}
			out = append(out, b)
		default:
			return nil, errors.New("fuzzseed: " + path + ": unsupported type " + typ)
		}
	}
	return out, nil
}
