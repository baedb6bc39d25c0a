package caddymodule

import (
	"html/template"
	"net/http"

	"go.uber.org/zap"
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
}

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
<meta name="referrer" content="no-referrer"><title>{{.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:0 .25em}li{margin:.2em 0}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{if .Expected}}<h2>What the identity provider must send</h2><ul>
{{range .Expected}}<li><code>{{.Attribute}}</code>: one of {{range $i, $n := .Names}}{{if $i}}, {{end}}<code>{{$n}}</code>{{end}}</li>{{end}}</ul>
<h2>What it sent</h2>{{if .Received}}<ul>{{range .Received}}<li><code>{{.Name}}</code>{{if .Empty}} (sent empty){{end}}</li>{{end}}</ul>{{else}}<p>No attributes.</p>{{end}}{{end}}
{{if .Links}}<ul>{{range .Links}}<li><a href="{{.Href}}">{{.Text}}</a></li>{{end}}</ul>{{end}}
{{if .Action}}<form method="post" action="{{.Action}}"><input type="hidden" name="return_to" value="{{.ReturnTo}}"><button id="submit" type="submit">{{.Button}}</button></form>{{end}}
{{if .Code}}<p><small>Reference: <code>{{.Code}}</code></small></p>{{end}}
</body></html>
`))

func (p page) write(w http.ResponseWriter) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.WriteHeader(p.Status)
	return pageTemplate.Execute(w, p)
}

// signInNotSaved answers a sign-in the IdP vouched for but the store could
// not record (a full disk, a read-only or failing file system): nothing
// of it was kept, so the person may simply try again later. The log line
// carries the store's error, which names the file and the cause.
func (h *Handler) signInNotSaved(w http.ResponseWriter, p *identityProvider, err error) error {
	h.logger.Error("sign-in could not be saved; nothing of it was kept", zap.String("idp", p.name), zap.Error(err))
	w.Header().Set("Retry-After", "60")
	return page{Status: http.StatusServiceUnavailable, Title: "Sign-in is unavailable",
		Message: "Your sign-in could not be saved. Nothing was changed. Try again in a few minutes; if it keeps failing, give your administrator the reference below.",
		Code:    "store_unavailable"}.write(w)
}
