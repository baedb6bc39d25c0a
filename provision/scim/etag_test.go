package scim_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// doHeaders is e.do with request headers, without moving the env's clock
// (safe from several goroutines once the env is set up).
func (e *env) doHeaders(method, path, body string, hdr map[string]string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+"/scim/v2"+e.expand(path), strings.NewReader(e.expand(body)))
	if err != nil {
		e.t.Error(err)
		return resp{}
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Error(err)
		return resp{}
	}
	if res.StatusCode == http.StatusNotModified {
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	}
	return e.read(res)
}

// RFC 7643 3.1: meta.version is the ETag header of the same answer, on
// every single-resource answer, whatever attributes it shows; RFC 7644
// 3.14 and ServiceProviderConfig say ETags are supported.
func TestETagIsMetaVersion(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	check := func(what string, r resp) string {
		t.Helper()
		v, _ := at(r.body, "meta", "version").(string)
		if v == "" || r.header.Get("ETag") != v {
			t.Errorf("%s: ETag %q, meta.version %q", what, r.header.Get("ETag"), v)
		}
		return v
	}
	r := e.must(201, "POST", "/Users", `{"userName":"ada"}`)
	e.vars["u"] = r.body["id"].(string)
	created := check("POST /Users", r)
	check("GET /Users/id", e.must(200, "GET", "/Users/{{u}}", ""))
	put := check("PUT /Users/id", e.must(200, "PUT", "/Users/{{u}}", `{"userName":"ada","title":"Engineer"}`))
	patched := check("PATCH /Users/id", e.must(200, "PATCH", "/Users/{{u}}", patchBody(`{"op":"replace","path":"title","value":"Lead"}`)))
	if created == put || put == patched {
		t.Errorf("versions %s, %s, %s: each write must change it", created, put, patched)
	}
	if got := e.must(200, "GET", "/Users/{{u}}?attributes=userName", "").header.Get("ETag"); got != patched {
		t.Errorf("GET with attributes=userName (no meta shown): ETag %q, want %q", got, patched)
	}
	if got := e.must(200, "GET", "/Users/{{u}}?excludedAttributes=meta", "").header.Get("ETag"); got != patched {
		t.Errorf("GET with excludedAttributes=meta: ETag %q, want %q", got, patched)
	}
	r = e.must(201, "POST", "/Groups", `{"displayName":"staff"}`)
	e.vars["g"] = r.body["id"].(string)
	check("POST /Groups", r)
	check("GET /Groups/id", e.must(200, "GET", "/Groups/{{g}}", ""))
	check("PUT /Groups/id", e.must(200, "PUT", "/Groups/{{g}}", `{"displayName":"staff2"}`))
	if got := e.must(200, "GET", "/Users", "").header.Get("ETag"); got != "" {
		t.Errorf("a list has no one version, but ETag %q", got)
	}
	if got := at(e.must(200, "GET", "/ServiceProviderConfig", "").body, "etag", "supported"); got != true {
		t.Errorf("ServiceProviderConfig etag.supported = %v", got)
	}
}

// RFC 7644 3.14: a PUT, PATCH or DELETE whose If-Match does not name the
// current version is refused with 412 and changes nothing; "*", the
// version with or without W/, or a list holding it are taken.
func TestIfMatch(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["u"] = e.must(201, "POST", "/Users", `{"userName":"ada","title":"Engineer"}`).body["id"].(string)
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"staff"}`).body["id"].(string)
	stale := map[string]string{"If-Match": `W/"stale"`}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/Users/{{u}}", `{"userName":"ada","title":"Overwritten"}`},
		{"PATCH", "/Users/{{u}}", patchBody(`{"op":"replace","path":"title","value":"Overwritten"}`)},
		{"DELETE", "/Users/{{u}}", ""},
		{"PUT", "/Groups/{{g}}", `{"displayName":"overwritten"}`},
		{"PATCH", "/Groups/{{g}}", patchBody(`{"op":"replace","path":"displayName","value":"overwritten"}`)},
		{"DELETE", "/Groups/{{g}}", ""},
	} {
		r := e.doHeaders(c.method, c.path, c.body, stale)
		scimError(t, r, http.StatusPreconditionFailed, "")
	}
	if got := e.must(200, "GET", "/Users/{{u}}", "").body["title"]; got != "Engineer" {
		t.Errorf("after refused writes, title %v", got)
	}
	if got := e.must(200, "GET", "/Groups/{{g}}", "").body["displayName"]; got != "staff" {
		t.Errorf("after refused writes, displayName %v", got)
	}

	ver := e.must(200, "GET", "/Users/{{u}}", "").header.Get("ETag")
	r := e.doHeaders("PUT", "/Users/{{u}}", `{"userName":"ada","title":"One"}`, map[string]string{"If-Match": ver})
	if r.status != 200 {
		t.Fatalf("PUT with the current If-Match: %d %s", r.status, r.raw)
	}
	ver = r.header.Get("ETag")
	bare := strings.TrimPrefix(ver, "W/")
	r = e.doHeaders("PATCH", "/Users/{{u}}", patchBody(`{"op":"replace","path":"title","value":"Two"}`), map[string]string{"If-Match": `"other", ` + bare})
	if r.status != 200 {
		t.Fatalf("PATCH with a list holding the version without W/: %d %s", r.status, r.raw)
	}
	if r = e.doHeaders("PUT", "/Users/{{u}}", `{"userName":"ada","title":"Three"}`, map[string]string{"If-Match": "*"}); r.status != 200 {
		t.Fatalf("PUT with If-Match *: %d %s", r.status, r.raw)
	}
	if r = e.doHeaders("DELETE", "/Users/{{u}}", "", map[string]string{"If-Match": r.header.Get("ETag")}); r.status != 204 {
		t.Fatalf("DELETE with the current If-Match: %d %s", r.status, r.raw)
	}
	if r = e.doHeaders("PUT", "/Users/{{u}}", `{"userName":"ada"}`, map[string]string{"If-Match": "*"}); r.status != 404 {
		t.Errorf("PUT If-Match * of a deleted user: %d, want 404", r.status)
	}
}

// RFC 7644 3.14: a GET whose If-None-Match names the current version is
// answered 304 without a body.
func TestIfNoneMatch(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["u"] = e.must(201, "POST", "/Users", `{"userName":"ada"}`).body["id"].(string)
	ver := e.must(200, "GET", "/Users/{{u}}", "").header.Get("ETag")
	r := e.doHeaders("GET", "/Users/{{u}}", "", map[string]string{"If-None-Match": ver})
	if r.status != http.StatusNotModified || r.raw != "" || r.header.Get("ETag") != ver {
		t.Errorf("GET If-None-Match current: %d ETag %q body %q, want 304 with the ETag and no body", r.status, r.header.Get("ETag"), r.raw)
	}
	if r = e.doHeaders("GET", "/Users/{{u}}", "", map[string]string{"If-None-Match": `W/"old"`}); r.status != 200 {
		t.Errorf("GET If-None-Match stale: %d, want 200", r.status)
	}
}

// Two writes that both name the version they read: the check is in the
// write transaction, so exactly one wins and the other gets 412, never
// both 200 (a lost update).
func TestIfMatchConcurrentPUTs(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["u"] = e.must(201, "POST", "/Users", `{"userName":"ada"}`).body["id"].(string)
	for round := range 10 {
		ver := e.must(200, "GET", "/Users/{{u}}", "").header.Get("ETag")
		var wg sync.WaitGroup
		status := make([]int, 2)
		start := make(chan struct{})
		for i, title := range []string{"one", "two"} {
			wg.Go(func() {
				<-start
				body := `{"userName":"ada","title":"` + title + `"}`
				status[i] = e.doHeaders("PUT", "/Users/{{u}}", body, map[string]string{"If-Match": ver}).status
			})
		}
		close(start)
		wg.Wait()
		ok, refused := 0, 0
		for _, s := range status {
			switch s {
			case 200:
				ok++
			case http.StatusPreconditionFailed:
				refused++
			}
		}
		if ok != 1 || refused != 1 {
			t.Fatalf("round %d: statuses %v, want one 200 and one 412", round, status)
		}
		e.must(200, "PUT", "/Users/{{u}}", `{"userName":"ada","title":"reset"}`)
	}
}
