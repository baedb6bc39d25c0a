package bolt

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// FuzzDecodeGroup: decodeGroup gives what json.Unmarshal gives, the same
// group or an error, whatever the stored bytes (a record written by an
// earlier version, by hand, or damaged).
func FuzzDecodeGroup(f *testing.F) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, g := range []store.Group{
		{ID: "g1", IdP: "entra", DisplayName: "everyone", ExternalID: "x", Members: []string{"a", "b"}, Created: at, Updated: at},
		{ID: "g2", IdP: "okta", DisplayName: ` admins "<&>" ` + "\u00e9\u2028", Created: at},
		{ID: "g3", DisplayName: "x", Members: []string{`quote"d`, `back\slash`, "caf\u00e9", "<b>"}},
	} {
		b, err := json.Marshal(&g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, ` { "id" : "g" , "members" : [ "a" ,"b"] } `, `{"members":[]}`, `{"members":null}`,
		`{"members":["a",null]}`, `{"members":["a","a"],"members":["b"]}`, `{"Members":["a"]}`, `{"MEMBERS":["a"],"members":["b"]}`,
		`{"members":["\u0061"]}`, `{"members":["a"],"extra":1}`, `{"id":5}`, `{"id":null,"created":null}`,
		`{"created":"yesterday"}`, `{"members":["a"]`, `{"members":["a"]}x`, `{"members":["a",]}`, `{"members":[,"a"]}`,
		"{\"members\":[\"a\tb\"]}", "{\"members\":[\"\x7f\"]}", "{\"display_name\":\"\xff\"}", `{"id":"\ud800"}`,
		`{"display_name":"a\"b"}`, `{"display_name":"a\\"}`, `[]`, `null`, ``, "\ufeff{}", `{"id":"a",}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got, err := decodeGroup(v)
		want := new(store.Group)
		wantErr := json.Unmarshal(v, want)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decodeGroup(%q) error %v, json.Unmarshal %v", v, err, wantErr)
		}
		if err != nil {
			if err.Error() != wantErr.Error() {
				t.Fatalf("decodeGroup(%q) error %q, json.Unmarshal %q", v, err, wantErr)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeGroup(%q) = %#v, json.Unmarshal %#v", v, got, want)
		}
	})
}

// largeGroupValue is the record of a group of n members as PutGroup
// writes it, with IDs as the store draws them.
func largeGroupValue(tb testing.TB, n int) []byte {
	tb.Helper()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	g := store.Group{ID: "0123456789abcdef0123456789abcdef", IdP: "entra", DisplayName: "everyone", Created: at, Updated: at}
	for i := range n {
		g.Members = append(g.Members, hex.EncodeToString(fmt.Appendf(nil, "%016d", i)))
	}
	v, err := json.Marshal(&g)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// BenchmarkGroupCodec reads and writes the record of a group of 50,000
// members (1.75 MB), which every change to the group does inside the
// write transaction (a read by the SCIM handler and one by PutGroup, a
// write by PutGroup), with decodeGroup and encodeGroup and with
// encoding/json.
//
//	go test -run '^$' -bench BenchmarkGroupCodec ./store/bolt/
func BenchmarkGroupCodec(b *testing.B) {
	v := largeGroupValue(b, 50_000)
	g, err := decodeGroup(v)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"decodeGroup", func() error { _, err := decodeGroup(v); return err }},
		{"json.Unmarshal", func() error { return json.Unmarshal(v, new(store.Group)) }},
		{"encodeGroup", func() error { _, err := encodeGroup(g); return err }},
		{"json.Marshal", func() error { _, err := json.Marshal(g); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(v)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzEncodeGroup: encodeGroup writes the bytes json.Marshal writes.
func FuzzEncodeGroup(f *testing.F) {
	f.Add("g1", "everyone", "", "a\x00b", "c")
	f.Add("g2", ` "admins" <&>`, "x-1", "0123456789abcdef", "caf\u00e9")
	f.Add("g3", "a,\"created\":", ",\"created\":", `"`, "<b>")
	// Each character json.Marshal escapes for HTML alone in a member ID
	// (beside a plain one), where encodeGroup must not write it as it is.
	f.Add("g4", "x", "", "a<b", "c")
	f.Add("g5", "x", "", "a>b", "c")
	f.Add("g6", "x", "", "a&b", "c")
	f.Add("", "", "", "", "")
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	f.Fuzz(func(t *testing.T, id, name, externalID, m1, m2 string) {
		for _, members := range [][]string{nil, {}, {m1}, {m1, m2}} {
			g := &store.Group{ID: id, IdP: "entra", DisplayName: name, ExternalID: externalID, Members: members, Created: at}
			got, err := encodeGroup(g)
			want, wantErr := json.Marshal(g)
			if err != nil || wantErr != nil || string(got) != string(want) {
				t.Fatalf("encodeGroup(%#v) = %s, %v; json.Marshal %s, %v", g, got, err, want, wantErr)
			}
		}
	})
}

// PutGroup looks up only the members who join: the others are members
// already, which the store keeps users (DeleteUser takes a user out of
// every group). A group of 50,000 looked every member up on each change.
// Shown on a store damaged under it: a member's user record removed
// behind the store's back no longer stops other changes to the group (a
// member joining, a rename, that member leaving; `caddy sso check --store`
// reports it), while a joining member who is no user is still refused.
func TestPutGroupLooksUpOnlyJoiningMembers(t *testing.T) {
	db := openTest(t)
	var ids []string
	for i := range 4 {
		u := &store.User{Email: fmt.Sprintf("u%d@example.com", i), Active: true, Source: store.SourceSCIM, IdP: "entra"}
		putUser(t, db, u)
		ids = append(ids, u.ID)
	}
	g := &store.Group{IdP: "entra", DisplayName: "G", Members: ids[:2]}
	update(t, db, func(tx store.Tx) error { return tx.PutGroup(g) })
	if err := db.bdb.Update(func(btx *bolt.Tx) error { return btx.Bucket(bucketUsers).Delete([]byte(ids[1])) }); err != nil {
		t.Fatal(err)
	}
	g.Members = append(slices.Clone(g.Members), ids[2])
	update(t, db, func(tx store.Tx) error { return tx.PutGroup(g) })
	var got *store.Group
	view(t, db, func(tx store.Tx) (err error) { got, err = tx.Group(g.ID); return err })
	if want := store.NormalMembers(ids[:3]); !slices.Equal(got.Members, want) {
		t.Errorf("members %v, want %v", got.Members, want)
	}
	// A rename touches every member, the one who is no user too; and that
	// one may leave.
	g.DisplayName = "G renamed"
	if err := db.Update(t.Context(), func(tx store.Tx) error { return tx.PutGroup(g) }); err != nil {
		t.Errorf("rename of a group with a member who is no user: %v", err)
	}
	g.Members = store.NormalMembers([]string{ids[0], ids[2]})
	if err := db.Update(t.Context(), func(tx store.Tx) error { return tx.PutGroup(g) }); err != nil {
		t.Errorf("the member who is no user leaves: %v", err)
	}
	view(t, db, func(tx store.Tx) (err error) { got, err = tx.Group(g.ID); return err })
	if got.DisplayName != "G renamed" || !slices.Equal(got.Members, g.Members) {
		t.Errorf("group %q, members %v; want %q, %v", got.DisplayName, got.Members, "G renamed", g.Members)
	}
	g.Members = append(slices.Clone(g.Members), "no-such-user")
	err := db.Update(t.Context(), func(tx store.Tx) error { return tx.PutGroup(g) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a joining member who is no user: %v, want ErrNotFound", err)
	}
}

// decodeGroup reads what PutGroup writes itself, every field set, and
// encodeGroup writes it as json.Marshal does: a field added to store.Group
// needs its key in fieldIndex (or every read of a group would go to
// json.Unmarshal again), and one added before created would move the
// members encodeGroup writes.
func TestReadGroupTakesEveryField(t *testing.T) {
	var g store.Group
	v := reflect.ValueOf(&g).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Interface().(type) {
		case string:
			f.SetString(v.Type().Field(i).Name)
		case []string:
			f.Set(reflect.ValueOf([]string{"a", "b"}))
		case time.Time:
			f.Set(reflect.ValueOf(time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)))
		default:
			t.Fatalf("store.Group.%s: a field of a type readGroup does not read", v.Type().Field(i).Name)
		}
	}
	b, err := json.Marshal(&g)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := readGroup(b)
	if !ok || !reflect.DeepEqual(*got, g) {
		t.Errorf("readGroup(%s) = %+v, %v; want %+v", b, got, ok, g)
	}
	if e, err := encodeGroup(&g); err != nil || string(e) != string(b) {
		t.Errorf("encodeGroup(%+v) = %s, %v; json.Marshal %s", g, e, err, b)
	}
	if _, ok := readGroup(largeGroupValue(t, 100)); !ok {
		t.Error("readGroup does not read a group as PutGroup writes it")
	}
}
