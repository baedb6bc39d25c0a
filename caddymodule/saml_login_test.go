package caddymodule_test

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	crewjam "github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/htmlform"
	"github.com/caddy-sso/caddy-sso/internal/redirecttest"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// samlWorld is one real SAML setup: a samltest IdP signing (and
// encrypting) real responses, and a Caddy with the sso handler in front of
// an echoing upstream, registered at the IdP from its own SP metadata.
type samlWorld struct {
	t        *testing.T
	idp      *samltest.Server
	upstream *echoUpstream
	gw       *gateway
	idpBlock string // extra lines inside the idp block
	sites    string
}

// samlPerson is the user most tests sign in as.
var samlPerson = samltest.Person{
	ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", FirstName: "Ada", LastName: "Lovelace",
	Email: "ada@example.com", Groups: []string{"eng", "admins"}, TenantID: "72f988bf-0000-0000-0000-000000000000",
}

func newSAMLWorld(t *testing.T, idpBlock string) *samlWorld {
	t.Helper()
	srv, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	w := &samlWorld{t: t, idp: srv, upstream: newEchoUpstream(t), gw: newGateway(t), idpBlock: idpBlock}
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	return w
}

func (w *samlWorld) caddyfile() string {
	block := fmt.Sprintf("\t\tidp test saml {\n\t\t\tmetadata_url %s\n%s\t\t}\n", w.idp.MetadataURL(), w.idpBlock)
	return w.gw.caddyfile(block, w.sites)
}

// start runs Caddy and registers its SP metadata at the IdP, as an IdP
// administrator pasting the metadata URL would.
func (w *samlWorld) start() *samlWorld {
	w.t.Helper()
	w.gw.start(w.caddyfile())
	if err := w.idp.RegisterServiceProvider([]byte(w.spMetadata())); err != nil {
		w.t.Fatal(err)
	}
	return w
}

// restart stops Caddy and starts it again on the same store.
func (w *samlWorld) restart() {
	w.t.Helper()
	w.gw.stop()
	w.gw.start(w.caddyfile())
}

func (w *samlWorld) spBase() string     { return w.gw.base + "/.sso/saml/test/" }
func (w *samlWorld) spEntityID() string { return w.spBase() + "metadata" }

func (w *samlWorld) spMetadata() string {
	w.t.Helper()
	resp, err := http.Get(w.spEntityID())
	if err != nil {
		w.t.Fatal(err)
	}
	body := readBody(w.t, resp)
	if resp.StatusCode != http.StatusOK {
		w.t.Fatalf("SP metadata: %s: %s", resp.Status, body)
	}
	return body
}

// samlPage is a response a browser shows.
type samlPage struct {
	URL    *url.URL
	Status int
	Header http.Header
	Body   string
}

func (b *browser) samlRead(resp *http.Response, err error) samlPage {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return samlPage{URL: resp.Request.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

func (b *browser) samlGet(u string) samlPage {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	return b.samlRead(b.client.Do(req))
}

func (b *browser) samlPost(c *http.Client, u string, form url.Values) samlPage {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	return b.samlRead(c.Do(req))
}

// form returns the absolute action and the fields of the first form on p.
func (p samlPage) form(t *testing.T) (string, url.Values) {
	t.Helper()
	action, fields, ok := htmlform.First(p.URL, p.Body)
	if !ok {
		t.Fatalf("no form on %s (status %d):\n%s", p.URL, p.Status, samlShort(p.Body))
	}
	return action, fields
}

// isAutoPost tells the pages a browser with JavaScript submits by itself:
// SAML messages in the POST binding and samltest's re-post after login.
func (p samlPage) isAutoPost() bool {
	return !p.isIdPLogin() && htmlform.AutoPosts(p.Body)
}

func (p samlPage) isIdPLogin() bool {
	return strings.Contains(p.Body, `id="username"`) && strings.Contains(p.Body, `id="login"`)
}

// samlAutoSubmit submits auto-posting forms until a page is not one.
func (b *browser) samlAutoSubmit(p samlPage) samlPage {
	b.t.Helper()
	for range 8 {
		if !p.isAutoPost() {
			return p
		}
		action, fields := p.form(b.t)
		p = b.samlPost(b.client, action, fields)
	}
	b.t.Fatalf("too many auto-posted forms, last at %s", p.URL)
	return p
}

// samlSignIn opens rawURL, signs in at the IdP when its form shows up, and
// follows every redirect and auto-posted form back to the final page.
func (b *browser) samlSignIn(rawURL, username, password string) samlPage {
	b.t.Helper()
	p := b.samlAutoSubmit(b.samlGet(rawURL))
	if !p.isIdPLogin() {
		return p // already signed in at the IdP, or refused before its form
	}
	action, fields := p.form(b.t)
	fields.Set("username", username)
	fields.Set("password", password)
	return b.samlAutoSubmit(b.samlPost(b.client, action, fields))
}

// samlResponseForm signs in like samlSignIn but stops at the IdP's response
// form, returning what the browser would post to the ACS.
func (b *browser) samlResponseForm(rawURL, username, password string) (string, url.Values) {
	b.t.Helper()
	p := b.samlGet(rawURL)
	for range 8 {
		if strings.Contains(p.Body, `name="SAMLResponse"`) {
			return p.form(b.t)
		}
		action, fields := p.form(b.t)
		if p.isIdPLogin() {
			fields.Set("username", username)
			fields.Set("password", password)
		}
		p = b.samlPost(b.client, action, fields)
	}
	b.t.Fatalf("no SAML response form, last page %s", p.URL)
	return "", nil
}

func samlShort(s string) string {
	if len(s) > 800 {
		return s[:800] + "…"
	}
	return s
}

// saw decodes the echoing upstream's answer on p.
func (p samlPage) saw(t *testing.T) echoed {
	t.Helper()
	return upstreamSaw(t, &http.Response{StatusCode: p.Status, Status: http.StatusText(p.Status), Body: io.NopCloser(strings.NewReader(p.Body))})
}

func (w *samlWorld) addUser(u samltest.User) { w.idp.AddUser(u) }

// TestSAMLLoginProfiles runs full SP-initiated logins through Caddy against
// IdPs shaped like Entra ID (default claim URIs, and the product
// documentation's custom claims), Okta and PingOne: JIT creates the user
// from all four attributes plus groups, headers reach the upstream, and a
// later login updates the profile.
func TestSAMLLoginProfiles(t *testing.T) {
	tests := []struct {
		name, block string
		user        func(username, password string, p samltest.Person) samltest.User
	}{
		{"entra claim URIs", "\t\t\tpreset entra\n", samltest.Entra},
		{"entra custom claims", "\t\t\tpreset entra\n", samltest.EntraCustom},
		{"okta", "\t\t\tpreset okta\n", samltest.Okta},
		// PingOne with the POST binding and signed AuthnRequests, which
		// samltest verifies against the SP metadata.
		{"pingone", "\t\t\tpreset pingone\n\t\t\trequest_binding post\n\t\t\tsign_requests\n", samltest.PingOne},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newSAMLWorld(t, tt.block+"\t\t\tjit\n").start()
			w.addUser(tt.user("ada", "ada-pw", samlPerson))
			saw := newBrowser(t).samlSignIn(w.gw.base+"/reports?year=2026", "ada", "ada-pw").saw(t)
			u := checkFirstSignIn(t, saw, samlPerson.ID)

			// The IdP admin renames her, moves her mailbox and her groups.
			p := samlPerson
			p.FirstName, p.Email, p.Groups = "Augusta", "augusta@example.com", []string{"research"}
			w.addUser(tt.user("ada", "ada-pw", p))
			saw = newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
			after := userBySubject(t, samlPerson.ID)
			if after.ID != u.ID {
				t.Fatalf("a second user was created: %s != %s", after.ID, u.ID)
			}
			if after.FirstName != "Augusta" || after.Email != "augusta@example.com" || !slices.Equal(after.Groups, []string{"research"}) {
				t.Errorf("profile not updated: %+v", after)
			}
			if saw.header("X-Forwarded-First-Name") != "Augusta" || saw.header("X-Forwarded-Groups") != "research" {
				t.Errorf("upstream headers after update: %v", saw.Headers)
			}
		})
	}
}

func TestSAMLJITOffRefusesUnknownUser(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	p := newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw")
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "has not been set up for this application") {
		t.Fatalf("got %d: %s", p.Status, samlShort(p.Body))
	}
	if got := auditReasons(t, store.EventLoginDenied); !slices.Contains(got, "jit_disabled") {
		t.Errorf("denial not audited: %v", got)
	}
	view(t, func(tx store.Tx) error {
		if _, err := tx.UserByLink("test", samlPerson.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("user exists after a refused JIT login: %v", err)
		}
		return nil
	})
}

func TestSAMLDeactivatedUserIsRefused(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
	err := runningStore(t).Update(context.Background(), func(tx store.Tx) error {
		u, err := tx.UserByLink("test", samlPerson.ID)
		if err != nil {
			return err
		}
		u.Active = false
		return tx.PutUser(u)
	})
	if err != nil {
		t.Fatal(err)
	}
	p := newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw")
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "deactivated") {
		t.Fatalf("got %d: %s", p.Status, samlShort(p.Body))
	}
	if userBySubject(t, samlPerson.ID).Active {
		t.Error("JIT reactivated a deactivated user")
	}
}

// TestSAMLMissingAttributesExplains: the page names the attributes the
// preset expected and those that arrived, never a value.
func TestSAMLMissingAttributesExplains(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset generic\n\t\t\tjit\n").start()
	w.addUser(samltest.User{Username: "nemo", Password: "pw", NameID: "nemo-nameid-secret",
		Attributes: map[string][]string{"uniqueUserId": {"uid-secret"}, "firstName": {"Nemo-Secret"}, "department": {"Dept-Secret"}}})
	// A login without any ID attribute: the generic preset takes a
	// persistent NameID as the user's key, but not this email-format one,
	// and the page says why.
	w.addUser(samltest.User{Username: "anon", Password: "pw", NameID: "anon-secret@example.com",
		NameIDFormat: string(crewjam.EmailAddressNameIDFormat),
		Attributes:   map[string][]string{"email": {"anon-secret@example.com"}, "firstName": {"Anon-Secret"}}})

	p := newBrowser(t).samlSignIn(w.gw.base+"/", "nemo", "pw")
	if p.Status != http.StatusForbidden {
		t.Fatalf("got %d: %s", p.Status, samlShort(p.Body))
	}
	for _, want := range []string{"<code>lastName</code>", "<code>email</code>", "<code>uniqueUserId</code>", "<code>firstName</code>", "<code>department</code>"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("page lacks %s:\n%s", want, p.Body)
		}
	}
	for _, secret := range []string{"secret", "Secret"} {
		if strings.Contains(p.Body, secret) {
			t.Errorf("page reveals a value:\n%s", p.Body)
		}
	}

	p = newBrowser(t).samlSignIn(w.gw.base+"/", "anon", "pw")
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "<code>uniqueUserId</code>") ||
		!strings.Contains(p.Body, "not persistent") {
		t.Fatalf("got %d: %s", p.Status, p.Body)
	}
	if strings.Contains(strings.ToLower(p.Body), "secret") {
		t.Errorf("page reveals a value:\n%s", p.Body)
	}
	if got := auditReasons(t, store.EventLoginDenied); !slices.Contains(got, "missing_subject") || !slices.Contains(got, "missing_attributes") {
		t.Errorf("denials audited as %v", got)
	}
}

func TestSAMLGroupsOverageIsReported(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset entra\n\t\t\tjit\n").start()
	w.addUser(samltest.Entra("ada", "ada-pw", samlPerson))
	newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
	over := samlPerson
	over.GroupsOverage = true
	w.addUser(samltest.Entra("ada", "ada-pw", over))
	saw := newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
	if saw.header("X-Forwarded-Groups") != "admins,eng" {
		t.Errorf("an overage blanked the stored groups: %q", saw.header("X-Forwarded-Groups"))
	}
	if got := auditReasons(t, "idp.groups_overage"); len(got) != 1 {
		t.Errorf("groups overage audit events = %v, want one", got)
	}
}

// TestSAMLIdPInitiated: refused unless idp_initiated is set; when set, it
// signs in and lands on the RelayState, which can only be a path here and
// never a gateway callback.
func TestSAMLIdPInitiated(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
		w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
		p := newBrowser(t).samlSignIn(w.idp.IdPInitiatedURL(w.spEntityID(), "/reports"), "ada", "ada-pw")
		if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, saml.CodeUnsolicited) {
			t.Fatalf("got %d at %s: %s", p.Status, p.URL, samlShort(p.Body))
		}
		// Anyone can post an unsolicited response: it is audited within
		// a budget per minute, marked as no sign-in of this browser
		// (docs/security.md).
		if got := auditReasons(t, store.EventLoginFailed); !slices.Equal(got, []string{saml.CodeUnsolicited}) {
			t.Errorf("login.failed reasons after an unsolicited response: %v, want one %s", got, saml.CodeUnsolicited)
		}
		view(t, func(tx store.Tx) error {
			if _, err := tx.UserByLink("test", samlPerson.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("an unsolicited response created a user: %v", err)
			}
			return nil
		})
	})

	t.Run("on", func(t *testing.T) {
		w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n\t\t\tidp_initiated\n").start()
		w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
		b := newBrowser(t)
		saw := b.samlSignIn(w.idp.IdPInitiatedURL(w.spEntityID(), "/reports?q=1"), "ada", "ada-pw").saw(t)
		if saw.Path != "/reports?q=1" || saw.header("X-Forwarded-Email") != "ada@example.com" {
			t.Fatalf("IdP-initiated login reached %q as %q", saw.Path, saw.header("X-Forwarded-Email"))
		}

		// A sample of the shared open-redirect payloads as RelayState
		// (idp/saml tests all of them): the gateway's redirect after the
		// ACS stays on this site.
		payloads := samlPayloads(t)
		base, _ := url.Parse(w.gw.base)
		noFollow := b.noRedirects()
		checked := 0
		for i := 0; i < len(payloads); i += 13 {
			pl := payloads[i]
			p := b.samlGet(w.idp.IdPInitiatedURL(w.spEntityID(), pl))
			action, fields := p.form(t)
			if action != w.spBase()+"acs" {
				t.Fatalf("payload %q: IdP posts to %q", pl, action)
			}
			res := b.samlPost(noFollow, action, fields)
			loc := res.Header.Get("Location")
			if loc == "" {
				continue // refused (RelayState too long for the binding): nowhere to go
			}
			u, err := base.Parse(loc)
			if err != nil || u.Host != base.Host || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
				t.Errorf("RelayState %q produced Location %q, which leaves the site", pl, loc)
			}
			checked++
		}
		if checked < 30 {
			t.Errorf("only %d payloads reached a redirect", checked)
		}

		// A RelayState naming a gateway callback with an IdP's answer (an
		// IdP admin's default RelayState, say) is a return path like any
		// other (gateway.Route.returnPath): home, not a failure page.
		for _, relay := range []string{"/.sso/saml/test/acs", "/.sso/oidc/corp/callback?state=s&code=c"} {
			action, fields := b.samlGet(w.idp.IdPInitiatedURL(w.spEntityID(), relay)).form(t)
			if loc := b.samlPost(noFollow, action, fields).Header.Get("Location"); loc != "/" {
				t.Errorf("RelayState %q, a gateway callback: redirected to %q, want the route's home /", relay, loc)
			}
		}
	})
}

func samlPayloads(t *testing.T) []string {
	t.Helper()
	return redirecttest.Payloads()
}

// TestSAMLReplayRefusedAcrossRestart captures what a browser posts to the
// ACS, with its flow cookie, and posts it again: refused at once, and
// again after Caddy stopped and started on the same store.
func TestSAMLReplayRefusedAcrossRestart(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	replay := capturedSignIn(t, w)
	for _, when := range []string{"at once", "after restart"} {
		if when == "after restart" {
			w.restart()
		}
		p := replay()
		if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, saml.CodeReplayed) {
			t.Fatalf("replay %s: got %d: %s", when, p.Status, samlShort(p.Body))
		}
	}
	if got := auditReasons(t, store.EventLoginFailed); !slices.Equal(got, []string{saml.CodeReplayed, saml.CodeReplayed}) {
		t.Errorf("replays audited as %v", got)
	}
}

// TestSAMLReplaysAuditedWithinBudget: whoever holds a captured response
// and its flow cookie can post it again and again while the assertion is
// valid. Every post is refused, but the audit trail takes at most
// signin.DefaultAuditPerMinute of them a minute, as for every other
// refused sign-in (docs/security.md, "Unauthenticated traffic").
func TestSAMLReplaysAuditedWithinBudget(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	replay := capturedSignIn(t, w)
	const posts = signin.DefaultAuditPerMinute + 5
	for i := range posts {
		if p := replay(); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, saml.CodeReplayed) {
			t.Fatalf("replay %d: got %d: %s", i+1, p.Status, samlShort(p.Body))
		}
	}
	if got := auditReasons(t, store.EventLoginFailed); len(got) != signin.DefaultAuditPerMinute {
		t.Errorf("%d replays audited %d times (%v), want %d", posts, len(got), got, signin.DefaultAuditPerMinute)
	}
}

// capturedSignIn signs ada in through the ACS, keeping what her browser
// posted and its flow cookie, and returns a replay of that post from
// another browser.
func capturedSignIn(t *testing.T, w *samlWorld) (replay func() samlPage) {
	t.Helper()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	b := newBrowser(t)
	action, fields := b.samlResponseForm(w.gw.base+"/", "ada", "ada-pw")
	gwURL, _ := url.Parse(w.gw.base)
	captured := b.jar.Cookies(gwURL)
	if len(captured) == 0 {
		t.Fatal("no flow cookie to capture")
	}
	b.samlPost(b.client, action, fields).saw(t)
	return func() samlPage {
		jar, _ := cookiejar.New(nil)
		jar.SetCookies(gwURL, captured)
		attacker := &browser{t: t, jar: jar, client: &http.Client{Jar: jar}}
		return attacker.samlPost(attacker.client, action, fields)
	}
}

// spMetadataDoc is the part of the SP metadata the tests check.
type spMetadataDoc struct {
	EntityID string `xml:"entityID,attr"`
	SP       struct {
		Keys []struct {
			Use  string `xml:"use,attr"`
			Cert string `xml:"KeyInfo>X509Data>X509Certificate"`
		} `xml:"KeyDescriptor"`
		SLO []struct {
			Binding  string `xml:"Binding,attr"`
			Location string `xml:"Location,attr"`
		} `xml:"SingleLogoutService"`
		ACS []struct {
			Binding  string `xml:"Binding,attr"`
			Location string `xml:"Location,attr"`
		} `xml:"AssertionConsumerService"`
	} `xml:"SPSSODescriptor"`
}

func parseSPMetadata(t *testing.T, raw string) spMetadataDoc {
	t.Helper()
	var md spMetadataDoc
	if err := xml.Unmarshal([]byte(raw), &md); err != nil {
		t.Fatalf("SP metadata: %v\n%s", err, raw)
	}
	return md
}

func (md spMetadataDoc) certs(use string) []string {
	var out []string
	for _, k := range md.SP.Keys {
		if k.Use == use {
			out = append(out, strings.Join(strings.Fields(k.Cert), ""))
		}
	}
	return out
}

// TestSAMLMetadataAndKeyPersistence: the SP metadata names this site's
// endpoints; the SP key generated on first start is kept in the store, so
// the certificate the IdP holds is still ours after a restart.
func TestSAMLMetadataAndKeyPersistence(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	md := parseSPMetadata(t, w.spMetadata())
	if md.EntityID != w.spEntityID() {
		t.Errorf("entity ID = %q, want %q", md.EntityID, w.spEntityID())
	}
	if len(md.SP.ACS) != 1 || md.SP.ACS[0].Location != w.spBase()+"acs" || md.SP.ACS[0].Binding != crewjam.HTTPPostBinding {
		t.Errorf("ACS = %+v", md.SP.ACS)
	}
	if len(md.SP.SLO) == 0 {
		t.Error("no SingleLogoutService")
	}
	for _, s := range md.SP.SLO {
		if s.Location != w.spBase()+"slo" {
			t.Errorf("SLO location %q", s.Location)
		}
	}
	signing := md.certs("signing")
	if len(signing) != 1 || !slices.Equal(md.certs("encryption"), signing) {
		t.Fatalf("certificates: signing %d, encryption %d", len(signing), len(md.certs("encryption")))
	}

	// Other methods and other names are not served.
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/.sso/saml/test/metadata", http.StatusMethodNotAllowed},
		{http.MethodGet, "/.sso/saml/test/acs", http.StatusMethodNotAllowed},
		{http.MethodPut, "/.sso/saml/test/slo", http.StatusMethodNotAllowed},
		{http.MethodGet, "/.sso/saml/nope/metadata", http.StatusNotFound},
		{http.MethodGet, "/.sso/oidc/test/callback", http.StatusNotFound},
		{http.MethodGet, "/.sso/saml/test/callback", http.StatusNotFound},
		{http.MethodGet, "/.sso/saml/test/", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, w.gw.base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}

	w.restart()
	again := parseSPMetadata(t, w.spMetadata())
	if !slices.Equal(again.certs("signing"), signing) {
		t.Fatal("the SP certificate changed across a restart")
	}
	// The IdP still holds the first registration: a login works.
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
}

// TestSAMLConfiguredSPCerts: two sp_cert lines (each a combined PEM file)
// publish both certificates, current first; logins work with them, and no
// key is generated.
func TestSAMLConfiguredSPCerts(t *testing.T) {
	dir := t.TempDir()
	var files, certs [2]string
	for i := range files {
		kp, err := saml.GenerateKeyPair(fmt.Sprintf("sp-%d.test", i))
		if err != nil {
			t.Fatal(err)
		}
		pem, err := saml.EncodeKeyPairPEM(kp)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = filepath.Join(dir, fmt.Sprintf("sp-%d.pem", i))
		if err := os.WriteFile(files[i], pem, 0o600); err != nil {
			t.Fatal(err)
		}
		certs[i] = base64.StdEncoding.EncodeToString(kp.Certificate.Raw)
	}
	w := newSAMLWorld(t, fmt.Sprintf("\t\t\tpreset okta\n\t\t\tjit\n\t\t\tsp_cert %s %s\n\t\t\tsp_cert %s %s\n",
		files[0], files[0], files[1], files[1])).start()
	md := parseSPMetadata(t, w.spMetadata())
	if got := md.certs("signing"); !slices.Equal(got, certs[:]) {
		t.Fatalf("signing certificates are not the configured ones, current first")
	}
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
	view(t, func(tx store.Tx) error {
		if _, err := tx.LoadOrStoreSecret("saml-sp-key/test", nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a key was generated although sp_cert is configured: %v", err)
		}
		return nil
	})
}

// whoamiStatus is what /.sso/whoami answers the browser: 200 signed in,
// 401 not.
func (w *samlWorld) whoamiStatus(b *browser) int {
	w.t.Helper()
	resp, err := b.client.Get(w.gw.base + "/.sso/whoami")
	if err != nil {
		w.t.Fatal(err)
	}
	readBody(w.t, resp)
	return resp.StatusCode
}

// TestSAMLSingleLogoutSPInitiated: /.sso/logout ends the local session and
// sends a signed LogoutRequest to the IdP, whose LogoutResponse comes back
// to the SLO endpoint and on to the return path. The IdP offers both
// bindings (HTTP-Redirect listed first), so the LogoutRequest, which names
// the person, goes in a form body: in a redirect's Location it would reach
// Caddy's access log and the browser's history.
func TestSAMLSingleLogoutSPInitiated(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	// Qualified, as crewjam's own IdP, Shibboleth and AD FS issue it.
	w.idp.SetHooks(samltest.Hooks{Assertion: func(a *crewjam.Assertion) {
		a.Subject.NameID.NameQualifier, a.Subject.NameID.SPNameQualifier = w.idp.EntityID(), w.spBase()+"metadata"
	}})
	b := newBrowser(t)
	b.samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
	if w.whoamiStatus(b) != http.StatusOK || w.idp.SessionCount() != 1 {
		t.Fatal("not signed in")
	}
	confirm := b.samlGet(w.gw.base + "/.sso/logout?return_to=/goodbye")
	action, fields := confirm.form(t)
	noFollow := b.noRedirects()
	res := b.samlPost(noFollow, action, fields)
	if res.Status != http.StatusOK || res.Header.Get("Location") != "" || !res.isAutoPost() {
		t.Fatalf("logout answered %d (Location %q), want the auto-submitting LogoutRequest form:\n%s", res.Status, res.Header.Get("Location"), samlShort(res.Body))
	}
	sloAction, sloFields := res.form(t)
	if sloAction != w.idp.SLOURL() || sloFields.Get("SAMLRequest") == "" {
		t.Fatalf("the LogoutRequest form posts %v to %q, want a SAMLRequest to the IdP's SLO %s", sloFields, sloAction, w.idp.SLOURL())
	}
	// The LogoutRequest names the NameID as the IdP issued it, qualifiers
	// and all (SAML profiles 4.4.4.1): an IdP that compares them finds no
	// session otherwise.
	reqXML, err := base64.StdEncoding.DecodeString(sloFields.Get("SAMLRequest"))
	if err != nil {
		t.Fatal(err)
	}
	var lr crewjam.LogoutRequest
	if err := xml.Unmarshal(reqXML, &lr); err != nil {
		t.Fatal(err)
	}
	if n := lr.NameID; n == nil || n.Value != "ada" || n.NameQualifier != w.idp.EntityID() || n.SPNameQualifier != w.spBase()+"metadata" {
		t.Errorf("the LogoutRequest's NameID lost what the IdP issued: %+v", n)
	}
	if w.whoamiStatus(b) != http.StatusUnauthorized {
		t.Error("local session still valid while at the IdP")
	}
	// Through the IdP and back: the return path is protected, so the
	// browser lands on the IdP's login form, its IdP session gone too.
	p := b.samlAutoSubmit(res)
	if !p.isIdPLogin() {
		t.Fatalf("after logout: %d at %s: %s", p.Status, p.URL, samlShort(p.Body))
	}
	if n := w.idp.SessionCount(); n != 0 {
		t.Errorf("IdP sessions left: %d", n)
	}
	if !strings.Contains(p.URL.RawQuery, "SAMLRequest") {
		t.Errorf("landed at %s", p.URL)
	}
}

// TestSAMLSingleLogoutIdPInitiated: the IdP's LogoutRequest ends the local
// session of the IdP session it names, and only that one.
func TestSAMLSingleLogoutIdPInitiated(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset pingone\n\t\t\tjit\n").start()
	w.addUser(samltest.PingOne("ada", "ada-pw", samlPerson))
	first, second := newBrowser(t), newBrowser(t)
	first.samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
	second.samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)

	// An unsigned LogoutRequest ends nothing.
	forged, err := w.idp.LogoutRequestRedirectURL(samltest.LogoutRequestSpec{Destination: w.spBase() + "slo",
		NameID: samlPerson.ID, NameIDFormat: string(crewjam.PersistentNameIDFormat)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if p := newBrowser(t).samlGet(forged); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Sign-out incomplete") || !strings.Contains(p.Body, "may still be signed in to this application") {
		t.Fatalf("unsigned LogoutRequest: %d: %s", p.Status, samlShort(p.Body))
	}
	if w.whoamiStatus(first) != http.StatusOK || w.whoamiStatus(second) != http.StatusOK {
		t.Fatal("an unsigned LogoutRequest ended a session")
	}

	p := first.samlAutoSubmit(first.samlGet(w.idp.LogoutURL(w.gw.base + "/.sso/whoami")))
	if p.URL.Path != "/.sso/whoami" || p.Status != http.StatusUnauthorized {
		t.Fatalf("IdP logout ended at %s (%d): %s", p.URL, p.Status, samlShort(p.Body))
	}
	if got := w.whoamiStatus(second); got != http.StatusOK {
		t.Errorf("the other session (another IdP session) ended too: %d", got)
	}
	var slo []string
	view(t, func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Type: store.EventSessionLoggedOut, Limit: 100})
		for _, e := range events {
			slo = append(slo, e.Reason)
		}
		return err
	})
	if !slices.Equal(slo, []string{account.ReasonIdPLogout}) {
		t.Errorf("logout events = %v", slo)
	}
	// The ended session stays ended: the next page needs a new sign-in.
	if p := first.samlGet(w.gw.base + "/"); !p.isIdPLogin() {
		t.Errorf("after IdP logout the site answered %d at %s", p.Status, p.URL)
	}

	// A signed LogoutRequest (HTTP-POST) without SessionIndex ends every
	// session of the NameID, and is answered with a LogoutResponse.
	form, err := w.idp.LogoutRequestForm(samltest.LogoutRequestSpec{Destination: w.spBase() + "slo",
		NameID: samlPerson.ID, NameIDFormat: string(crewjam.PersistentNameIDFormat), Sign: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	res := b.samlPost(b.noRedirects(), w.spBase()+"slo", form)
	if !strings.Contains(res.Body, `name="SAMLResponse"`) && !strings.Contains(res.Header.Get("Location"), "SAMLResponse=") {
		t.Fatalf("signed LogoutRequest answered %d: %s", res.Status, samlShort(res.Body))
	}
	if w.whoamiStatus(second) != http.StatusUnauthorized {
		t.Error("a LogoutRequest without SessionIndex left a session of its NameID")
	}
}

// TestSAMLLogoutWithoutIdPSLO: an IdP without a Single Logout service still
// gets a local sign-out.
func TestSAMLLogoutWithoutIdPSLO(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n")
	w.idp.SetHooks(samltest.Hooks{Metadata: func(ed *crewjam.EntityDescriptor) {
		ed.IDPSSODescriptors[0].SingleLogoutServices = nil
	}})
	w.start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	b := newBrowser(t)
	b.samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
	action, fields := b.samlGet(w.gw.base + "/.sso/logout").form(t)
	p := b.samlPost(b.noRedirects(), action, fields)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "You are signed out") {
		t.Fatalf("logout answered %d: %s", p.Status, samlShort(p.Body))
	}
	if w.whoamiStatus(b) != http.StatusUnauthorized {
		t.Error("still signed in")
	}
	if n := w.idp.SessionCount(); n != 1 {
		t.Errorf("IdP sessions: %d, want the IdP's own left alone", n)
	}
}

// TestSAMLGeneratedKeyToSPCert: `caddy sso saml-key` writes out the key
// pair the gateway generated, and configured with sp_cert it is the same
// pair to the IdP: the metadata publishes the same certificate and the IdP,
// which registered the generated one, still signs the user in, with no
// change at the IdP. The file is the owner's only, and never overwritten.
func TestSAMLGeneratedKeyToSPCert(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	generated := parseSPMetadata(t, w.spMetadata()).certs("signing")
	w.gw.stop()

	file := filepath.Join(t.TempDir(), "sp.pem")
	ctx := context.Background()
	storeFlag := "--store=" + w.gw.StorePath()
	if _, err := caddytest.RunCLI(ctx, "saml-key", "nope", "--out", file, storeFlag); err == nil || !strings.Contains(err.Error(), `no generated SP key for IdP "nope"`) {
		t.Errorf("saml-key of an IdP without a key: %v", err)
	}
	if out, err := caddytest.RunCLI(ctx, "saml-key", "test", "--out", file, storeFlag); err != nil || !strings.Contains(out, "sp_cert "+file+" "+file) {
		t.Fatalf("saml-key: %v\n%s", err, out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	if _, err := caddytest.RunCLI(ctx, "saml-key", "test", "--out", file, storeFlag); err == nil || !errors.Is(err, os.ErrExist) {
		t.Errorf("saml-key over an existing file: %v", err)
	}

	w.idpBlock += fmt.Sprintf("\t\t\tsp_cert %s %s\n", file, file)
	w.gw.start(w.caddyfile()) // the IdP keeps its registration of the generated key
	if got := parseSPMetadata(t, w.spMetadata()).certs("signing"); !slices.Equal(got, generated) {
		t.Fatalf("with sp_cert of the written pair the metadata publishes another certificate")
	}
	newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
}
