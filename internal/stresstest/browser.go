package stresstest

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// Browser is a cookie-keeping HTTP client that signs in as a person with
// a browser does: it follows redirects, fills in the IdP's login form and
// submits the auto-posting forms of SAML. It reports failures as errors
// (a load generator counts them), never as test failures.
type Browser struct {
	Client *http.Client
	Jar    *cookiejar.Jar
}

// NewBrowser returns a browser with an empty cookie jar over transport
// (nil: http.DefaultTransport). Sharing one transport among many browsers
// keeps their connections pooled.
func NewBrowser(transport http.RoundTripper) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{Jar: jar, Client: &http.Client{Jar: jar, Transport: transport}}
}

// Page is a response as a browser shows it.
type Page struct {
	URL    *url.URL
	Status int
	Header http.Header
	Body   string
}

// Title is the page's <title>, or "".
func (p Page) Title() string {
	m := titleRE.FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

var titleRE = regexp.MustCompile(`<title>([^<]*)</title>`)

func (b *Browser) do(ctx context.Context, method, rawURL string, form url.Values, accept string) (Page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return Page{}, err
	}
	req.Header.Set("Accept", accept)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Page{}, fmt.Errorf("%s %s: reading the response: %w", method, rawURL, err)
	}
	return Page{URL: resp.Request.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(data)}, nil
}

const navigation = "text/html,application/xhtml+xml,*/*;q=0.8"

// Get navigates to rawURL.
func (b *Browser) Get(ctx context.Context, rawURL string) (Page, error) {
	return b.do(ctx, http.MethodGet, rawURL, nil, navigation)
}

// API sends a GET as a script would (Accept: application/json): without a
// session the gateway answers 401 instead of starting a sign-in.
func (b *Browser) API(ctx context.Context, rawURL string) (Page, error) {
	return b.do(ctx, http.MethodGet, rawURL, nil, "application/json")
}

// Post submits a form.
func (b *Browser) Post(ctx context.Context, rawURL string, form url.Values) (Page, error) {
	return b.do(ctx, http.MethodPost, rawURL, form, navigation)
}

// SignIn starts a sign-in with the IdP named idpName at the gateway base,
// signs in at the IdP as username, and returns the page the browser ends
// on: the upstream's answer at returnTo, or the gateway's page saying why
// not. Whether the sign-in made a session is SessionCookie's answer, also
// when SignIn fails half-way.
func (b *Browser) SignIn(ctx context.Context, base, idpName, username, password, returnTo string) (Page, error) {
	p, err := b.Get(ctx, base+"/.sso/login?"+url.Values{"idp": {idpName}, "return_to": {returnTo}}.Encode())
	loggedIn := false
	for range 10 {
		if err != nil {
			return p, err
		}
		action, fields, ok := p.form()
		switch {
		case !ok:
			return p, nil
		case strings.Contains(p.Body, `id="username"`):
			if loggedIn {
				return p, fmt.Errorf("the IdP refused %s: %s", username, p.Title())
			}
			loggedIn = true
			fields.Set("username", username)
			fields.Set("password", password)
		case !isAutoPost(p.Body):
			return p, nil
		}
		p, err = b.Post(ctx, action, fields)
	}
	return p, fmt.Errorf("sign-in of %s did not end after 10 forms, at %s", username, p.URL)
}

// isAutoPost tells the forms a browser with JavaScript submits by itself:
// SAML messages in the POST binding and samltest's re-post after login.
func isAutoPost(body string) bool {
	return strings.Contains(body, `name="SAMLResponse"`) || strings.Contains(body, `name="SAMLRequest"`) ||
		strings.Contains(body, `id="resume"`)
}

var (
	formRE  = regexp.MustCompile(`(?s)<form[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>`)
	inputRE = regexp.MustCompile(`<input[^>]*>`)
	attrRE  = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// form returns the absolute action and the fields of the page's first form.
func (p Page) form() (string, url.Values, bool) {
	m := formRE.FindStringSubmatch(p.Body)
	if m == nil || p.URL == nil {
		return "", nil, false
	}
	action, err := p.URL.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return "", nil, false
	}
	fields := url.Values{}
	for _, in := range inputRE.FindAllString(m[2], -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(in, -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		if attrs["name"] != "" {
			fields.Set(attrs["name"], attrs["value"])
		}
	}
	return action.String(), fields, true
}

// SessionCookie returns the gateway's session cookie for base that the
// jar holds, or "".
func (b *Browser) SessionCookie(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	for _, c := range b.Jar.Cookies(u) {
		if strings.Contains(c.Name, "sso_session") {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

// WithSession sends an API-style GET carrying only the session cookie
// (cookie is SessionCookie's "name=value"), on client, and decodes the
// upstream's answer. Anything but the upstream's 200 is an error.
func WithSession(ctx context.Context, client *http.Client, rawURL, cookie string) (Echoed, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return Echoed{}, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cookie", cookie)
	resp, err := client.Do(req)
	if err != nil {
		return Echoed{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Echoed{}, err
	}
	var e Echoed
	if resp.StatusCode != http.StatusOK {
		return e, fmt.Errorf("GET %s with the session: %s: %.200s", rawURL, resp.Status, data)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("GET %s: not the upstream's answer: %.200s", rawURL, data)
	}
	return e, nil
}
