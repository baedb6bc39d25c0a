package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// TestPagesInChromium opens every default page in a real browser, with
// the headers the gateway sends (its CSP among them), and checks that it
// shows its heading and its reference code and that the stylesheet
// applied. A screenshot of each is written to $SSO_SCREENSHOTS (or the
// test's temporary directory), for a person to look at.
func TestPagesInChromium(t *testing.T) {
	ctx := browsertest.New(t, 900, 700)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := (*gateway.Pages)(nil).Write(w, gateway.SamplePage(strings.TrimPrefix(r.URL.Path, "/"))); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	dir := os.Getenv("SSO_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	for _, name := range gateway.PageNames {
		pg := gateway.SamplePage(name)
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"+name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		heading := eval[string](t, ctx, `document.querySelector("h1").textContent`)
		reference := eval[string](t, ctx, `(document.querySelector("small code") || {}).textContent || ""`)
		// The stylesheet sets max-width:40rem on the body: the CSP let
		// the inline style through.
		width := eval[string](t, ctx, `getComputedStyle(document.body).maxWidth`)
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if heading != pg.Title {
			t.Errorf("%s: heading %q, want %q", name, heading, pg.Title)
		}
		if reference != pg.Code {
			t.Errorf("%s: reference %q, want %q", name, reference, pg.Code)
		}
		if width != "640px" {
			t.Errorf("%s: body max-width %q: the stylesheet did not apply", name, width)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}
