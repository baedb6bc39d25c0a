package gateway

import (
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/caddy-sso/caddy-sso/internal/pagestyle"
)

// page is a plain page shown to a person: a title, a sentence, and
// optionally the attribute names that help an IdP admin fix a mapping.
// It never shows attribute values, tokens, or internal errors.
type page struct {
	Status   int
	Title    string
	Message  string
	Code     string          // stable reason, quoted to support staff
	Received []pageAttribute // attribute names that arrived
	Expected []pageExpectation
	Action   string // form action for a button, if any
	Button   string
	ReturnTo string
	Links    []pageLink // choices, such as the sign-in methods of a site
	// FormTargets are origins, besides this site's, that the form's
	// submission may be redirected to: the sign-out page's POST continues
	// at the IdP's logout endpoint, and browsers check the CSP form-action
	// at every redirect of a form submission.
	FormTargets []string
}

// CSS is the stylesheet every page of the project shares.
func (page) CSS() template.CSS { return pagestyle.Template() }

type pageLink struct {
	Href, Text string
}

// pageAttribute is an attribute that arrived: its name, and whether all
// its values were empty (an IdP mapping that sends nothing for a user).
type pageAttribute struct {
	Name  string
	Empty bool
}

type pageExpectation struct {
	Attribute string
	Names     []string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title>
<style>{{.CSS}}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{if .Expected}}<h2>What the identity provider must send</h2><ul>
{{range .Expected}}<li><code>{{.Attribute}}</code>: one of {{range $i, $n := .Names}}{{if $i}}, {{end}}<code>{{$n}}</code>{{end}}</li>{{end}}</ul>
<h2>What it sent</h2>{{if .Received}}<ul>{{range .Received}}<li><code>{{.Name}}</code>{{if .Empty}} (sent empty){{end}}</li>{{end}}</ul>{{else}}<p>No attributes.</p>{{end}}{{end}}
{{if .Links}}<ul>{{range .Links}}<li><a href="{{.Href}}">{{.Text}}</a></li>{{end}}</ul>{{end}}
{{if .Action}}<form method="post" action="{{.Action}}"><input type="hidden" name="return_to" value="{{.ReturnTo}}"><button id="submit" type="submit">{{.Button}}</button></form>{{end}}
{{if .Code}}<p><small>Reference: <code>{{.Code}}</code></small></p>{{end}}
</body></html>
`))

// write sends the page. Its Referrer-Policy is same-origin: other sites
// get no referrer, while the page's own form POST carries the site's origin
// in its Origin header. Under no-referrer browsers send "Origin: null",
// which the sign-out endpoint must refuse (see sameOrigin).
func (p page) write(w http.ResponseWriter) error {
	formAction := "'self'"
	for _, o := range p.FormTargets {
		if o = originOf(o); o != "" {
			formAction += " " + o
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'; form-action "+formAction)
	w.WriteHeader(p.Status)
	return pageTemplate.Execute(w, p)
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
