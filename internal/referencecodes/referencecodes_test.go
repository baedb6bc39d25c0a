package referencecodes

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestEveryReferenceCodeIsDocumented collects the reference codes from the
// source and fails naming each one docs/troubleshooting.md does not show
// as `code`.
//
// How the codes are found: every non-test .go file of the repository is
// parsed with go/parser (the test IdPs oidctest and samltest, examples,
// bench and internal are left out: they are not the gateway), and a code is
//
//   - the value of a string constant whose name starts with Code or
//     contains Reason (idp/oidc's and idp/saml's Code*, provision's
//     Reason*, revokeReason*, scim's RevokeReasonDeactivated);
//   - a string literal, or a string constant of the same package, given as
//     the Code or Reason field of a composite literal (the page{Code: …}
//     literals, store.Event{Reason: …});
//   - a string literal assigned to a variable or field whose name ends in
//     code or reason (`code := "login_failed"`, `out.linkReason = …`).
//
// Every other way a code reaches a page or the audit trail goes through
// one of these: LoginError.Code comes from the Code* constants, a denial's
// Reason from provision's Reason* constants. TestCollectorFindsKnownCodes
// keeps the collector honest.
func TestEveryReferenceCodeIsDocumented(t *testing.T) {
	root := moduleRoot(t)
	codes := collect(t, root)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, code := range sortedKeys(codes) {
		if !strings.Contains(string(doc), "`"+code+"`") {
			missing = append(missing, code+" (from "+codes[code]+")")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("docs/troubleshooting.md does not explain these reference codes (write each as `code`):\n  %s", strings.Join(missing, "\n  "))
	}
	t.Logf("%d reference codes, all documented", len(codes))
}

// TestCollectorFindsKnownCodes: codes of every kind the collector must see,
// so that a change in how the code is written cannot make the check above
// pass by finding nothing.
func TestCollectorFindsKnownCodes(t *testing.T) {
	codes := collect(t, moduleRoot(t))
	for _, want := range []string{
		"cross_site_logout",  // page{Code: literal} in caddymodule
		"login_failed",       // code := literal
		"idp_logout",         // store.Event{Reason: literal}
		"signed_in_again",    // store.Event{Reason: literal} in signin
		"revoked",            // a Reason* constant of account
		"id_token_nonce",     // idp/oidc Code* constant
		"saml_logout_failed", // idp/saml Code* constant
		"email_conflict",     // provision Reason* constant
		"external_id",        // out.linkReason = literal
	} {
		if _, ok := codes[want]; !ok {
			t.Errorf("the collector did not find %q", want)
		}
	}
}

// moduleRoot is the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// skipDirs are not the gateway: they emit no reference codes a user sees.
var skipDirs = []string{"testdata", "oidctest", "samltest", "examples", "bench", "internal", "cmd"}

// collect returns every reference code found under root, with where it
// was first found.
func collect(t *testing.T, root string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	byDir := map[string][]*ast.File{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || slices.Contains(skipDirs, d.Name())) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		byDir[filepath.Dir(path)] = append(byDir[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	codes := map[string]string{}
	add := func(code string, pos token.Pos) {
		if _, ok := codes[code]; !ok && code != "" {
			p := fset.Position(pos)
			rel, _ := filepath.Rel(root, p.Filename)
			codes[code] = rel + ":" + strconv.Itoa(p.Line)
		}
	}
	for _, files := range byDir {
		consts := packageStringConsts(files)
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.ValueSpec:
					for i, name := range n.Names {
						if i < len(n.Values) && (strings.HasPrefix(name.Name, "Code") || strings.Contains(name.Name, "Reason")) {
							if s, ok := stringLit(n.Values[i]); ok {
								add(s, n.Pos())
							}
						}
					}
				case *ast.KeyValueExpr:
					if k, ok := n.Key.(*ast.Ident); ok && (k.Name == "Code" || k.Name == "Reason") {
						if s, ok := stringLit(n.Value); ok {
							add(s, n.Pos())
						} else if id, ok := n.Value.(*ast.Ident); ok {
							add(consts[id.Name], n.Pos())
						}
					}
				case *ast.AssignStmt:
					for i, lhs := range n.Lhs {
						if i >= len(n.Rhs) || len(n.Lhs) != len(n.Rhs) {
							break
						}
						name := strings.ToLower(lastName(lhs))
						if strings.HasSuffix(name, "code") || strings.HasSuffix(name, "reason") {
							if s, ok := stringLit(n.Rhs[i]); ok {
								add(s, n.Pos())
							}
						}
					}
				}
				return true
			})
		}
	}
	return codes
}

// packageStringConsts maps the package's string constants to their values.
func packageStringConsts(files []*ast.File) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if s, ok := stringLit(vs.Values[i]); ok {
							out[name.Name] = s
						}
					}
				}
			}
		}
	}
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

// lastName is the identifier an assignment writes: x for x, f for a.b.f.
func lastName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
