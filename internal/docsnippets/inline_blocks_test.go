package docsnippets_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// inlineBlock is an inline code span that writes a setting with its block
// on one line (`session { lifetime <d> }`): the shape of a setting a reader
// copies from a table or a sentence, which no ```caddyfile block checks.
var inlineBlock = regexp.MustCompile("`([a-z_][a-z0-9_]*) \\{ ([^`{}]*) \\}`")

// inlinePlaceholders are the <…> values the docs write in such spans.
var inlinePlaceholders = strings.NewReplacer("<d>", "1h", "<n>", "5", "<Name>", "X-Name", "<name>", "corp")

// TestDocInlineBlocks: every such span adapts somewhere a reader could put
// it: as a site's directive, a setting of a site's sso directive, a
// setting of the global sso option, or a global option. docs/security.md
// once wrote `identity_jwt { header }`, a block the parser refuses
// (identity_jwt takes its settings on its line). Spans with "…" are
// sketches, not settings, and are left out.
func TestDocInlineBlocks(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	const idp = "\t\tidp corp oidc {\n\t\t\tissuer https://idp.example.com\n\t\t\tclient_id docs-client\n\t\t}\n"
	checked := 0
	for _, f := range append([]string{filepath.Join(root, "README.md")}, files...) {
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range inlineBlock.FindAllStringSubmatch(string(doc), -1) {
			if strings.Contains(m[2], "…") {
				continue
			}
			span := m[1] + " {\n" + strings.ReplaceAll(inlinePlaceholders.Replace(m[2]), "; ", "\n") + "\n}\n"
			var errs []string
			for _, cf := range []string{
				"app.example.com {\n" + span + "}\n",
				"{\n\tsso {\n" + idp + "\t}\n}\napp.example.com {\n\tsso {\n" + span + "\t}\n}\n",
				"{\n\tsso {\n" + idp + span + "\t}\n}\n",
				"{\n" + span + "}\n",
			} {
				_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
				if err == nil {
					errs = nil
					break
				}
				errs = append(errs, err.Error())
			}
			if errs != nil {
				t.Errorf("%s: %s adapts nowhere (site directive, site sso setting, sso option, global option): %q", filepath.Base(f), m[0], errs)
			}
			checked++
		}
	}
	if checked < 5 {
		t.Errorf("checked only %d inline blocks", checked)
	}
}
