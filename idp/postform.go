package idp

import (
	"bytes"
	"crypto/rand"
	"html/template"
	"net/http"
)

// FormField is one hidden input of an auto-submitting form.
type FormField struct{ Name, Value string }

// postFormTemplate is the form PostForm renders. The button is the way on
// for a browser without script; the script hides it and submits at once.
// HTMLFormElement.prototype.submit is called rather than form.submit, which
// a field named "submit" would shadow.
var postFormTemplate = template.Must(template.New("post-form").Parse(`` +
	`<form method="post" action="{{.Action}}" id="sso-post-form">` +
	`{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">{{end}}` +
	`<input id="sso-post-submit" type="submit" value="Submit">` +
	`</form>` +
	`<script nonce="{{.Nonce}}">document.getElementById('sso-post-submit').style.visibility="hidden";` +
	`HTMLFormElement.prototype.submit.call(document.getElementById('sso-post-form'));</script>`))

// PostForm returns, for WritePostForm, a form that POSTs fields
// (application/x-www-form-urlencoded) to action. It is how a message that
// carries a token goes to an IdP: in a form body, unlike a URL's query, it
// is in no access log (Caddy's logs a redirect's Location), no browser
// history and no Referer.
func PostForm(action string, fields ...FormField) func(nonce string) []byte {
	return func(nonce string) []byte {
		var b bytes.Buffer
		data := struct {
			Action, Nonce string
			Fields        []FormField
		}{action, nonce, fields}
		if err := postFormTemplate.Execute(&b, data); err != nil {
			panic(err) // the template is fixed and its data plain strings
		}
		return b.Bytes()
	}
}

// WritePostForm answers with an HTML page around an auto-submitting form
// (form returns it for a CSP nonce; PostForm makes one, crewjam/saml's
// PostWithNonce another), under a Content-Security-Policy that runs only
// that script: the page carries a signed message or a token and nothing
// else may run on it. It is not cached (no-store), sends no Referer on,
// and cannot be framed. There is no form-action: the IdP's endpoint may
// redirect through hosts of its own before it returns the browser, and
// browsers hold each redirect of a form submission to form-action; the
// only form is the one rendered here, its values escaped.
func WritePostForm(w http.ResponseWriter, form func(nonce string) []byte) {
	nonce := rand.Text()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	var page []byte
	page = append(page, `<!doctype html><html><head><meta charset="utf-8"><title>Continue</title></head><body><noscript><p>JavaScript is off: press Submit to continue.</p></noscript>`...)
	page = append(page, form(nonce)...)
	page = append(page, `</body></html>`...)
	_, _ = w.Write(page)
}
