package caddysso_test

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const modulePath = "github.com/caddy-sso/caddy-sso"

// internalForLayers are the internal packages the layered packages may
// import; the others serve tests and benchmarks.
var internalForLayers = map[string]bool{
	"internal/logbudget": true, "internal/pagestyle": true, "internal/routeorder": true, "internal/termtext": true,
	"internal/urlpath": true, "internal/maildomain": true,
	"internal/earlydata": true,
}

// TestImportsFollowLayers holds every package to the layer table in
// docs/architecture.md: a package imports only from layers below its own,
// tools import any layer and no layer imports them. The table is read from
// the document so that the map a reader trusts is the one the build keeps.
func TestImportsFollowLayers(t *testing.T) {
	layer, tools := readLayers(t, "docs/architecture.md")
	imports := projectImports(t)
	for pkg := range imports {
		_, layered := layer[pkg]
		if !layered && !tools[pkg] && !outsideLayers(pkg) {
			t.Errorf("package %s is in no layer of docs/architecture.md", pkg)
		}
	}
	for pkg := range layer {
		if _, ok := imports[pkg]; !ok {
			t.Errorf("docs/architecture.md names package %s, which does not exist", pkg)
		}
	}
	for pkg, deps := range imports {
		from, layered := layer[pkg]
		if !layered {
			continue
		}
		for _, dep := range deps {
			to, depLayered := layer[dep]
			switch {
			case tools[dep]:
				t.Errorf("%s (layer %d) imports the tool %s", pkg, from, dep)
			case strings.HasPrefix(dep, "internal/"):
				if !internalForLayers[dep] {
					t.Errorf("%s (layer %d) imports %s, which serves tests", pkg, from, dep)
				}
			case depLayered && to <= from:
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go to lower layers only", pkg, from, dep, to)
			case !depLayered:
				t.Errorf("%s imports %s, which is in no layer", pkg, dep)
			}
		}
	}
}

// readLayers parses the fenced block after the "layers:" comment: lines
// "<n> <package>… [# comment]" and one "tools <package>…" line.
func readLayers(t *testing.T, doc string) (map[string]int, map[string]bool) {
	t.Helper()
	f, err := os.Open(doc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layer, tools := map[string]int{}, map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "<!-- layers:") {
	}
	if !sc.Scan() || sc.Text() != "```" {
		t.Fatalf("%s: no layer table after the <!-- layers: --> comment", doc)
	}
	for sc.Scan() && sc.Text() != "```" {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			t.Fatalf("%s: layer line %q names no package", doc, sc.Text())
		}
		n, err := strconv.Atoi(fields[0])
		if err != nil && fields[0] != "tools" {
			t.Fatalf("%s: layer line %q: want a number or tools first", doc, sc.Text())
		}
		for _, pkg := range fields[1:] {
			if fields[0] == "tools" {
				tools[pkg] = true
			} else {
				layer[pkg] = n
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(layer) == 0 {
		t.Fatalf("%s: the layer table is empty", doc)
	}
	return layer, tools
}

// outsideLayers are the packages the table leaves out: internal helpers,
// benchmarks and examples, which import whatever they exercise.
func outsideLayers(pkg string) bool {
	top, _, _ := strings.Cut(pkg, "/")
	return top == "internal" || top == "bench" || top == "examples"
}

// projectImports maps each package of the module ("." for the root) to
// the module's packages its non-test files import.
func projectImports(t *testing.T) map[string][]string {
	t.Helper()
	imports := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(p))
		if _, ok := imports[pkg]; !ok {
			imports[pkg] = nil
		}
		for _, spec := range f.Imports {
			dep, _ := strconv.Unquote(spec.Path.Value)
			if dep == modulePath {
				dep = "."
			} else if rest, ok := strings.CutPrefix(dep, modulePath+"/"); ok {
				dep = path.Clean(rest)
			} else {
				continue
			}
			imports[pkg] = append(imports[pkg], dep)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return imports
}
