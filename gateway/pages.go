package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/internal/pagestyle"
)

// The pages a person can see, by name. An operator's pages directory
// overrides one with a template file of its name plus ".html"
// (docs/pages.md lists what each page is given).
const (
	PageSignInFailed      = "signin_failed"      // 400: the IdP's answer was refused
	PageDenied            = "denied"             // 403: the JIT rules refused the user (also "waiting for approval")
	PageForbidden         = "forbidden"          // 403: the route's allow/deny rules exclude the user
	PageMissingAttributes = "missing_attributes" // 403: the IdP did not send what an account needs
	PageChooser           = "chooser"            // 200: pick one of the route's IdPs
	PageSignInAgain       = "sign_in_again"      // 401: a form submitted after the session ended
	PageUnknownIdP        = "unknown_idp"        // 404: login?idp= names no IdP of the route
	PageLogout            = "logout"             // 200: the sign-out confirmation
	PageSignedOut         = "signed_out"         // 200
	PageLogoutRefused     = "logout_refused"     // 403: a cross-site sign-out POST
	PageLogoutIncomplete  = "logout_incomplete"  // 400: the IdP's logout message was refused
	PageUnavailable       = "unavailable"        // 502: the IdP could not be reached
	PageMisconfigured     = "misconfigured"      // 500: the IdP's settings and the gateway's disagree
	PageBaseURLRequired   = "base_url_required"  // 500: the site does not know its own address
	PageStoreUnavailable  = "store_unavailable"  // 503: the store could not be used; try again later
	PageCrossSiteFrame    = "cross_site_frame"   // 401: a frame in another site's page, which never gets the session cookie
)

// PageNames lists every page, in the order docs/pages.md describes them.
var PageNames = []string{PageSignInFailed, PageDenied, PageForbidden, PageMissingAttributes, PageChooser, PageSignInAgain,
	PageUnknownIdP, PageLogout, PageSignedOut, PageLogoutRefused, PageLogoutIncomplete, PageUnavailable,
	PageMisconfigured, PageBaseURLRequired, PageStoreUnavailable, PageCrossSiteFrame}

// pageFallback is the file of an operator's pages directory that serves
// every page without a file of its own.
const pageFallback = "page.html"

// Page is what a page's template is given (docs/pages.md). It never holds
// attribute values, tokens, or internal errors.
type Page struct {
	Name    string // one of PageNames
	Status  int
	Title   string
	Message string
	Code    string // stable reason, quoted to support staff; empty on pages that report nothing
	IdP     string // the identity provider concerned, when there is one
	// SignedOut says the person is signed out in this browser although
	// the page reports a failure: logout_incomplete after the session had
	// ended, store_unavailable after a sign-out that could not be
	// recorded. A translated template must not tell them otherwise.
	SignedOut bool
	// Received and Expected, on missing_attributes: the attribute names
	// that arrived, and what the IdP must send.
	Received []PageAttribute
	Expected []PageExpectation
	// Links are choices: the sign-in methods of the chooser.
	Links []PageLink
	// Action, Button and ReturnTo make the sign-out confirmation's form.
	Action   string
	Button   string
	ReturnTo string
	// FormTargets are origins, besides this site's, that the form's
	// submission may be redirected to: the sign-out page's POST continues
	// at the IdP's logout endpoint, and browsers check the CSP form-action
	// at every redirect of a form submission.
	FormTargets []string
	// Framed says the page answers a frame, so the pages of any site may
	// frame it (CSP frame-ancestors): its only link opens in the whole
	// window, which is what a page that frames it could do itself. Every
	// other page may not be framed.
	Framed bool
}

// CSS is the stylesheet every page of the project shares.
func (Page) CSS() template.CSS { return pagestyle.Template() }

// PageLink is one choice on a page. Target, when set, is the browsing
// context the link opens in: "_top", the whole window, for the link of a
// page shown in a frame of this site's; "_blank", a window of its own,
// for the link of a page shown in another site's (which the default
// template opens with rel="noopener": the other site's page keeps no
// handle on the app's window).
type PageLink struct {
	Href, Text string
	Target     string
}

// PageAttribute is an attribute that arrived: its name, and whether all
// its values were empty (an IdP mapping that sends nothing for a user).
type PageAttribute struct {
	Name  string
	Empty bool
}

// PageExpectation is an attribute an account needs, and the names the
// IdP may send it under.
type PageExpectation struct {
	Attribute string
	Names     []string
}

var defaultTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title>
<style>{{.CSS}}</style></head>
<body><main><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{if .Expected}}<h2>What the identity provider must send</h2><ul>
{{range .Expected}}<li><code>{{.Attribute}}</code>: one of {{range $i, $n := .Names}}{{if $i}}, {{end}}<code>{{$n}}</code>{{end}}</li>{{end}}</ul>
<h2>What it sent</h2>{{if .Received}}<ul>{{range .Received}}<li><code>{{.Name}}</code>{{if .Empty}} (sent empty){{end}}</li>{{end}}</ul>{{else}}<p>No attributes.</p>{{end}}{{end}}
{{if .Links}}<ul>{{range .Links}}<li><a href="{{.Href}}"{{with .Target}} target="{{.}}"{{if eq . "_blank"}} rel="noopener"{{end}}{{end}}>{{.Text}}</a></li>{{end}}</ul>{{end}}
{{if .Action}}<form method="post" action="{{.Action}}"><input type="hidden" name="return_to" value="{{.ReturnTo}}"><button id="submit" type="submit">{{.Button}}</button></form>{{end}}
{{if .Code}}<p><small>Reference: <code>{{.Code}}</code></small></p>{{end}}
</main></body></html>
`))

// Pages renders the pages: the operator's templates where there are some,
// the embedded default for the rest. The zero value (and nil) renders the
// defaults only.
type Pages struct {
	byName map[string]*template.Template
	logger *zap.Logger
}

// LoadPages reads the operator's templates from dir: every *.html file is
// parsed into one html/template set (so that files can share {{define}}
// blocks), and the page named n is rendered by the template "n.html", else
// "page.html", else the default. Each override is tried on sample data
// now, so that a template naming a field that does not exist fails the
// configuration instead of a sign-in.
func LoadPages(dir string, logger *zap.Logger) (*Pages, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.html"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("pages_dir: %w", err)
		}
		return nil, fmt.Errorf("pages_dir %s: no .html templates in it (expected files such as %s.html or %s; docs/pages.md)", dir, PageSignInFailed, pageFallback)
	}
	set, err := template.New("").ParseFiles(files...)
	if err != nil {
		return nil, fmt.Errorf("pages_dir: %w", err)
	}
	p := &Pages{byName: make(map[string]*template.Template), logger: logger}
	for _, name := range PageNames {
		t := set.Lookup(name + ".html")
		if t == nil {
			t = set.Lookup(pageFallback)
		}
		if t == nil {
			continue
		}
		for _, sample := range samplePages(name) {
			if err := t.Execute(new(bytes.Buffer), sample); err != nil {
				return nil, fmt.Errorf("pages_dir: page %s: %w", name, err)
			}
		}
		p.byName[name] = t
	}
	return p, nil
}

// Overrides lists the pages an operator's template renders.
func (p *Pages) Overrides() []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, n := range PageNames {
		if p.byName[n] != nil {
			out = append(out, n)
		}
	}
	return out
}

// Write sends the page. Its Referrer-Policy is same-origin: other sites
// get no referrer, while the page's own form POST carries the site's origin
// in its Origin header. Under no-referrer browsers send "Origin: null",
// which the sign-out endpoint must refuse (see sameOrigin). An operator's
// template that fails while rendering is logged, and the default page is
// sent instead: a person always gets a page.
func (p *Pages) Write(w http.ResponseWriter, pg Page) error {
	var body bytes.Buffer
	t := defaultTemplate
	if p != nil && p.byName[pg.Name] != nil {
		t = p.byName[pg.Name]
	}
	if err := t.Execute(&body, pg); err != nil {
		if t == defaultTemplate {
			return fmt.Errorf("sso page %s: %w", pg.Name, err)
		}
		if p.logger != nil {
			p.logger.Error("rendering the operator's page template failed; sending the default page", zap.String("page", pg.Name), zap.Error(err))
		}
		body.Reset()
		if err := defaultTemplate.Execute(&body, pg); err != nil {
			return fmt.Errorf("sso page %s: %w", pg.Name, err)
		}
	}
	frameAncestors := "'none'"
	if pg.Framed {
		frameAncestors = "*"
	}
	formAction := "'self'"
	for _, o := range pg.FormTargets {
		if o = originOf(o); o != "" {
			formAction += " " + o
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	// Same-origin images, stylesheets and fonts are for the operator's
	// templates (a logo); nothing else loads, and nothing runs.
	h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; font-src 'self'; base-uri 'none'; frame-ancestors "+frameAncestors+"; form-action "+formAction)
	w.WriteHeader(pg.Status)
	_, err := w.Write(body.Bytes())
	return err
}

// PageError is a page that reports a refusal or a failure. The caller
// either shows it (Write) or hands it to its own error handling (Caddy's
// handle_errors), which the page's Name, Code and Status then describe.
type PageError struct {
	Page
	pages *Pages
}

// Error is safe to show: an operator's error page may print it.
func (e *PageError) Error() string {
	if e.Code == "" {
		return "sso: " + e.Title
	}
	return "sso: " + e.Title + " (reference " + e.Code + ")"
}

// Write shows the page.
func (e *PageError) Write(w http.ResponseWriter) error { return e.pages.Write(w, e.Page) }

// fail returns pg as an error for the caller to show or hand on.
func (rt *Route) fail(pg Page) error { return &PageError{Page: pg, pages: rt.Pages} }

// AsPageError finds a *PageError in err's chain.
func AsPageError(err error) (*PageError, bool) {
	var pe *PageError
	ok := errors.As(err, &pe)
	return pe, ok
}

// DefaultPathPrefix is where a route's endpoints live when it names no
// path_prefix: the sso directive's default (caddymodule), and the prefix
// of the sample pages' links, so the samples show the links a default
// route has.
const DefaultPathPrefix = "/.sso/"

// samplePrefix is the path prefix of the sample pages' links: the default.
const samplePrefix = DefaultPathPrefix

// SamplePage is the page of that name as a person would see it, with
// made-up data: what LoadPages tries each template on, and what the tests
// and the screenshots in docs/pages.md show.
func SamplePage(name string) Page {
	switch name {
	case PageSignInFailed:
		return signInFailedPage(samplePrefix, "sample", "id_token_nonce")
	case PageDenied:
		return Page{Name: PageDenied, Status: http.StatusForbidden, Title: "Access denied", IdP: "sample", Code: "jit_disabled",
			Message: "Your account has not been set up for this application. Ask your administrator for access."}
	case PageForbidden:
		return forbiddenPage(samplePrefix)
	case PageMissingAttributes:
		pg := missingAttributesPageOf("sample", "missing_attributes")
		pg.Received = []PageAttribute{{Name: "sub"}, {Name: "name"}, {Name: "email", Empty: true}}
		pg.Expected = []PageExpectation{{Attribute: "email", Names: []string{"email", "upn"}}}
		return pg
	case PageChooser:
		return chooserPage(samplePrefix, []string{"entra", "okta"}, "/")
	case PageSignInAgain:
		return signInAgainPage("/.sso/login?return_to=%2Fform")
	case PageUnknownIdP:
		return unknownIdPPage(samplePrefix)
	case PageLogout:
		return logoutPage(samplePrefix, "/")
	case PageSignedOut:
		return signedOutPage(samplePrefix, "/")
	case PageLogoutRefused:
		return logoutRefusedPage(samplePrefix)
	case PageLogoutIncomplete:
		return logoutIncompletePage("sample", "saml_signature_invalid", false)
	case PageUnavailable:
		return unavailablePage("sample", "idp_unavailable")
	case PageMisconfigured:
		return misconfiguredPage("sample")
	case PageBaseURLRequired:
		return baseURLRequiredPage()
	case PageStoreUnavailable:
		return signInNotSavedPage("sample")
	case PageCrossSiteFrame:
		return crossSiteFramePage("/widget")
	}
	return Page{Name: name, Status: http.StatusInternalServerError, Title: name}
}

// samplePages is SamplePage and the other forms the page named takes: a
// template's branch on SignedOut or Framed (which docs/pages.md asks
// translators to write) runs only on a page that sets it, and a field
// misspelt there must fail at load too, not on a person's page.
func samplePages(name string) []Page {
	pages := []Page{SamplePage(name)}
	switch name {
	case PageSignInAgain:
		pages = append(pages, frameSignInPage("/.sso/login?return_to=%2Fdashboard"))
	case PageLogoutIncomplete:
		pages = append(pages, logoutIncompletePage("sample", "saml_signature_invalid", true))
	case PageStoreUnavailable:
		pages = append(pages, storeUnavailablePage(msgSignOutUnrecorded))
	}
	return pages
}

// cspHost is what a host may be in a CSP source expression: no spaces,
// quotes, commas or semicolons, which would end the expression or the
// directive.
var cspHost = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]+)?$|^\[[0-9A-Fa-f:.]+\](:[0-9]+)?$`)

// originOf reduces an absolute http(s) URL to its origin
// (scheme://host[:port]), in a form safe as a CSP source expression, or
// returns "" for anything else.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || !cspHost.MatchString(u.Host) {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}
