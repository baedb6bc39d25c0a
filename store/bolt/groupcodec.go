package bolt

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/caddy-sso/caddy-sso/store"
)

// decodeGroup reads a group record. A directory's large group holds tens
// of thousands of member IDs (50,000 are a 1.75 MB value), and
// encoding/json reads them at about 40 MB/s: some 40 ms for that value,
// most of the 50 ms a write may hold the store's lock (docs/operations.md,
// "A million users, over time"), and a change to the group reads it twice
// (the SCIM handler, then PutGroup). So the shape PutGroup writes is read
// here, its members in one pass over their bytes (BenchmarkGroupCodec:
// about 6 ms); anything else (escapes or non-ASCII in a member ID, other
// keys, another spelling of a key, a repeated key, invalid JSON) goes to
// json.Unmarshal, which then gives the result or the error it always gave
// (FuzzDecodeGroup).
func decodeGroup(v []byte) (*store.Group, error) {
	if g, ok := readGroup(v); ok {
		return g, nil
	}
	g := new(store.Group)
	if err := json.Unmarshal(v, g); err != nil {
		return nil, err
	}
	return g, nil
}

// readGroup reads v when it is a JSON object of members (null, or a list
// of strings of printable ASCII without escapes) and the other keys of
// store.Group as its JSON tags spell them (strings or null), each at most
// once. The other fields, a few hundred bytes, go to json.Unmarshal as an
// object of their own, which checks them and their escapes exactly as it
// would in v.
func readGroup(v []byte) (*store.Group, bool) {
	s := scanner{b: v}
	s.space()
	if !s.take('{') {
		return nil, false
	}
	rest := make([]byte, 1, 256)
	rest[0] = '{'
	var members []string
	var seen [groupKeyCount]bool
	s.space()
	if !s.take('}') {
		for {
			key, ok := s.plainString()
			if !ok {
				return nil, false
			}
			s.space()
			if !s.take(':') {
				return nil, false
			}
			s.space()
			i := fieldIndex(key)
			if i < 0 || seen[i] {
				return nil, false
			}
			seen[i] = true
			if i == membersKey {
				if members, ok = s.members(); !ok {
					return nil, false
				}
			} else {
				start := s.i
				if !s.stringOrNull() {
					return nil, false
				}
				if len(rest) > 1 {
					rest = append(rest, ',')
				}
				rest = append(rest, '"')
				rest = append(rest, key...)
				rest = append(rest, '"', ':')
				rest = append(rest, v[start:s.i]...)
			}
			s.space()
			if s.take(',') {
				s.space()
				continue
			}
			if s.take('}') {
				break
			}
			return nil, false
		}
	}
	s.space()
	if s.i != len(v) {
		return nil, false
	}
	g := new(store.Group)
	if json.Unmarshal(append(rest, '}'), g) != nil {
		return nil, false
	}
	g.Members = members
	return g, true
}

// The keys of a stored group (store.Group's JSON tags), numbered for
// readGroup.
const (
	membersKey    = iota
	groupKeyCount = 7
)

// fieldIndex numbers the keys of store.Group, membersKey for members; -1
// for any other key.
func fieldIndex(key []byte) int {
	switch string(key) {
	case "members":
		return membersKey
	case "id":
		return 1
	case "idp":
		return 2
	case "display_name":
		return 3
	case "external_id":
		return 4
	case "created":
		return 5
	case "updated":
		return 6
	}
	return -1
}

// scanner walks a JSON text by hand, for readGroup.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) take(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.i += len(lit)
		return true
	}
	return false
}

// plainString reads a string of printable ASCII without escapes and
// returns what is between its quotes.
func (s *scanner) plainString() ([]byte, bool) {
	if !s.take('"') {
		return nil, false
	}
	n := bytes.IndexByte(s.b[s.i:], '"')
	if n < 0 {
		return nil, false
	}
	str := s.b[s.i : s.i+n]
	for _, c := range str {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return nil, false
		}
	}
	s.i += n + 1
	return str, true
}

// stringOrNull skips a string (any content: json.Unmarshal checks it) or
// null.
func (s *scanner) stringOrNull() bool {
	if s.literal("null") {
		return true
	}
	if !s.take('"') {
		return false
	}
	for ; s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '\\':
			s.i++
		case '"':
			s.i++
			return true
		}
	}
	return false
}

// members reads null or a list of plain strings. The first pass checks
// the list and counts its elements; the second cuts them from one copy of
// the list's bytes, one allocation where a string each was half the time
// of the read. The IDs so share their memory: an ID kept keeps the list's
// bytes (1.75 MB for 50,000 members) alive, and no caller keeps one past
// its request or transaction.
func (s *scanner) members() ([]string, bool) {
	if s.literal("null") {
		return nil, true
	}
	if !s.take('[') {
		return nil, false
	}
	start := s.i
	n := 0
	s.space()
	if !s.take(']') {
		for {
			if _, ok := s.plainString(); !ok {
				return nil, false
			}
			n++
			s.space()
			if s.take(',') {
				s.space()
				continue
			}
			if s.take(']') {
				break
			}
			return nil, false
		}
	}
	out := make([]string, 0, n)
	list := string(s.b[start:s.i])
	for {
		open := strings.IndexByte(list, '"')
		if open < 0 {
			return out, true
		}
		end := open + 1 + strings.IndexByte(list[open+1:], '"')
		out = append(out, list[open+1:end])
		list = list[end+1:]
	}
}

// encodeGroup writes a group record, the bytes json.Marshal writes
// (FuzzEncodeGroup). encoding/json takes about 7 ms for a group of 50,000
// members, on each change to it inside the write transaction; members
// that need no escaping (printable ASCII other than `"`, `\` and the `<`,
// `>`, `&` json.Marshal escapes), as IDs the store draws, are copied here
// in about 4 (BenchmarkGroupCodec). The rest of the record is
// json.Marshal's, and the members go where it puts them: after
// external_id, before created (store.Group's field order).
func encodeGroup(g *store.Group) ([]byte, error) {
	size := 0
	for _, m := range g.Members {
		if !plainID(m) {
			return json.Marshal(g)
		}
		size += len(m) + 3
	}
	if len(g.Members) == 0 {
		return json.Marshal(g)
	}
	bare := *g
	bare.Members = nil
	rest, err := json.Marshal(&bare)
	if err != nil {
		return nil, err
	}
	// json.Marshal escapes every quote inside a string, so this is the key.
	at := bytes.Index(rest, []byte(`,"created":`))
	if at < 0 {
		return json.Marshal(g)
	}
	out := make([]byte, 0, len(rest)+len(`,"members":[]`)+size)
	out = append(out, rest[:at]...)
	out = append(out, `,"members":[`...)
	for i, m := range g.Members {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, m...)
		out = append(out, '"')
	}
	out = append(out, ']')
	return append(out, rest[at:]...), nil
}

// plainID reports whether json.Marshal writes s as it is, in quotes.
func plainID(s string) bool {
	for i := range len(s) {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
