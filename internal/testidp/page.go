package testidp

import (
	"html/template"
	"net/url"
	"strings"
)

// ParseBase checks the URL a test IdP is served at (http or https, with a
// host, optionally a path, no query or fragment) and returns its path
// without a trailing slash.
func ParseBase(raw string) (path string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	return strings.TrimSuffix(u.Path, "/"), true
}

// LoginPage parses a test IdP's login page, with name (its package) in
// the title and about (template text) saying which IdP it is, so that a
// person who followed a sign-in redirect knows they are at the IdP, not at
// the application. The page reads .CSS, .Hint, .Error, .Action and
// .Hidden.
func LoginPage(name, about string) (*template.Template, error) {
	return template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in - ` + name + `</title><style>{{.CSS}}</style></head>
<body>
<h1>Sign in</h1>
<p class="note" id="provider">` + about + `</p>
{{if .Hint}}<p class="hint" id="hint">{{.Hint}}</p>{{end}}
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<label for="username">Username</label><input id="username" name="username" autocomplete="username" autofocus required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login" type="submit">Sign in</button>
</form>
</body></html>
`)
}
