package scim

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-sso/caddy-sso/store"
)

// listQuery holds the query parameters of a list request.
type listQuery struct {
	filter     expr // nil: no filter
	startIndex int  // 1-based
	count      int
	attributes string
	excluded   string
}

func parseListQuery(rt *resourceType, r *http.Request) (listQuery, error) {
	q := r.URL.Query()
	lq := listQuery{startIndex: 1, count: DefaultCount, attributes: q.Get("attributes"), excluded: q.Get("excludedAttributes")}
	if s := q.Get("startIndex"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return lq, invalidValue("startIndex %q is not an integer", s)
		}
		lq.startIndex = max(n, 1) // RFC 7644 3.4.2.4: below 1 means 1
	}
	if s := q.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return lq, invalidValue("count %q is not an integer", s)
		}
		lq.count = min(max(n, 0), MaxResults) // negative means 0
	}
	if s := q.Get("filter"); s != "" {
		f, err := parseFilter(rt, s)
		if err != nil {
			return lq, err
		}
		lq.filter = f
	}
	if q.Get("sortBy") != "" {
		return lq, errorf(http.StatusBadRequest, "invalidValue", "sorting is not supported; results come in a stable order")
	}
	return lq, nil
}

func listResponse(total, startIndex int, resources []any) map[string]any {
	if resources == nil {
		resources = []any{} // "Resources": [] even when empty
	}
	return map[string]any{
		"schemas":      []any{urnListResponse},
		"totalResults": total,
		"startIndex":   startIndex,
		"itemsPerPage": len(resources),
		"Resources":    resources,
	}
}

// pageOf cuts the 1-based page out of all matches.
func pageOf[T any](all []T, startIndex, count int) []T {
	from := startIndex - 1
	if from >= len(all) || count == 0 {
		return nil
	}
	return all[from:min(from+count, len(all))]
}

// notIndexed is the answer to a filter no index can serve.
func notIndexed(kind string) *Error {
	if kind == "User" {
		return invalidFilter("filters must name userName, externalId, id or emails.value with eq " +
			"(combined with and, or both sides of or); other filters would need a scan of every user")
	}
	return invalidFilter("filters must name displayName, externalId, id or members.value with eq " +
		"(combined with and, or both sides of or)")
}

// indexKey extracts the attribute and value an index can look up from one
// comparison: attr eq "v", attr.value eq "v", attr[value eq "v"] and
// attr[type eq "work"].value eq "v" all give (attr.value, v).
func indexKey(e *cmpExpr) (attr, value string, ok bool) {
	if e.path.urn != "" {
		return "", "", false
	}
	if e.op == "" && e.path.filter != nil {
		// A bare value path: some element has value eq "v".
		return valueEquality(e.path.attr, e.path.filter)
	}
	v, isString := e.value.(string)
	if e.op != "eq" || !isString {
		return "", "", false
	}
	switch e.path.sub {
	case "":
		return e.path.attr, v, true
	case "value":
		return e.path.attr + ".value", v, true
	}
	return "", "", false
}

// valueEquality finds `value eq "v"` in a value filter, alone or in an and.
func valueEquality(attr string, f expr) (string, string, bool) {
	switch f := f.(type) {
	case *cmpExpr:
		v, isString := f.value.(string)
		if f.op == "eq" && isString && strings.EqualFold(f.path.attr, "value") && f.path.urn == "" && f.path.sub == "" && f.path.filter == nil {
			return attr + ".value", v, true
		}
	case *logicExpr:
		if f.op == "and" {
			if a, v, ok := valueEquality(attr, f.l); ok {
				return a, v, ok
			}
			return valueEquality(attr, f.r)
		}
	}
	return "", "", false
}

// candidates returns the IDs the indexes give for e: a superset of the
// matches, checked afterwards against the whole filter. ok is false when
// no index covers e.
func candidates(e expr, lookup func(attr, value string) ([]string, bool, error)) ([]string, bool, error) {
	switch e := e.(type) {
	case *logicExpr:
		l, lok, err := candidates(e.l, lookup)
		if err != nil {
			return nil, false, err
		}
		if e.op == "and" {
			if lok {
				return l, true, nil
			}
			return candidates(e.r, lookup)
		}
		r, rok, err := candidates(e.r, lookup)
		if err != nil || !lok || !rok {
			return nil, false, err
		}
		out := append(slices.Clone(l), r...)
		slices.Sort(out)
		return slices.Compact(out), true, nil
	case *cmpExpr:
		attr, v, ok := indexKey(e)
		if !ok {
			return nil, false, nil
		}
		return lookup(attr, v)
	}
	return nil, false, nil
}

// one turns a single-record index read into a candidate list.
func one(id string, err error) ([]string, bool, error) {
	if errors.Is(err, store.ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return []string{id}, true, nil
}

func (h *Handler) userLookup(tx store.Tx) func(attr, value string) ([]string, bool, error) {
	return func(attr, value string) ([]string, bool, error) {
		var (
			u   *store.User
			err error
		)
		switch attr {
		case "userName":
			u, err = tx.UserByUserName(value)
		case "externalId":
			u, err = tx.UserByExternalID(h.cfg.IdP, value)
		case "id":
			u, err = tx.User(value)
		case "emails", "emails.value":
			// The email index holds each user's primary address, the one
			// Entra and Okta send as the work email.
			u, err = tx.UserByEmail(value)
		default:
			return nil, false, nil
		}
		if err != nil {
			return one("", err)
		}
		return one(u.ID, nil)
	}
}

func (h *Handler) groupLookup(tx store.Tx) func(attr, value string) ([]string, bool, error) {
	return func(attr, value string) ([]string, bool, error) {
		var (
			g   *store.Group
			err error
		)
		switch attr {
		case "displayName":
			g, err = tx.GroupByName(h.cfg.IdP, value)
		case "externalId":
			g, err = tx.GroupByExternalID(h.cfg.IdP, value)
		case "id":
			g, err = tx.Group(value)
		case "members", "members.value":
			refs, err := tx.GroupsOfUser(value)
			if err != nil {
				return nil, false, fmt.Errorf("groups of user: %w", err)
			}
			ids := make([]string, len(refs))
			for i, r := range refs {
				ids[i] = r.ID
			}
			return ids, true, nil
		default:
			return nil, false, nil
		}
		if err != nil {
			return one("", err)
		}
		return one(g.ID, nil)
	}
}
