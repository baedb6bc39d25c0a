package scim

// Fuzz targets for the SCIM parsers: filters, PATCH bodies and resource
// JSON. They live inside the package because their properties are about
// its internals: a parsed filter prints back to itself, the index answers
// exactly what a full scan would, a document turned into a record renders
// back to the same record.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

const fuzzToken = "fuzz-secret-token-0123456789"

// fuzzEnv is a Handler over a real bolt file holding a few users and
// groups whose values exercise case folding (a Kelvin sign, a dotless i),
// which is where an index and a filter most easily disagree.
type fuzzEnv struct {
	h     *Handler
	db    *bolt.DB
	user  *store.User  // a stored user PATCH targets start from
	group *store.Group // a stored group
}

var fuzzUsers = []string{
	`{"userName":"alice@x.io","externalId":"e-alice","active":true,"name":{"givenName":"Alice","familyName":"Liddell"},
		"emails":[{"value":"alice@x.io","type":"work","primary":true}],"title":"Queen",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D","manager":{"value":"m-1"}}}`,
	`{"userName":"Bob@X.io","externalId":"E-Bob","active":false}`,
	`{"userName":"carol","externalId":"e-carol","active":true,"name":{"givenName":"Carol"},
		"emails":[{"value":"Carol@X.io","type":"work","primary":true}],"phoneNumbers":[{"value":"+1 555","type":"mobile"}]}`,
	`{"userName":"\u212aelvin","externalId":"k","displayName":"Kelvin","emails":[{"value":"\u212a@x.io","primary":true}]}`,
	`{"userName":"\u0130stanbul","externalId":"\u0131","nickName":"12"}`,
}

var fuzzGroups = []string{
	`{"displayName":"Engineering","externalId":"g-eng","members":[{"value":"{{0}}"},{"value":"{{2}}"}]}`,
	`{"displayName":"admins","externalId":"G-ADM","members":[{"value":"{{1}}"}]}`,
	`{"displayName":"Empty"}`,
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	db := backendtest.OpenBolt(tb)
	now := func() time.Time { return time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC) }
	sessions := session.New(db, session.Config{}, zap.NewNop(), now)
	accounts := &account.Service{Store: db, Cache: sessions, Logger: zap.NewNop(), Now: now,
		SCIMManaged: func(name string) bool { return name == "entra" }}
	h, err := New(Config{IdP: "entra", Token: fuzzToken, Accounts: accounts, Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	e := &fuzzEnv{h: h, db: db}
	var ids []string
	for _, body := range fuzzUsers {
		ids = append(ids, e.create(tb, "/Users", body))
	}
	for _, body := range fuzzGroups {
		for i, id := range ids {
			body = strings.ReplaceAll(body, fmt.Sprintf("{{%d}}", i), id)
		}
		e.create(tb, "/Groups", body)
	}
	err = db.View(context.Background(), func(tx store.Tx) error {
		var err error
		if e.user, err = tx.User(ids[0]); err != nil {
			return err
		}
		gs, err := tx.GroupsOfUser(ids[0])
		if err != nil || len(gs) == 0 {
			return fmt.Errorf("groups of the first user: %v, %w", gs, err)
		}
		e.group, err = tx.Group(gs[0].ID)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func (e *fuzzEnv) create(tb testing.TB, path, body string) string {
	tb.Helper()
	rec := e.do(http.MethodPost, path, body)
	var out map[string]any
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		tb.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
	}
	return out["id"].(string)
}

func (e *fuzzEnv) do(method, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "https://scim.example.com/scim/v2"+path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+fuzzToken)
	if body != "" {
		r.Header.Set("Content-Type", "application/scim+json")
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	return rec
}

// scimError fails unless err is a *Error with a 4xx status and one of the
// scimTypes given ("" allowed when listed).
func scimError(t *testing.T, what string, err error, types ...string) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("%s: untyped error %T: %v", what, err, err)
	}
	if se.Status < 400 || se.Status > 499 || !slices.Contains(types, se.Type) {
		t.Fatalf("%s: error %d %q (%v), want 4xx with a type in %q", what, se.Status, se.Type, se, types)
	}
}

// printFilter writes e back in filter syntax, with parentheses only where
// the grammar needs them, so the printed filter nests no deeper than the
// original (the parser bounds nesting).
func printFilter(e expr) string {
	switch e := e.(type) {
	case *logicExpr:
		l, r := printFilter(e.l), printFilter(e.r)
		if x, ok := e.l.(*logicExpr); ok && e.op == "and" && x.op == "or" {
			l = "(" + l + ")"
		}
		if x, ok := e.r.(*logicExpr); ok && (e.op == "and" || x.op == "or") {
			r = "(" + r + ")"
		}
		return l + " " + e.op + " " + r
	case *notExpr:
		return "not (" + printFilter(e.x) + ")"
	case *cmpExpr:
		s := printPath(e.path)
		switch e.op {
		case "":
			return s
		case "pr":
			return s + " pr"
		}
		var v string
		switch x := e.value.(type) {
		case nil:
			v = "null"
		case bool:
			v = fmt.Sprint(x)
		case json.Number:
			v = x.String()
		case string:
			b, _ := json.Marshal(x)
			v = string(b)
		default:
			panic(fmt.Sprintf("filter value of type %T", x))
		}
		return s + " " + e.op + " " + v
	}
	panic(fmt.Sprintf("filter node %T", e))
}

func printPath(p fpath) string {
	s := p.attr
	if p.urn != "" {
		s = p.urn + ":" + p.attr
	}
	if p.filter != nil {
		s += "[" + printFilter(p.filter) + "]"
	}
	if p.sub != "" {
		s += "." + p.sub
	}
	return s
}

// FuzzFilter parses arbitrary filters for users and groups. Properties:
//   - a refused filter is a 400 invalidFilter *Error;
//   - an accepted filter prints back to a filter that parses to the same
//     tree (nothing is dropped or reinterpreted on the way in);
//   - evaluating it on stored resources does not panic, and "not" is its
//     negation;
//   - the list endpoint answers it with 400 invalidFilter (no index serves
//     it) or with exactly the resources a full scan finds: the index never
//     loses a match or adds one. Never a 500.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		`userName eq "alice@x.io"`,
		`userName eq "ALICE@x.io" and active eq true`,
		`USERNAME EQ "carol" or externalId eq "E-Bob"`,
		`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "carol"`,
		`emails[type eq "work"].value eq "carol@x.io"`,
		`emails[type eq "work" and value eq "CAROL@X.IO"]`,
		`emails.value eq "alice@x.io" and not (name.givenName pr)`,
		`emails eq "\u212a@x.io"`,
		`userName eq "kelvin"`,
		`userName eq "istanbul" or userName eq "\u0131stanbul"`,
		`externalId eq "\u0130"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D" and userName eq "alice@x.io"`,
		`displayName eq "engineering"`,
		`members[value eq "x"] and externalId eq "g-eng"`,
		`members.value eq "x" or displayName eq "Empty"`,
		`title gt "A" and userName sw "a"`,
		`nickName eq 12 and meta.created ge "2025-01-01T00:00:00Z"`,
		`((userName eq "a") or (userName eq "b")) and active eq null`,
		`id eq "x"`,
		`x[y[z eq 1]]`,
		`userName eq "unterminated`,
		strings.Repeat("(", 40) + `userName eq "a"` + strings.Repeat(")", 40),
	} {
		f.Add(s)
	}
	e := newFuzzEnv(f)

	f.Fuzz(func(t *testing.T, filter string) {
		for _, rt := range []*resourceType{e.h.users, e.h.groups} {
			ex, err := parseFilter(rt, filter)
			if err != nil {
				scimError(t, "parseFilter", err, "invalidFilter")
			} else {
				printed := printFilter(ex)
				again, err := parseFilter(rt, printed)
				if err != nil {
					t.Fatalf("%s filter %q printed as %q, which does not parse: %v", rt.Name, filter, printed, err)
				}
				if !reflect.DeepEqual(ex, again) {
					t.Fatalf("%s filter %q printed as %q, which parses differently", rt.Name, filter, printed)
				}
			}
			e.checkList(t, rt, filter, ex)
		}
	})
}

// checkList compares the list endpoint's answer to filter with a scan of
// every stored resource.
func (e *fuzzEnv) checkList(t *testing.T, rt *resourceType, filter string, ex expr) {
	t.Helper()
	if len(filter) > 2*maxFilterLen {
		// Refused by parseFilter above, as the endpoint refuses it; a
		// request URL made of a multi-megabyte input would only exercise
		// the allocator.
		return
	}
	rec := e.do(http.MethodGet, rt.Endpoint+"?count=1000&filter="+url.QueryEscape(filter), "")
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("list response is not JSON: %d %s", rec.Code, rec.Body)
	}
	switch {
	case filter == "" && rec.Code == http.StatusOK:
		return // no filter: the whole collection
	case rec.Code == http.StatusBadRequest && body["scimType"] == "invalidFilter":
		return
	case rec.Code != http.StatusOK || ex == nil:
		t.Fatalf("%s filter %q: status %d %s (parse error: %v)", rt.Name, filter, rec.Code, rec.Body, ex == nil)
	}
	var got []string
	for _, r := range body["Resources"].([]any) {
		got = append(got, r.(map[string]any)["id"].(string))
	}
	want := e.scan(t, rt, ex)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%s filter %q: the endpoint found %v, a scan finds %v", rt.Name, filter, got, want)
	}
	if n, _ := body["totalResults"].(float64); int(n) != len(want) {
		t.Fatalf("%s filter %q: totalResults %v for %d matches", rt.Name, filter, body["totalResults"], len(want))
	}
}

// scan evaluates ex on every stored resource, rendered as a response.
func (e *fuzzEnv) scan(t *testing.T, rt *resourceType, ex expr) []string {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "https://scim.example.com/scim/v2"+rt.Endpoint, nil)
	var ids []string
	err := e.db.View(context.Background(), func(tx store.Tx) error {
		var docs []map[string]any
		if rt == e.h.users {
			users, _, err := tx.ListUsers("entra", 1, 1000)
			if err != nil {
				return err
			}
			for _, u := range users {
				d, err := e.h.userOutTx(tx, r, u)
				if err != nil {
					return err
				}
				docs = append(docs, d)
			}
		} else {
			groups, _, err := tx.ListGroups("entra", 1, 1000)
			if err != nil {
				return err
			}
			for _, g := range groups {
				docs = append(docs, e.h.groupOut(r, g))
			}
		}
		for _, d := range docs {
			m := matches(scope{rt: rt}, ex, d)
			if matches(scope{rt: rt}, &notExpr{x: ex}, d) == m {
				return fmt.Errorf("not(filter) is not the negation of the filter on %v", d["id"])
			}
			if m {
				ids = append(ids, d["id"].(string))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// readJSON decodes body as the handler reads request bodies.
func (e *fuzzEnv) readJSON(body string) (map[string]any, error) {
	r := httptest.NewRequest(http.MethodPost, "https://scim.example.com/scim/v2/Users", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/scim+json")
	return e.h.readBody(r)
}

// roundTripUser checks that a record made from a document renders back to
// a document that makes the same record, and that its email is one of its
// emails.
func (e *fuzzEnv) roundTripUser(t *testing.T, u *store.User, mode int) {
	t.Helper()
	doc, err := e.h.userDoc(u)
	if err != nil {
		t.Fatalf("stored user does not render: %v", err)
	}
	if _, err := json.Marshal(doc); err != nil {
		t.Fatalf("rendered user does not encode: %v", err)
	}
	old := u
	if mode == modeCreate {
		old = nil
	}
	again, err := e.h.userFromDoc(doc, old, mode)
	if err != nil {
		t.Fatalf("rendered user is refused: %v\n%v", err, doc)
	}
	if !reflect.DeepEqual(u, again) {
		t.Fatalf("user changes on a round trip:\n%+v\n%+v", u, again)
	}
	if u.Email != "" && !slices.ContainsFunc(u.Emails, func(m store.Email) bool { return m.Value == u.Email }) {
		t.Fatalf("email %q is none of %v", u.Email, u.Emails)
	}
}

func (e *fuzzEnv) roundTripGroup(t *testing.T, g *store.Group) {
	t.Helper()
	doc := e.h.groupDoc(g)
	again, err := e.h.groupFromDoc(doc, g)
	if err != nil {
		t.Fatalf("rendered group is refused: %v\n%v", err, doc)
	}
	if !reflect.DeepEqual(g, again) {
		t.Fatalf("group changes on a round trip:\n%+v\n%+v", g, again)
	}
}

// FuzzResource decodes arbitrary User and Group bodies as POST does.
// Properties: a refused body is a 4xx *Error; an accepted one becomes a
// record that renders back to a document making the same record.
func FuzzResource(f *testing.F) {
	for _, s := range fuzzUsers {
		f.Add(s, false)
	}
	for _, s := range fuzzGroups {
		f.Add(s, true)
	}
	f.Add(`{"userName":" spaced ","name":{"givenName":1}}`, false)
	f.Add(`{"userName":"a","emails":[{"value":"a@x.io","primary":"True"},{"value":"b@x.io","type":"WORK","primary":"False"}]}`, false)
	f.Add(`{"USERNAME":"a","Active":"false","NAME":{"GIVENNAME":"A","familyname":"B","middleName":"C"}}`, false)
	f.Add(`{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:user":{"Department":"x"}}`, false)
	f.Add(`{"userName":"a","emails":"a@x.io"}`, false)
	f.Add(`{"displayName":"g","members":[{"value":""}]}`, true)
	f.Add(`{"displayName":"g","members":{"value":"x"}} {}`, true)
	f.Add(`[]`, false)
	e := newFuzzEnv(f)

	f.Fuzz(func(t *testing.T, body string, group bool) {
		doc, err := e.readJSON(body)
		if err != nil {
			scimError(t, "reading the body", err, "invalidSyntax", "")
			return
		}
		if group {
			normalize(e.h.groups, doc)
			g, err := e.h.groupFromDoc(doc, nil)
			if err != nil {
				scimError(t, "groupFromDoc", err, "invalidValue")
				return
			}
			e.roundTripGroup(t, g)
			return
		}
		normalize(e.h.users, doc)
		u, err := e.h.userFromDoc(doc, nil, modeCreate)
		if err != nil {
			scimError(t, "userFromDoc", err, "invalidValue")
			return
		}
		e.roundTripUser(t, u, modeCreate)
	})
}

// FuzzPatch applies arbitrary PATCH bodies to a stored user or group, as
// the PATCH endpoint does. Properties: a refused PATCH is a 4xx *Error
// (never a panic or a 500); an accepted one keeps the record's identity
// (id, IdP, source) and yields a record that renders back to itself.
func FuzzPatch(f *testing.F) {
	for _, s := range []string{
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
		`{"Operations":[{"op":"replace","path":"emails[type eq \"work\"].value","value":"new@x.io"}]}`,
		`{"Operations":[{"op":"add","path":"emails[type eq \"home\"].value","value":"home@x.io"}]}`,
		`{"Operations":[{"op":"remove","path":"emails[type eq \"work\"]"}]}`,
		`{"Operations":[{"op":"replace","value":{"name.givenName":"Al","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Ops","active":true}}]}`,
		`{"Operations":[{"op":"add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m-2"}}}}]}`,
		`{"Operations":[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"m-3"}}]}`,
		`{"Operations":[{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}]}`,
		`{"Operations":[{"op":"replace","path":"userName","value":"renamed@x.io"},{"op":"remove","path":"name.familyName"}]}`,
		`{"Operations":[{"op":"add","path":"phoneNumbers","value":[{"value":"1","primary":true},{"value":"2","primary":"true"}]}]}`,
		`{"Operations":[{"op":"replace","path":"groups","value":[]}]}`,
		`{"Operations":[{"op":"add","path":"members","value":[{"value":"u-1"},{"value":"u-2"}]}]}`,
		`{"Operations":[{"op":"remove","path":"members[value eq \"u-1\"]"}]}`,
		`{"Operations":[{"op":"remove","path":"members","value":[{"value":"u-1"}]}]}`,
		`{"Operations":[{"op":"replace","value":{"id":"x","displayName":"Renamed"}}]}`,
		`{"Operations":[{"op":"replace","path":"displayName"}]}`,
		`{"Operations":[]}`,
		`{"Operations":[{"op":"move","path":"x"}]}`,
	} {
		f.Add(s, strings.Contains(s, "members") || strings.Contains(s, "displayName"))
	}
	e := newFuzzEnv(f)
	patchErrors := []string{"invalidSyntax", "invalidPath", "invalidValue", "noTarget", "mutability", "tooMany"}

	f.Fuzz(func(t *testing.T, body string, group bool) {
		m, err := e.readJSON(body)
		if err != nil {
			scimError(t, "reading the body", err, patchErrors...)
			return
		}
		ops, err := parsePatch(m)
		if err != nil {
			scimError(t, "parsePatch", err, patchErrors...)
			return
		}
		if group {
			old := *e.group
			old.Members = slices.Clone(old.Members)
			doc := e.h.groupDoc(&old)
			if err := applyPatch(e.h.groups, doc, ops); err != nil {
				scimError(t, "applyPatch", err, patchErrors...)
				return
			}
			g, err := e.h.groupFromDoc(doc, &old)
			if err != nil {
				scimError(t, "groupFromDoc", err, patchErrors...)
				return
			}
			if g.ID != e.group.ID || g.IdP != e.group.IdP {
				t.Fatalf("PATCH changed the group's identity: %+v", g)
			}
			e.roundTripGroup(t, g)
			return
		}
		old := *e.user
		doc, err := e.h.userDoc(&old)
		if err != nil {
			t.Fatal(err)
		}
		if err := applyPatch(e.h.users, doc, ops); err != nil {
			scimError(t, "applyPatch", err, patchErrors...)
			return
		}
		u, err := e.h.userFromDoc(doc, &old, modePatch)
		if err != nil {
			scimError(t, "userFromDoc", err, patchErrors...)
			return
		}
		if u.ID != e.user.ID || u.IdP != e.user.IdP || u.Source != e.user.Source || !u.Created.Equal(e.user.Created) {
			t.Fatalf("PATCH changed the user's identity: %+v", u)
		}
		e.roundTripUser(t, u, modePatch)
	})
}
