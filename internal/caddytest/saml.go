package caddytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-sso/caddy-sso/internal/htmlform"
)

// Form is an HTML form of a page: where it posts, and its fields.
type Form struct {
	Action string
	Fields url.Values
}

// FirstForm returns the first form in body, its action resolved against
// the page's URL (htmlform.First, as a Form).
func FirstForm(page *url.URL, body string) (Form, bool) {
	action, fields, ok := htmlform.First(page, body)
	return Form{Action: action, Fields: fields}, ok
}

// TryPost submits f as a browser submits a form, following redirects.
func (b *Browser) TryPost(f Form) (*http.Response, error) {
	return b.post(b.Client, f)
}

// TryPostNoRedirects submits f and returns the first response.
func (b *Browser) TryPostNoRedirects(f Form) (*http.Response, error) {
	return b.post(b.NoRedirects(), f)
}

func (b *Browser) post(c *http.Client, f Form) (*http.Response, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, f.Action, strings.NewReader(f.Fields.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	return c.Do(req)
}

// TrySAMLResponseForm opens rawURL (a page that sends the browser to the
// SAML test IdP, idp/saml/samltest), signs in there, and stops at the
// IdP's self-submitting form that carries the SAMLResponse: what the
// browser would post to the ACS, for the caller to post where and as
// often as it likes.
func (b *Browser) TrySAMLResponseForm(rawURL, username, password string) (Form, error) {
	resp, err := b.TryGet(rawURL)
	for range 8 {
		if err != nil {
			return Form{}, err
		}
		raw, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if rerr != nil {
			return Form{}, rerr
		}
		body := string(raw)
		f, ok := FirstForm(resp.Request.URL, body)
		if !ok {
			return Form{}, fmt.Errorf("no form at %s (%s): %.300s", resp.Request.URL, resp.Status, body)
		}
		if f.Fields.Has("SAMLResponse") {
			return f, nil
		}
		if strings.Contains(body, `id="username"`) {
			f.Fields.Set("username", username)
			f.Fields.Set("password", password)
		}
		resp, err = b.TryPost(f)
	}
	return Form{}, fmt.Errorf("no SAML response form after 8 pages from %s", rawURL)
}
