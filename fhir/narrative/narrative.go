// Package narrative checks FHIR R4 narrative XHTML (Narrative.div) against
// the rules of https://hl7.org/fhir/R4/narrative.html: txt-1 (only the
// basic formatting elements and attributes of HTML 4.0, chapters 7-11
// except 9.4 and 15, <a> with name or href, images and style attributes)
// and txt-2 (some non-whitespace content), and the rules around them: the
// div is well-formed XML, its root is <div xmlns="http://www.w3.org/1999/xhtml">,
// and it has no entities but XML's own.
//
// A narrative is shown as is by browsers (the citizen portal, SMART apps),
// so the check is an allowlist: an element, attribute or URL scheme it
// does not know is refused, whatever it is. Nothing here resolves
// anything: encoding/xml reads no DTD and no external entity.
package narrative

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// Namespace is the XHTML namespace the root div must declare.
const Namespace = "http://www.w3.org/1999/xhtml"

// Problem is one violated rule.
type Problem struct {
	// Rule is the R4 constraint: "txt-1" (content, elements, attributes,
	// well-formedness) or "txt-2" (no content).
	Rule    string
	Message string
}

func (p Problem) Error() string { return p.Rule + ": " + p.Message }

// elements are the ones txt-1 allows: HTML 4.0 chapter 7 (div, span,
// headings, address; not html/head/body), 8 (bdo), 9 without section 4
// (ins, del), 10 (lists; not the deprecated dir and menu), 11 (tables) and
// 15 without its deprecated elements (font, basefont, center, s, strike,
// u), plus a and img.
var elements = set("div", "span", "h1", "h2", "h3", "h4", "h5", "h6", "address",
	"bdo",
	"em", "strong", "dfn", "code", "samp", "kbd", "var", "cite", "abbr", "acronym",
	"blockquote", "q", "sub", "sup", "p", "br", "pre",
	"ul", "ol", "li", "dl", "dt", "dd",
	"table", "caption", "thead", "tfoot", "tbody", "colgroup", "col", "tr", "th", "td",
	"tt", "i", "b", "big", "small", "hr",
	"a", "img")

// attributes every allowed element may carry (HTML 4.0 %coreattrs and
// %i18n, without the event handlers) and the table attributes of
// chapter 11, which the HL7 validator also allows everywhere.
var attributes = set("id", "class", "style", "title", "lang", "dir",
	"span", "width", "align", "valign", "char", "charoff", "abbr", "axis", "headers", "scope", "rowspan", "colspan")

// elementAttributes are the further attributes of single elements.
var elementAttributes = set(
	"a.href", "a.name", "a.type", "a.charset", "a.hreflang", "a.rel", "a.rev",
	"img.src", "img.alt", "img.longdesc", "img.height", "img.width", "img.border",
	"blockquote.cite", "q.cite",
	"table.summary", "table.border", "table.frame", "table.rules", "table.cellspacing", "table.cellpadding",
	"td.nowrap", "th.nowrap", "ol.type", "ul.type", "ol.start", "li.type", "li.value", "pre.width")

// uriAttributes hold URLs: what a browser follows or loads.
var uriAttributes = set("href", "src", "longdesc", "cite")

// linkSchemes are the schemes a link may use; a relative or "#" link has
// none. javascript:, vbscript:, data: (an HTML page of its own), file: and
// every other scheme are refused.
var linkSchemes = set("http", "https", "mailto", "tel", "urn")

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Check returns the problems of one Narrative.div, in document order; nil
// means it keeps the rules. After a problem that makes the XML unreadable
// it stops.
func Check(div string) []Problem {
	c := checker{}
	c.run(div)
	return c.problems
}

type checker struct {
	problems []Problem
	content  bool // non-whitespace text or an image seen
}

func (c *checker) add(rule, format string, args ...any) {
	c.problems = append(c.problems, Problem{Rule: rule, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) run(div string) {
	if strings.TrimSpace(div) == "" {
		c.add("txt-2", "the narrative is empty; it must be a <div xmlns=%q> with some non-whitespace content", Namespace)
		return
	}
	// encoding/xml hands CDATA sections over as text: find them before.
	if strings.Contains(div, "<![CDATA[") {
		c.add("txt-1", "the XHTML contains a CDATA section, which narrative does not allow")
		return
	}
	d := xml.NewDecoder(strings.NewReader(div))
	d.Strict = true
	// No Entity map: only XML's own entities (&lt; &gt; &amp; &quot;
	// &apos;) and character references; HTML entities such as &nbsp; are
	// not XML (R4 narrative: "use Unicode characters instead").
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.add("txt-1", "the XHTML is not well-formed: %s", xmlMessage(err))
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					c.add("txt-1", "the XHTML has more than one root element (<%s> after the <div>); everything must be inside one <div>", t.Name.Local)
					return
				}
				if !c.root(t) {
					return
				}
			}
			depth++
			c.element(t)
		case xml.EndElement:
			depth--
		case xml.CharData:
			if strings.TrimFunc(string(t), unicode.IsSpace) == "" {
				continue
			}
			if depth == 0 {
				c.add("txt-1", "the XHTML has text outside its root <div>")
				return
			}
			c.content = true
		case xml.ProcInst:
			c.add("txt-1", "the XHTML contains a processing instruction (<?%s ...?>), which narrative does not allow", t.Target)
			return
		case xml.Directive:
			c.add("txt-1", "the XHTML contains a declaration (<!%s>); DOCTYPE and ENTITY declarations are not allowed in narrative", clip(string(t), 40))
			return
		case xml.Comment:
			// Comments are XML and show nothing.
		}
	}
	if roots == 0 {
		c.add("txt-1", "the XHTML has no root element; it must be a <div xmlns=%q>", Namespace)
		return
	}
	if depth != 0 {
		c.add("txt-1", "the XHTML is not well-formed: %d element(s) not closed", depth)
		return
	}
	if !c.content {
		c.add("txt-2", "the narrative has no content: it needs some non-whitespace text or an image")
	}
}

// root checks the root element; false stops the check (nothing inside
// would be XHTML).
func (c *checker) root(t xml.StartElement) bool {
	if t.Name.Local != "div" {
		c.add("txt-1", "the root element is <%s>; it must be a <div xmlns=%q>", t.Name.Local, Namespace)
		return false
	}
	if t.Name.Space != Namespace {
		ns := t.Name.Space
		if ns == "" {
			ns = "none"
		}
		c.add("txt-1", "the root <div> is in namespace %s; it must declare xmlns=%q", ns, Namespace)
		return false
	}
	return true
}

func (c *checker) element(t xml.StartElement) {
	name := t.Name.Local
	if t.Name.Space != Namespace {
		c.add("txt-1", "element <%s> is in namespace %q; narrative holds XHTML elements only", name, t.Name.Space)
		return
	}
	if !elements[name] {
		c.add("txt-1", "element <%s> is not allowed in narrative (only the basic HTML formatting elements, links and images; no scripts, objects, forms, frames or styles sheets)", name)
		return
	}
	if name == "img" {
		c.content = true
	}
	for _, a := range t.Attr {
		c.attribute(name, a)
	}
}

func (c *checker) attribute(elem string, a xml.Attr) {
	n := a.Name
	switch {
	case n.Space == "" && n.Local == "xmlns":
		if a.Value != Namespace {
			c.add("txt-1", "<%s> declares namespace %q; narrative is XHTML (%s) only", elem, a.Value, Namespace)
		}
		return
	case n.Space == "xmlns":
		c.add("txt-1", "<%s> declares the namespace prefix %q; narrative is XHTML only, without other namespaces", elem, n.Local)
		return
	case n.Space == "http://www.w3.org/XML/1998/namespace" && n.Local == "lang":
		return
	case n.Space != "":
		c.add("txt-1", "attribute %s:%s on <%s> is not allowed in narrative", n.Space, n.Local, elem)
		return
	}
	name := strings.ToLower(n.Local)
	switch {
	case strings.HasPrefix(name, "on"):
		c.add("txt-1", "event handler attribute %s on <%s> is not allowed in narrative (active content)", n.Local, elem)
		return
	case !attributes[n.Local] && !elementAttributes[elem+"."+n.Local]:
		c.add("txt-1", "attribute %s is not allowed on <%s> in narrative", n.Local, elem)
		return
	}
	switch {
	case name == "style":
		if bad := activeStyle(a.Value); bad != "" {
			c.add("txt-1", "the style attribute on <%s> contains %q; styles in narrative cannot load or run anything", elem, bad)
		}
	case uriAttributes[name]:
		if msg := badURL(elem, name, a.Value); msg != "" {
			c.add("txt-1", "%s", msg)
		}
	}
}

// badURL says what is wrong with a link or image address, or "".
func badURL(elem, attr, v string) string {
	scheme, ok := schemeOf(v)
	if !ok {
		return "" // relative, or only a fragment
	}
	if elem == "img" && attr == "src" {
		if scheme == "http" || scheme == "https" || scheme == "data" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), "data:image/") {
			return ""
		}
		return fmt.Sprintf("<img src=%q>: an image in narrative must be a data:image/ URL, a relative URL or an http(s) URL", clip(v, 60))
	}
	if linkSchemes[scheme] {
		return ""
	}
	return fmt.Sprintf("<%s %s=%q>: the URL scheme %s: is not allowed in narrative (only http, https, mailto, tel, urn and relative URLs)", elem, attr, clip(v, 60), scheme)
}

// schemeOf returns the lower-case scheme of a URL as a browser reads it:
// browsers drop ASCII whitespace and control characters inside the scheme
// ("java\tscript:" is javascript:), so they are dropped here too.
func schemeOf(v string) (string, bool) {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r <= ' ' || r == 0x7f:
			continue
		case r == ':':
			s := strings.ToLower(b.String())
			return s, s != ""
		case r == '/' || r == '?' || r == '#':
			return "", false
		}
		b.WriteRune(r)
	}
	return "", false
}

// activeStyle returns the part of a style attribute that could load or
// run something (old browsers ran CSS expressions and bindings), or "".
// CSS escapes are refused as a whole, since they can spell any of these.
func activeStyle(style string) string {
	s := strings.ToLower(style)
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsSpace(r) && r != 0 {
			b.WriteRune(r)
		}
	}
	compact := b.String()
	for _, bad := range []string{"\\", "expression(", "javascript:", "vbscript:", "-moz-binding", "behavior:", "@import", "url("} {
		if strings.Contains(compact, bad) {
			return bad
		}
	}
	return ""
}

func xmlMessage(err error) string {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (line %d)", se.Msg, se.Line)
	}
	return err.Error()
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// Violation is a Problem of one narrative in a resource.
type Violation struct {
	Problem
	// Element is the narrative's element, e.g. "Patient.text.div" or
	// "Condition.contained[0].text.div".
	Element string
}

// CheckResource checks text.div of a resource in JSON and of each of its
// contained resources. typ names the resource in the elements; a body the
// JSON reader cannot read has no violations here (the FHIR parser says
// what is wrong with it).
func CheckResource(typ string, body []byte) []Violation {
	var r struct {
		Text *struct {
			Div *string `json:"div"`
		} `json:"text"`
		Contained []struct {
			Text *struct {
				Div *string `json:"div"`
			} `json:"text"`
		} `json:"contained"`
	}
	// Most writes carry no narrative: a body without a "div" key needs
	// no decoding (this is on every write).
	if !bytes.Contains(body, []byte(`"div"`)) || json.Unmarshal(body, &r) != nil {
		return nil
	}
	var out []Violation
	check := func(el string, div *string) {
		if div == nil {
			return
		}
		for _, p := range Check(*div) {
			out = append(out, Violation{Problem: p, Element: el})
		}
	}
	if r.Text != nil {
		check(typ+".text.div", r.Text.Div)
	}
	for i, c := range r.Contained {
		if c.Text != nil {
			check(fmt.Sprintf("%s.contained[%d].text.div", typ, i), c.Text.Div)
		}
	}
	return out
}
