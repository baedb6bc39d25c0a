// Package docsnippets checks that every Caddyfile an operator copies from
// the documentation works: each ```caddyfile block of README.md and
// docs/*.md, Caddyfile.example and the examples' Caddyfiles are adapted as
// `caddy adapt` does and validated as `caddy validate` does, through the
// modules the shipped Caddy (cmd/caddy) registers; an inline code span that
// writes a setting with its block on one line is adapted too
// (TestDocInlineBlocks).
package docsnippets_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	// What cmd/caddy imports: Caddy's standard modules and caddy-sso.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sso/caddy-sso"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// root is the repository, from this package's directory.
const root = "../.."

// block is one Caddyfile as the docs give it: where it starts (the line
// of its opening fence, or 1 for a whole file) and its text.
type block struct {
	file string // relative to the repository
	line int
	text string
}

func (b block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// unchecked lists the doc blocks that cannot be made a complete Caddyfile,
// by file and first line, with the reason. Any other block that cannot be
// completed fails the test, so a new block is checked or listed here with
// a reason a reviewer can judge.
var unchecked = map[[2]string]string{}

// knownProblems lists blocks, by file and first line, known to fail, with
// the start of their first problem. The test holds them to that failure
// and fails once they no longer fail so, so that the entry goes.
var knownProblems = map[[2]string]string{
	// The block filters the tokens out of the site's access log, as the
	// warning asks, and still draws it: a handler does not see the logging
	// configuration, so gateway/tokens.go warns about every verify-mode
	// route that passes tokens (docs/security.md says so).
	{"docs/security.md", "auth.example.com {"}: "validate logged at warn (http.handlers.sso): in auth_request mode the tokens",
}

// envValues are plausible values of the environment variables the blocks
// read ({env.NAME}, {$NAME}): a block that reads another one fails until
// it is given a value here.
var envValues = map[string]string{
	"ENTRA_TENANT_ID":           "8d5a3a1e-6c2b-4a9f-9a61-2f0c3b7d4e15",
	"ENTRA_CLIENT_ID":           "3f0e1b2c-4d5a-4b6c-8d7e-9f0a1b2c3d4e",
	"ENTRA_CLIENT_SECRET":       "Qx8~docs.entra-secret_0123456789abcd",
	"ENTRA_APP_ID":              "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e",
	"OKTA_CLIENT_ID":            "0oa1b2c3d4e5f6g7h8i9",
	"OKTA_CLIENT_SECRET":        "docs-okta-secret-0123456789abcdefghijkl",
	"OKTA_SAML_METADATA_URL":    "https://example.okta.com/app/exk1b2c3d4e5f6g7h8i9/sso/saml/metadata",
	"PINGONE_ENV_ID":            "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
	"PINGONE_APP_ID":            "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b",
	"PINGONE_CLIENT_ID":         "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
	"PINGONE_CLIENT_SECRET":     "docs-pingone-secret-0123456789abcdefgh",
	"PINGONE_SAML_METADATA_URL": "https://auth.pingone.eu/1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/saml20/metadata/6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b",
	"OIDC_ISSUER":               "https://idp.example.com",
	"OIDC_CLIENT_ID":            "docs-client",
	"OIDC_CLIENT_SECRET":        "docs-oidc-secret-0123456789abcdefghijk",
	"SCIM_TOKEN_ENTRA":          "docs-scim-entra-0123456789abcdefghij",
	"SCIM_TOKEN_OKTA":           "docs-scim-okta-0123456789abcdefghijk",
	"SSO_DATABASE_URL":          "postgres://caddy@db.example.com:5432/sso?sslmode=verify-full",
}

// TestDocCaddyfiles adapts and validates every Caddyfile of the docs and
// the examples, completed where a block shows only part of one.
func TestDocCaddyfiles(t *testing.T) {
	blocks := docBlocks(t)
	if len(blocks) < 20 {
		t.Fatalf("found only %d ```caddyfile blocks in README.md and docs/*.md", len(blocks))
	}
	shipped := shippedFiles(t)
	if len(shipped) < 8 {
		t.Fatalf("found only %d shipped Caddyfiles", len(shipped))
	}
	setEnv(t, append(blocks, shipped...))
	fx := newFixtures(t)
	offline := newCountingListener(t)

	used := map[[2]string]bool{}
	for _, b := range append(blocks, shipped...) {
		t.Run(b.String(), func(t *testing.T) {
			key := [2]string{b.file, firstLine(b.text)}
			cf, err := complete(b.text)
			if reason, ok := unchecked[key]; ok {
				used[key] = true
				if err == nil {
					t.Errorf("%s is listed as unchecked (%s) but can be completed: remove it from unchecked", b, reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: %v; make the block complete, or list it in unchecked with the reason", b, err)
			}
			cf = fx.rewrite(t, cf)
			problems := check(t, cf)
			if want, ok := knownProblems[key]; ok {
				used[key] = true
				if len(problems) == 0 || !strings.Contains(problems[0], want) {
					t.Errorf("%s is listed in knownProblems (%q) but no longer fails so: remove it from knownProblems; problems: %q", b, want, problems)
				}
				return
			}
			for _, p := range problems {
				t.Errorf("%s: %s", b, p)
			}
			if len(problems) > 0 {
				return
			}
			// Validation reaches no IdP: with every issuer and metadata
			// URL on a listener that counts connections, it still
			// passes, and nothing connected.
			for _, p := range check(t, offline.rewrite(t, cf)) {
				t.Errorf("%s, its IdPs on loopback: %s", b, p)
			}
			if n := offline.accepted.Load(); n != 0 {
				t.Errorf("%s: validation connected to the IdP %d times; it must stay off the network (or point the IdPs at oidctest/samltest here)", b, n)
			}
		})
	}
	if n := len(blocks) + len(shipped); testing.Verbose() {
		t.Logf("checked %d Caddyfiles: %d doc blocks, %d shipped files", n, len(blocks), len(shipped))
	}
	for key, reason := range unchecked {
		if !used[key] {
			t.Errorf("unchecked lists %s %q (%s), which no longer exists", key[0], key[1], reason)
		}
	}
	for key := range knownProblems {
		if !used[key] {
			t.Errorf("knownProblems lists %s %q, which no longer exists", key[0], key[1])
		}
	}
}

// check adapts cf as `caddy adapt` does, and validates the JSON as `caddy
// validate` does: its problems are the adapter's error or warnings, the
// validation's error, and what validation logged at WARN or above (a
// configuration the docs give must not draw a warning), each with the
// Caddyfile it was found in.
func check(t *testing.T, cf string) []string {
	t.Helper()
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return []string{fmt.Sprintf("adapt: %v\n%s", err, numbered(cf))}
	}
	var problems []string
	for _, w := range warnings {
		problems = append(problems, fmt.Sprintf("adapt warning: %s\n%s", w.String(), numbered(cf)))
	}
	var cfg *caddy.Config
	if err := caddy.StrictUnmarshalJSON(caddy.RemoveMetaFields(adapted), &cfg); err != nil {
		return append(problems, fmt.Sprintf("decoding the adapted config: %v", err))
	}
	logFile := captureLog(t, cfg)
	if err := caddy.Validate(cfg); err != nil {
		problems = append(problems, fmt.Sprintf("validate: %v\n%s", err, numbered(cf)))
	}
	logged, err := os.ReadFile(logFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(logged)) {
		var entry struct{ Level, Logger, Msg string }
		if json.Unmarshal([]byte(l), &entry) == nil && entry.Level != "debug" && entry.Level != "info" {
			problems = append(problems, fmt.Sprintf("validate logged at %s (%s): %s\n%s", entry.Level, entry.Logger, entry.Msg, numbered(cf)))
		}
	}
	return problems
}

// captureLog sends cfg's default log to a JSON file, keeping the level
// and the loggers it takes, and returns the file's name.
func captureLog(t *testing.T, cfg *caddy.Config) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "caddy.log")
	if cfg.Logging == nil {
		cfg.Logging = new(caddy.Logging)
	}
	if cfg.Logging.Logs == nil {
		cfg.Logging.Logs = map[string]*caddy.CustomLog{}
	}
	def := cfg.Logging.Logs["default"]
	if def == nil {
		def = new(caddy.CustomLog)
		cfg.Logging.Logs["default"] = def
	}
	w, err := json.Marshal(map[string]string{"output": "file", "filename": name})
	if err != nil {
		t.Fatal(err)
	}
	def.WriterRaw = w
	def.EncoderRaw = json.RawMessage(`{"format":"json"}`) // a filter encoder wraps json too: levels read the same
	return name
}

// numbered is cf with line numbers, as an error's "Caddyfile:N" counts.
func numbered(cf string) string {
	var s strings.Builder
	for i, l := range strings.Split(strings.TrimRight(cf, "\n"), "\n") {
		fmt.Fprintf(&s, "%4d  %s\n", i+1, l)
	}
	return s.String()
}

// docBlocks reads every ```caddyfile block of README.md and docs/*.md.
func docBlocks(t *testing.T) []block {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	var blocks []block
	for _, f := range files {
		blocks = append(blocks, fenced(t, f, "caddyfile")...)
	}
	return blocks
}

// fenced reads the ```lang blocks of the Markdown file f.
func fenced(t *testing.T, f, lang string) []block {
	t.Helper()
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, f)
	var blocks []block
	var cur *block
	fence := "" // the indentation of the open fence (a block in a list item)
	for i, l := range strings.Split(string(raw), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(l) == "```"+lang:
			cur = &block{file: filepath.ToSlash(rel), line: i + 1}
			fence = l[:strings.Index(l, "```")]
		case cur != nil && strings.TrimSpace(l) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(l, fence) + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s: the block does not end", cur)
	}
	return blocks
}

// shippedFiles reads Caddyfile.example and the examples' Caddyfiles.
func shippedFiles(t *testing.T) []block {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "examples", "*", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "Caddyfile.example"))
	var blocks []block
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		blocks = append(blocks, block{file: filepath.ToSlash(rel), line: 1, text: string(raw)})
	}
	return blocks
}

var envRef = regexp.MustCompile(`\{(?:env\.|\$)([A-Za-z_][A-Za-z0-9_]*)`)

// setEnv sets the variables the blocks read to their plausible values.
func setEnv(t *testing.T, blocks []block) {
	t.Helper()
	for _, b := range blocks {
		for _, m := range envRef.FindAllStringSubmatch(b.text, -1) {
			v, ok := envValues[m[1]]
			if !ok {
				t.Errorf("%s reads the environment variable %s: give it a plausible value in envValues", b, m[1])
				continue
			}
			t.Setenv(m[1], v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// firstLine is the block's first line that is neither blank nor a comment.
func firstLine(text string) string {
	for l := range strings.Lines(text) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}

// ssoOptions are the settings of the global sso option: a fragment that
// starts with one of them is the body of `sso { … }`.
var ssoOptions = []string{"idp", "store", "session", "audit_retention", "pages_dir"}

// complete makes text a whole Caddyfile. A block with a global options
// block or a site block is one already; a fragment is wrapped in the
// smallest Caddyfile that completes it, chosen by its first directive:
// the sso option's settings (an idp block, say) in `{ sso { … } }`, an sso
// option body `sso { idp … }` in `{ … }`, a site's directives in a site.
// Then the "…" the docs write for an IdP's settings are filled in, and a
// block without a global sso option gets the IdPs its sites name.
func complete(text string) (string, error) {
	first := firstLine(text)
	if first == "" {
		return "", fmt.Errorf("the block is empty")
	}
	word, _, _ := strings.Cut(first, " ")
	switch {
	case first == "{" || isAddress(word):
	case slices.Contains(ssoOptions, word):
		text = "{\n\tsso {\n" + indent(text, 2) + "\t}\n}\n"
	case first == "sso {" && slices.Contains(ssoOptions, firstWord(firstLine(strings.SplitN(text, "\n", 2)[1]))):
		text = "{\n" + indent(text, 1) + "}\n"
	case directiveName.MatchString(word):
		// A site's directives (a name the adapter does not know fails
		// there, at its line).
		text = "app.example.com {\n" + indent(text, 1) + "}\n"
	default:
		return "", fmt.Errorf("its first line %q is no global options block, site, sso setting or directive", first)
	}
	text, err := fillEllipses(text)
	if err != nil {
		return "", err
	}
	return addIdPs(text), nil
}

func firstWord(s string) string { w, _, _ := strings.Cut(s, " "); return w }

// isAddress reports whether the first word of a top-level line is a site
// address (app.example.com, http://:9091, :443, localhost) rather than a
// directive name.
func isAddress(word string) bool {
	return strings.ContainsAny(word, ".:/") || word == "localhost"
}

func indent(text string, n int) string {
	var s strings.Builder
	for l := range strings.Lines(text) {
		if strings.TrimSpace(l) != "" {
			s.WriteString(strings.Repeat("\t", n))
		}
		s.WriteString(l)
	}
	return s.String()
}

var (
	directiveName = regexp.MustCompile(`^@?[a-z][a-z0-9_]*$`)
	idpOpen       = regexp.MustCompile(`^(\s*)idp\s+(\S+)\s+(oidc|saml)\s*\{\s*(…)?\s*(\})?\s*(#.*)?$`)
	ssoUse        = regexp.MustCompile(`^\s*sso\s+(?:[@/]\S*\s+)?([A-Za-z0-9_-]+)`) // after a matcher
)

// idpSettings stand for an IdP's settings, which the docs write "…" for
// where the IdP guides give them.
func idpSettings(protocol, ind string) string {
	if protocol == "saml" {
		return ind + "metadata_url https://idp.example.com/saml/metadata\n"
	}
	return ind + "issuer https://idp.example.com\n" + ind + "client_id docs-client\n"
}

// fillEllipses replaces the "…" the docs write for an IdP's settings:
// `idp <name> <protocol> { … }`, a line "…" in an idp block, and a line
// `idp …` (an IdP named as the block's sites name it, else corp). Any
// other "…" cannot be completed.
func fillEllipses(text string) (string, error) {
	var out strings.Builder
	protocol := "" // of the idp block the line is in
	names := sitesIdPs(text)
	for l := range strings.Lines(text) {
		trim := strings.TrimSpace(l)
		ind := l[:len(l)-len(strings.TrimLeft(l, "\t "))]
		if m := idpOpen.FindStringSubmatch(l); m != nil {
			protocol = m[3]
			if m[4] != "" { // idp x oidc { … }
				out.WriteString(m[1] + "idp " + m[2] + " " + m[3] + " {\n" + idpSettings(m[3], m[1]+"\t") + m[1] + "}\n")
				protocol = ""
				continue
			}
		}
		switch {
		case trim == "…" && protocol != "":
			out.WriteString(idpSettings(protocol, ind))
		case trim == "idp …":
			if len(names) == 0 {
				names = []string{"corp"}
			}
			for _, n := range names {
				out.WriteString(ind + "idp " + n + " oidc {\n" + idpSettings("oidc", ind+"\t") + ind + "}\n")
			}
		case strings.Contains(l, "…") && !strings.Contains(strings.SplitN(l, "#", 2)[0], "…"):
			out.WriteString(l) // in a comment
		case strings.Contains(l, "…"):
			return "", fmt.Errorf("cannot complete %q", trim)
		default:
			out.WriteString(l)
		}
	}
	return out.String(), nil
}

// sitesIdPs are the IdP names the sites use: `sso <name>` and the idp
// lines of sso_scim.
func sitesIdPs(text string) []string {
	var names []string
	inScim := false
	for l := range strings.Lines(siteText(text)) {
		trim := strings.TrimSpace(l)
		if strings.HasPrefix(trim, "sso_scim") {
			inScim = true
			continue
		}
		if inScim && trim == "}" {
			inScim = false
		}
		var m []string
		if inScim {
			if f := strings.Fields(trim); len(f) >= 3 && f[0] == "idp" {
				m = []string{"", f[1]}
			}
		} else {
			m = ssoUse.FindStringSubmatch(l)
		}
		if m != nil && !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}

// siteText is text without its global options block.
func siteText(text string) string {
	if firstLine(text) != "{" {
		return text
	}
	_, rest, ok := strings.Cut(text, "\n}\n")
	if !ok {
		return ""
	}
	return rest
}

// addIdPs gives a block without a global sso option the IdPs its sites
// name (the doc shows them elsewhere): a block that has one must define
// them itself.
func addIdPs(text string) string {
	global := ""
	if firstLine(text) == "{" {
		global, _, _ = strings.Cut(text, "\n}\n")
	}
	if regexp.MustCompile(`(?m)^\tsso\s*\{`).MatchString(global) {
		return text
	}
	names := sitesIdPs(text)
	if len(names) == 0 {
		if !regexp.MustCompile(`(?m)^\s*sso(\s|$)`).MatchString(siteText(text)) {
			return text
		}
		names = []string{"corp"} // sso without a name: the only IdP
	}
	var s strings.Builder
	s.WriteString("\tsso {\n")
	for _, n := range names {
		s.WriteString("\t\tidp " + n + " oidc {\n" + idpSettings("oidc", "\t\t\t") + "\t\t\tjit\n\t\t\tscim\n\t\t}\n")
	}
	s.WriteString("\t}\n")
	if global != "" {
		// After the global block's opening line.
		_, rest, _ := strings.Cut(text, "{\n")
		before := text[:len(text)-len(rest)]
		return before + s.String() + rest
	}
	return "{\n" + s.String() + "}\n\n" + text
}

// fixtures are the files the blocks name, made in a temporary directory:
// the test points the blocks' paths at them, the docs keep theirs.
type fixtures struct {
	dir      string
	pages    string // a pages_dir
	metadata string // IdP metadata XML
	spPair   string // an SP key pair, certificate and key in one PEM file
}

func newFixtures(t *testing.T) *fixtures {
	t.Helper()
	fx := &fixtures{dir: t.TempDir()}
	fx.pages = filepath.Join(fx.dir, "sso-pages")
	if err := os.Mkdir(fx.pages, 0o750); err != nil {
		t.Fatal(err)
	}
	// The template docs/pages.md gives, so that it is checked too.
	page := ""
	for _, b := range fenced(t, filepath.Join(root, "docs", "pages.md"), "html") {
		if strings.HasPrefix(b.text, "<!doctype") {
			page = b.text
		}
	}
	if page == "" {
		t.Fatal("docs/pages.md has no ```html block of a whole page")
	}
	write(t, filepath.Join(fx.pages, "signin_failed.html"), page)

	idpSrv, err := samltest.NewServer("https://idp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	md, err := idpSrv.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	fx.metadata = filepath.Join(fx.dir, "idp-metadata.xml")
	write(t, fx.metadata, string(md))

	kp, err := saml.GenerateKeyPair("app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := saml.EncodeKeyPairPEM(kp)
	if err != nil {
		t.Fatal(err)
	}
	fx.spPair = filepath.Join(fx.dir, "sp.pem")
	write(t, fx.spPair, string(pair))
	return fx
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

var (
	pathSetting = regexp.MustCompile(`(?m)^(\s*)(pages_dir|metadata_file|sp_cert)\s+[^#\n]*?(\s*#.*)?$`)
	filePH      = regexp.MustCompile(`\{file\.([^}]+)\}`)
)

// rewrite points the files cf names at the fixtures: pages_dir,
// metadata_file, sp_cert, and each {file.<path>} at a file of its own
// (SCIM tokens must differ).
func (fx *fixtures) rewrite(t *testing.T, cf string) string {
	t.Helper()
	cf = pathSetting.ReplaceAllStringFunc(cf, func(l string) string {
		m := pathSetting.FindStringSubmatch(l)
		switch m[2] {
		case "pages_dir":
			return m[1] + "pages_dir " + fx.pages + m[3]
		case "metadata_file":
			return m[1] + "metadata_file " + fx.metadata + m[3]
		default:
			return m[1] + "sp_cert " + fx.spPair + " " + fx.spPair + m[3]
		}
	})
	return filePH.ReplaceAllStringFunc(cf, func(ph string) string {
		sum := sha256.Sum256([]byte(ph))
		name := filepath.Join(fx.dir, "file-"+hex.EncodeToString(sum[:8]))
		write(t, name, "docs-secret-"+hex.EncodeToString(sum[:16])+"\n")
		return "{file." + name + "}"
	})
}

// countingListener accepts connections on loopback and counts them: the
// IdPs' address while a config is validated, to show validation stays off
// the network.
type countingListener struct {
	addr     string
	accepted atomic.Int64
}

func newCountingListener(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &countingListener{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepted.Add(1)
			conn.Close()
		}
	}()
	return c
}

var idpURL = regexp.MustCompile(`^(\s*(?:issuer|metadata_url)\s+)(\S+)(.*)$`)

// rewrite points cf's issuers and metadata URLs at the listener, those
// written in cf (https://<host><path>) and those read from the
// environment ({env.NAME}, whose value the test then sets so).
func (c *countingListener) rewrite(t *testing.T, cf string) string {
	t.Helper()
	onListener := func(u string) string {
		rest := strings.TrimPrefix(u, "https://")
		if i := strings.IndexAny(rest, "/{"); i >= 0 && rest[i] == '/' {
			return "https://" + c.addr + rest[i:]
		}
		return "https://" + c.addr
	}
	var out strings.Builder
	for l := range strings.Lines(cf) {
		m := idpURL.FindStringSubmatch(strings.TrimSuffix(l, "\n"))
		switch {
		case m == nil:
			out.WriteString(l)
		case strings.HasPrefix(m[2], "https://"):
			out.WriteString(m[1] + onListener(m[2]) + m[3] + "\n")
		case envRef.MatchString(m[2]) && strings.HasPrefix(m[2], "{") && strings.HasSuffix(m[2], "}"):
			name := envRef.FindStringSubmatch(m[2])[1]
			t.Setenv(name, onListener(envValues[name]))
			out.WriteString(l)
		default:
			t.Fatalf("cannot point %q at the listener", strings.TrimSpace(l))
		}
	}
	return out.String()
}

// TestCompleteFragments: a fragment is wrapped by its first directive, and
// the Caddyfile it becomes adapts and validates; what cannot be completed
// is refused, so that it fails TestDocCaddyfiles unless listed.
func TestCompleteFragments(t *testing.T) {
	tests := []struct {
		name, text, want string // want: a line of the completed Caddyfile
	}{
		{"idp block", "idp corp oidc {\n\tissuer https://idp.example.com\n\tclient_id abc\n}\n", "\t\tidp corp oidc {"},
		{"sso option", "pages_dir /etc/caddy/sso-pages\nidp …\n", "\t\tidp corp oidc {"},
		{"sso option body", "sso {\n\tidp okta oidc { … }\n}\n", "\t\t\tissuer https://idp.example.com"},
		{"site directives", "sso okta {\n\tpass_access_token\n}\nreverse_proxy 127.0.0.1:8080\n", "app.example.com {"},
		{"matcher first", "@api path /api/*\nsso @api corp\nrespond 200\n", "\t\tidp corp oidc {"},
		{"site naming an IdP", "app.example.com {\n\tsso entra\n}\n", "\t\tidp entra oidc {"},
		{"scim site", "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.SCIM_TOKEN_ENTRA}\n\t}\n}\n", "\t\t\tscim"},
	}
	fx := newFixtures(t)
	t.Setenv("SCIM_TOKEN_ENTRA", envValues["SCIM_TOKEN_ENTRA"])
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cf, err := complete(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(strings.Split(cf, "\n"), tt.want) {
				t.Errorf("completed Caddyfile lacks %q:\n%s", tt.want, numbered(cf))
			}
			for _, p := range check(t, fx.rewrite(t, cf)) {
				t.Error(p)
			}
		})
	}
	for _, text := range []string{"…\n", "{\n\tsso {\n\t\t…\n\t}\n}\n", "app.example.com {\n\t…\n}\n", "~weird\n"} {
		if cf, err := complete(text); err == nil {
			t.Errorf("%q completed as\n%s", text, cf)
		}
	}
}

// TestBrokenBlockFails: a copy of a doc block with a mistake fails, at
// adaptation (a misspelt setting) and at validation (what only the
// running configuration can tell: an unset variable, an IdP the route
// names that does not exist).
func TestBrokenBlockFails(t *testing.T) {
	var b block
	for _, c := range fenced(t, filepath.Join(root, "docs", "okta-oidc.md"), "caddyfile") {
		if strings.Contains(c.text, "idp okta oidc {") {
			b = c
		}
	}
	if b.text == "" {
		t.Fatal("docs/okta-oidc.md has no block with idp okta oidc")
	}
	setEnv(t, []block{b})
	if p := check(t, b.text); len(p) != 0 {
		t.Fatalf("%s fails as it is: %q", b, p)
	}
	tests := []struct{ old, new, want string }{
		{"client_id", "clientid", `unknown setting "clientid"`},
		{"{env.OKTA_CLIENT_ID}", "{env.OKTA_CLIENT_ID_TYPO}", "OKTA_CLIENT_ID_TYPO"},
		{"sso okta", "sso otka", "otka"},
		{"{env.OKTA_CLIENT_SECRET}", "s3cr3t-written-in-the-caddyfile-0123456789", "validate logged at warn"},
	}
	for _, tt := range tests {
		broken := strings.Replace(b.text, tt.old, tt.new, 1)
		p := check(t, broken)
		if len(p) == 0 || !strings.Contains(p[0], tt.want) {
			t.Errorf("%s with %q for %q: problems %q, want one naming %q", b, tt.new, tt.old, p, tt.want)
		} else {
			t.Logf("%s with %q: %s", b, tt.new, strings.SplitN(p[0], "\n", 2)[0])
		}
	}
}
