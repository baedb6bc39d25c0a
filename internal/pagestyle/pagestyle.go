// Package pagestyle is the look shared by every HTML page a person meets
// in this project: the gateway's own pages (sign-out, errors, chooser), the
// login pages of the local test IdPs (idp/oidc/oidctest, idp/saml/samltest)
// and the demo app, so that a newcomer walking through the demo sees one
// product rather than four styles, and can tell them apart by their
// headings alone.
package pagestyle

import "html/template"

// CSS is a small stylesheet for a <style> element (pages that send a CSP
// allow it with style-src 'unsafe-inline'). It styles plain HTML: headings,
// paragraphs, code, lists, tables, and forms with labelled inputs and a
// button.
//
// The body's size is the reader's own default (100%), links wrap anywhere
// (a long IdP name at 320 px), a list's links are tall enough targets for
// a finger, and a focused button gets a ring that stands off its border.
const CSS = `body{font:100%/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}
a{overflow-wrap:anywhere}ul a{display:inline-block;padding:.5em 0}
h1{font-size:1.6rem;margin:0 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
code{background:#f3f3f3;padding:0 .25em;overflow-wrap:anywhere}li{margin:.2em 0}
pre{background:#f6f6f6;padding:.75em;white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
label{display:block;margin:.8em 0 .2em}input{font:inherit;padding:.4em;width:100%;box-sizing:border-box;border:1px solid #bbb;border-radius:4px}
button{font:inherit;padding:.45em 1.2em;margin-top:1em;border:1px solid #245;border-radius:4px;background:#2a5db0;color:#fff;cursor:pointer}
button:hover{background:#244f96}button:focus-visible{outline:3px solid #222;outline-offset:2px}
.note{color:#555;font-size:.95rem}.hint{background:#f3f6fb;border-left:3px solid #2a5db0;padding:.5em .8em}`

// Template is CSS as html/template needs it inside a <style> element.
func Template() template.CSS { return template.CSS(CSS) } //nolint:gosec // G203: CSS is the constant above, no input
