package idp_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

// readCounter counts what is read of a request body.
type readCounter struct {
	r    io.Reader
	read int
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}

func (c *readCounter) Close() error { return nil }

// TestReadForm: a form-encoded body of up to limit bytes is parsed (the
// body's fields in r.PostForm, the query's too in r.Form); one byte more
// is ErrFormTooLarge, having read no more than limit+1 bytes; a multipart
// body (whose file parts ParseMultipartForm would spool to disk) and any
// other type are left unread, without an error; a malformed form is an
// error, but not ErrFormTooLarge.
func TestReadForm(t *testing.T) {
	const limit = 64
	exact := "a=1&pad=" + strings.Repeat("x", limit-len("a=1&pad="))
	multipartBody := "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\n" +
		"Content-Disposition: form-data; name=\"upload\"; filename=\"x.bin\"\r\n\r\n" + strings.Repeat("x", 10) + "\r\n--b--\r\n"
	for _, tc := range []struct {
		name, contentType, body string
		tooLarge, fails         bool
		maxRead                 int
		postA, formQ            string // r.PostForm's a, r.Form's q
	}{
		{"form of exactly the limit", "application/x-www-form-urlencoded", exact, false, false, limit + 1, "1", "z"},
		{"form one byte over", "application/x-www-form-urlencoded", exact + "x", true, true, limit + 1, "", ""},
		{"form far over", "application/x-www-form-urlencoded", exact + strings.Repeat("x", 1<<20), true, true, limit + 1, "", ""},
		{"multipart", "multipart/form-data; boundary=b", multipartBody, false, false, 0, "", "z"},
		{"JSON", "application/json", `{"a":"1"}`, false, false, 0, "", "z"},
		{"malformed form", "application/x-www-form-urlencoded", "a=%zz", false, true, limit + 1, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &readCounter{r: strings.NewReader(tc.body)}
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/x?q=z", body)
			r.Header.Set("Content-Type", tc.contentType)
			err := idp.ReadForm(httptest.NewRecorder(), r, limit)
			if (err != nil) != tc.fails || errors.Is(err, idp.ErrFormTooLarge) != tc.tooLarge {
				t.Fatalf("ReadForm = %v; want failure %v, ErrFormTooLarge %v", err, tc.fails, tc.tooLarge)
			}
			if body.read > tc.maxRead {
				t.Errorf("read %d bytes of the %d-byte body, want at most %d", body.read, len(tc.body), tc.maxRead)
			}
			if tc.fails {
				return
			}
			if got := r.PostForm.Get("a"); got != tc.postA {
				t.Errorf("PostForm a = %q, want %q", got, tc.postA)
			}
			if got := r.Form.Get("q"); got != tc.formQ {
				t.Errorf("Form q = %q, want %q", got, tc.formQ)
			}
			if r.MultipartForm != nil {
				t.Errorf("a multipart form was parsed: %v", r.MultipartForm.Value)
			}
		})
	}
}
