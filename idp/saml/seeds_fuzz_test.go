package saml

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/fuzzseed"
)

// TestSAMLFuzzSeeds checks the committed seeds of the SAML fuzz targets:
// every "ok-" seed is accepted and every "bad-" seed refused by the same
// calls the targets make, so that the corpus keeps reaching past the
// signature check. With WRITE_FUZZ_SEEDS=1 it first regenerates the
// environment (testdata/fuzzenv) and the seeds from a fresh samltest IdP.
func TestSAMLFuzzSeeds(t *testing.T) {
	if fuzzseed.Writing() {
		writeSAMLFuzzSeeds(t)
	}
	s := loadFuzzSP(t)
	seen := map[string]int{}
	for _, target := range []string{"FuzzACS", "FuzzLogoutRequest", "FuzzLogoutResponse", "FuzzMetadata"} {
		files, err := filepath.Glob(filepath.Join(fuzzDir, target, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			name := filepath.Base(file)
			ok, bad := strings.HasPrefix(name, "ok-"), strings.HasPrefix(name, "bad-")
			if !ok && !bad {
				continue // a regression seed found by the fuzzer: its target replays it
			}
			seen[target]++
			v, err := fuzzseed.Read(file)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(target+"/"+name, func(t *testing.T) {
				s.replay.reset()
				var err error
				switch target {
				case "FuzzACS":
					var a *idp.Assertion
					a, _, err = fuzzCallback(s.p, s.replay, s.cookies, v[0].(string), v[1].(string))
					if err == nil && !signedIdentity(a) {
						t.Fatalf("accepted %q %v", a.Subject, a.Attributes)
					}
				case "FuzzLogoutRequest", "FuzzLogoutResponse":
					_, err = s.slo(v[0].(string), v[1].(string))
					if err == nil && (target == "FuzzLogoutRequest") != (len(s.ended) > 0) {
						t.Fatalf("ended %v", s.ended)
					}
				case "FuzzMetadata":
					_, err = ParseMetadata(v[0].([]byte), v[1].(string))
				}
				if ok && err != nil {
					t.Fatalf("refused: %v", err)
				}
				if bad && err == nil {
					t.Fatal("accepted")
				}
			})
		}
	}
	for _, target := range []string{"FuzzACS", "FuzzLogoutRequest", "FuzzLogoutResponse", "FuzzMetadata"} {
		if seen[target] < 3 {
			t.Errorf("%s has %d generated seeds (regenerate with %s=1)", target, seen[target], fuzzseed.EnvWrite)
		}
	}
}

// writeSAMLFuzzSeeds runs logins and logouts against a fresh samltest IdP
// on a fixed clock, and writes what the IdP sent, forged variants of it,
// and the environment the targets need to accept it.
func writeSAMLFuzzSeeds(t *testing.T) {
	for _, target := range []string{"FuzzACS", "FuzzLogoutRequest", "FuzzLogoutResponse", "FuzzMetadata"} {
		for _, prefix := range []string{"ok-", "bad-"} {
			old, _ := filepath.Glob(filepath.Join(fuzzDir, target, prefix+"*"))
			for _, f := range old {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	write := func(target, name string, values ...any) {
		t.Helper()
		if err := fuzzseed.Write(fuzzDir, target, name, values...); err != nil {
			t.Fatal(err)
		}
	}

	now := time.Now().UTC().Truncate(time.Second)
	srv, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.SetClock(func() time.Time { return now })
	// Single Logout over HTTP-Redirect only (as Entra ID offers it), so
	// that the SP sends its LogoutRequest, and the IdP its LogoutResponse,
	// in a query: the LogoutResponse seeds below are variants of one.
	srv.SetLogoutBindings(saml.HTTPRedirectBinding)
	for _, u := range fuzzUsers {
		srv.AddUser(u)
	}
	md, err := srv.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := GenerateKeyPair(fuzzHost)
	if err != nil {
		t.Fatal(err)
	}
	env := fuzzEnvFile{Now: now.Add(time.Second)}
	replay := newMemReplay()
	p := newFuzzProvider(t, md, kp, env.Now, &fuzzSP{})
	rec := httptest.NewRecorder()
	if err := p.Metadata(rec, httptest.NewRequest(http.MethodGet, fuzzBase+"metadata", nil), fuzzBase); err != nil {
		t.Fatal(err)
	}
	spMetadata := rec.Body.Bytes()
	if err := srv.RegisterServiceProvider(spMetadata); err != nil {
		t.Fatal(err)
	}
	// The browser follows the IdP's redirects but never reaches the SP:
	// what the IdP sends there is the seed.
	stopAtSP := func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == fuzzHost {
			return http.ErrUseLastResponse
		}
		return nil
	}
	// toSP returns what a browser would send the SP after GETting u at the
	// IdP: the query of a redirect, or the fields of an auto-posting form.
	toSP := func(b *browser, u string) (rawQuery, body string) {
		t.Helper()
		resp, err := b.c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if loc, err := resp.Location(); err == nil && loc.Host == fuzzHost {
			return loc.RawQuery, ""
		}
		pg := b.read(resp)
		action, fields := pg.form(t)
		if !strings.HasPrefix(action, "https://"+fuzzHost+"/") {
			t.Fatalf("IdP sent the browser to %s", action)
		}
		return "", fields.Encode()
	}

	// Real SP-initiated logins through the IdP's login form, in the three
	// shapes IdPs sign in.
	logins := map[string]*browser{}
	infos := map[string]idp.LogoutInfo{}
	for i, v := range []struct {
		name                        string
		signResponse, signAssertion bool
		encrypt                     bool
	}{
		{"okta-both-signed-encrypted", true, true, true},
		{"entra-assertion-signed", false, true, false},
		{"pingone-response-signed", true, false, false},
	} {
		u := fuzzUsers[i]
		srv.SetSigning(v.signResponse, v.signAssertion)
		srv.SetEncryption(v.encrypt, nil)
		rec := httptest.NewRecorder()
		if err := p.Begin(rec, httptest.NewRequest(http.MethodGet, "https://"+fuzzHost+"/app", nil), fuzzBase, idp.SignInRequest{ReturnTo: "/app"}); err != nil {
			t.Fatal(err)
		}
		loc, err := url.Parse(rec.Header().Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		var ar saml.AuthnRequest
		if err := xml.Unmarshal(decodeRedirect(t, loc.Query().Get("SAMLRequest")), &ar); err != nil {
			t.Fatal(err)
		}
		env.Flows = append(env.Flows, fuzzFlow{Kind: "login", RelayState: loc.Query().Get("RelayState"), RequestID: ar.ID, ReturnTo: "/app"})
		b := newBrowser(t)
		b.c.CheckRedirect = stopAtSP
		pg := b.get(loc.String())
		pg = b.submit(pg, url.Values{"username": {u.Username}, "password": {u.Password}})
		for range 5 {
			if !strings.Contains(pg.Body, `id="resume"`) {
				break
			}
			pg = b.submit(pg, nil)
		}
		action, fields := pg.form(t)
		if action != fuzzBase+"acs" {
			t.Fatalf("login %s: IdP posts to %s", v.name, action)
		}
		write("FuzzACS", "ok-login-"+v.name, fields.Get("SAMLResponse"), fields.Get("RelayState"))
		replay.reset()
		a, _, err := fuzzCallback(p, replay, rec.Result().Cookies(), fields.Get("SAMLResponse"), fields.Get("RelayState"))
		if err != nil {
			t.Fatalf("login %s: %v", v.name, err)
		}
		env.SessionIndexes = append(env.SessionIndexes, a.Logout.SessionID)
		logins[u.Username] = b
		infos[u.Username] = a.Logout
	}
	srv.SetSigning(true, true)
	srv.SetEncryption(true, nil)

	// Real IdP-initiated Single Logout of grace's IdP session: the IdP's
	// LogoutRequest to this SP.
	q, body := toSP(logins["grace"], srv.LogoutURL("https://"+fuzzHost+"/after-logout"))
	if !strings.Contains(q+body, "SAMLRequest") {
		t.Fatalf("IdP-initiated logout sent %q %q", q, body)
	}
	write("FuzzLogoutRequest", "ok-idp-initiated-real", q, body)

	// Real SP-initiated Single Logout of ada: the IdP's LogoutResponse.
	rec = httptest.NewRecorder()
	if sent, err := p.Logout(rec, httptest.NewRequest(http.MethodGet, fuzzBase+"logout", nil), fuzzBase, infos["ada"], "/bye"); !sent || err != nil {
		t.Fatalf("SP-initiated logout: sent %v, %v", sent, err)
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	var lr saml.LogoutRequest
	if err := xml.Unmarshal(decodeRedirect(t, loc.Query().Get("SAMLRequest")), &lr); err != nil {
		t.Fatal(err)
	}
	env.Flows = append(env.Flows, fuzzFlow{Kind: "logout", RelayState: loc.Query().Get("RelayState"), RequestID: lr.ID, ReturnTo: "/bye"})
	q, body = toSP(logins["ada"], loc.String())
	if !strings.Contains(q+body, "SAMLResponse") {
		t.Fatalf("SP-initiated logout: the IdP answered %q %q", q, body)
	}
	write("FuzzLogoutResponse", "ok-sp-initiated-real", q, body)
	if q != "" {
		v, _ := url.ParseQuery(q)
		v.Del("RelayState")
		write("FuzzLogoutResponse", "bad-no-relaystate", v.Encode(), "")
		v, _ = url.ParseQuery(q)
		v.Set("RelayState", "AAAAAAAAAAAAAAAAAAAAAAAAAA")
		write("FuzzLogoutResponse", "bad-unknown-relaystate", v.Encode(), "")
		v, _ = url.ParseQuery(q)
		sig := []byte(v.Get("Signature"))
		sig[10] ^= 1
		v.Set("Signature", string(sig))
		write("FuzzLogoutResponse", "bad-signature", v.Encode(), "")
		v, _ = url.ParseQuery(q)
		write("FuzzLogoutResponse", "bad-as-post", "", v.Encode())
	}

	// Forged IdP-initiated LogoutRequests, signed by the IdP.
	linus := fuzzUsers[2]
	lspec := samltest.LogoutRequestSpec{Destination: fuzzBase + "slo", NameID: linus.NameID, NameIDFormat: linus.NameIDFormat,
		SessionIndexes: []string{"idx-forged-1", "idx-forged-2"}, IssueInstant: now, Sign: true}
	env.SessionIndexes = append(env.SessionIndexes, lspec.SessionIndexes...)
	logoutRequest := func(name string, spec samltest.LogoutRequestSpec, post bool) {
		t.Helper()
		if post {
			form, err := srv.LogoutRequestForm(spec, "rs-1")
			if err != nil {
				t.Fatal(err)
			}
			write("FuzzLogoutRequest", name, "", form.Encode())
			return
		}
		u, err := srv.LogoutRequestRedirectURL(spec, "rs-1")
		if err != nil {
			t.Fatal(err)
		}
		_, q, _ := strings.Cut(u, "?")
		write("FuzzLogoutRequest", name, q, "")
	}
	logoutRequest("ok-forged-redirect", lspec, false)
	logoutRequest("ok-forged-post", lspec, true)
	noIndex := lspec
	noIndex.SessionIndexes = nil
	logoutRequest("ok-forged-every-session", noIndex, false)
	unsigned := lspec
	unsigned.Sign = false
	logoutRequest("bad-unsigned-redirect", unsigned, false)
	logoutRequest("bad-unsigned-post", unsigned, true)
	stale := lspec
	stale.IssueInstant = now.Add(-10 * time.Minute)
	logoutRequest("bad-stale", stale, false)
	wrongIssuer := lspec
	wrongIssuer.Issuer = "https://evil.example/idp"
	logoutRequest("bad-issuer", wrongIssuer, true)
	elsewhere := lspec
	elsewhere.Destination = "https://other.example/slo"
	logoutRequest("bad-destination", elsewhere, false)

	// Forged responses to the first login.
	first := env.Flows[0]
	spec := func(edit func(*samltest.ResponseSpec)) samltest.ResponseSpec {
		s := samltest.ResponseSpec{ACS: fuzzBase + "acs", Audience: fuzzBase + "metadata", InResponseTo: first.RequestID,
			User: fuzzUsers[0], SessionIndex: "idx-forged-acs", Now: now, SignAssertion: true, SignResponse: true}
		if edit != nil {
			edit(&s)
		}
		return s
	}
	env.SessionIndexes = append(env.SessionIndexes, "idx-forged-acs")
	forge := func(name string, s samltest.ResponseSpec, relayState string, tamper func(*etree.Element), editXML func(string) string) {
		t.Helper()
		v := forgeEncoded(t, srv, s, tamper)
		if editXML != nil {
			raw, _ := base64.StdEncoding.DecodeString(v)
			v = base64.StdEncoding.EncodeToString([]byte(editXML(string(raw))))
		}
		write("FuzzACS", name, v, relayState)
	}
	_, otherCert, err := samltest.NewKeyPair("attacker")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, err := samltest.NewKeyPair("attacker-2")
	if err != nil {
		t.Fatal(err)
	}
	rs := first.RelayState
	forge("ok-forged-both-signed", spec(nil), rs, nil, nil)
	forge("ok-forged-assertion-signed", spec(func(s *samltest.ResponseSpec) { s.SignResponse = false }), rs, nil, nil)
	forge("ok-forged-response-signed", spec(func(s *samltest.ResponseSpec) { s.SignAssertion = false }), rs, nil, nil)
	forge("ok-forged-encrypted", spec(func(s *samltest.ResponseSpec) { s.EncryptTo = kp.Certificate }), rs, nil, nil)
	idpInitiated := func(s *samltest.ResponseSpec) { s.InResponseTo, s.User = "", fuzzUsers[1] }
	forge("ok-idp-initiated", spec(idpInitiated), "/welcome", nil, nil)
	forge("ok-idp-initiated-foreign-relaystate", spec(idpInitiated), "https://evil.example/", nil, nil)
	forge("bad-unsigned", spec(func(s *samltest.ResponseSpec) { s.SignAssertion, s.SignResponse = false, false }), rs, nil, nil)
	forge("bad-sha1", spec(func(s *samltest.ResponseSpec) { s.SHA1 = true }), rs, nil, nil)
	forge("bad-untrusted-key", spec(func(s *samltest.ResponseSpec) { s.Key, s.Certificate = otherKey, otherCert }), rs, nil, nil)
	forge("bad-expired", spec(func(s *samltest.ResponseSpec) { s.Now = now.Add(-10 * time.Minute) }), rs, nil, nil)
	forge("bad-audience", spec(func(s *samltest.ResponseSpec) { s.Audience = "https://other.example/metadata" }), rs, nil, nil)
	forge("bad-destination", spec(func(s *samltest.ResponseSpec) { s.ACS = "https://other.example/acs" }), rs, nil, nil)
	forge("bad-other-flow", spec(nil), env.Flows[1].RelayState, nil, nil)
	forge("bad-no-flow", spec(nil), "", nil, nil)
	assertionOnly := func(s *samltest.ResponseSpec) { s.SignResponse = false }
	forge("bad-xsw-before", spec(assertionOnly), rs, func(resp *etree.Element) {
		a := resp.FindElement("./Assertion")
		resp.InsertChildAt(a.Index(), evilCopy(t, a, "id-evil"))
	}, nil)
	forge("bad-xsw-extensions", spec(assertionOnly), rs, func(resp *etree.Element) {
		a := resp.FindElement("./Assertion")
		evil := evilCopy(t, a, "id-evil")
		resp.RemoveChild(a)
		resp.CreateElement("samlp:Extensions").AddChild(a)
		resp.AddChild(evil)
	}, nil)
	forge("bad-renamed-subject", spec(nil), rs, func(resp *etree.Element) {
		resp.FindElement("./Assertion/Subject/NameID").SetText("admin")
	}, nil)
	forge("bad-doctype", spec(nil), rs, nil, func(s string) string { return `<!DOCTYPE Response [<!ENTITY e "x">]>` + s })
	forge("bad-truncated", spec(nil), rs, nil, func(s string) string { return s[:len(s)/2] })
	write("FuzzACS", "bad-not-base64", "%%%", rs)

	// Metadata: the IdP's, and aggregates around it.
	write("FuzzMetadata", "ok-samltest", md, "")
	write("FuzzMetadata", "ok-samltest-by-entity-id", md, srv.EntityID())
	write("FuzzMetadata", "bad-other-entity-id", md, "https://other.example/idp")
	sp := strings.TrimPrefix(string(spMetadata), xml.Header)
	second := strings.Replace(string(md), srv.EntityID(), "https://second.example/idp", 1)
	aggregate := func(entities ...string) []byte {
		return []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" Name="fed">` +
			strings.Join(entities, "") + `</EntitiesDescriptor>`)
	}
	write("FuzzMetadata", "ok-aggregate-one-idp", aggregate(sp, string(md)), "")
	write("FuzzMetadata", "ok-aggregate-chosen", aggregate(string(md), second), "https://second.example/idp")
	write("FuzzMetadata", "bad-aggregate-two-idps", aggregate(string(md), second), "")
	write("FuzzMetadata", "bad-sp-only", []byte(sp), "")
	write("FuzzMetadata", "bad-doctype", append([]byte(`<!DOCTYPE EntityDescriptor>`), md...), "")

	envJSON, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := EncodeKeyPairPEM(kp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(fuzzEnvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"env.json": append(envJSON, '\n'), "idp-metadata.xml": md, "sp-key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(fuzzEnvDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
