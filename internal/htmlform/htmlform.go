// Package htmlform reads the forms of the gateway's and the test IdPs'
// pages, for tests that act as a browser without JavaScript: SAML's POST
// binding, the IdPs' login forms, the gateway's sign-out confirmation.
// The pages are our own or crewjam/saml's, so a pattern reads them; it is
// not an HTML parser for pages of the wild.
package htmlform

import (
	"html"
	"net/url"
	"regexp"
	"strings"
)

var (
	formRE  = regexp.MustCompile(`(?s)<form[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>`)
	inputRE = regexp.MustCompile(`<input[^>]*>`)
	attrRE  = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// First returns the action of body's first form, resolved against the
// page's URL, and the names and values of its inputs; ok is false when
// the page has no form.
func First(page *url.URL, body string) (action string, fields url.Values, ok bool) {
	m := formRE.FindStringSubmatch(body)
	if m == nil || page == nil {
		return "", nil, false
	}
	u, err := page.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return "", nil, false
	}
	fields = url.Values{}
	for _, in := range inputRE.FindAllString(m[2], -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(in, -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		if attrs["name"] != "" {
			fields.Set(attrs["name"], attrs["value"])
		}
	}
	return u.String(), fields, true
}

// AutoPosts tells the pages a browser with JavaScript submits by itself:
// SAML messages in the POST binding, and samltest's re-post after login
// (its form with id "resume").
func AutoPosts(body string) bool {
	return strings.Contains(body, `name="SAMLResponse"`) || strings.Contains(body, `name="SAMLRequest"`) ||
		strings.Contains(body, `id="resume"`)
}
