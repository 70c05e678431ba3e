package narrative

import (
	"strings"
	"testing"
)

const open = `<div xmlns="http://www.w3.org/1999/xhtml">`

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		div  string
		rule string // "" when the div keeps the rules
		want string // part of the message
	}{
		{"plain text", open + `Allergy to penicillin</div>`, "", ""},
		{"generated narrative", open + `<p><b>Kari Nordmann</b> (female), born 1980-01-01</p><table class="grid"><tr><td style="background-color: #f3f5da" colspan="2">Active</td></tr></table><hr/><ul><li>one</li></ul></div>`, "", ""},
		{"xml entities and character references", open + `a &lt; b &amp;&amp; c &gt; d &quot;&apos; &#160;&#xE6;</div>`, "", ""},
		{"links", open + `<a name="top"> </a><a href="#top">up</a> <a href="Patient/1">rel</a> <a href="https://helsenorge.no/x">abs</a> <a href="mailto:a@b.no">mail</a></div>`, "", ""},
		{"images", open + `<img src="data:image/png;base64,iVBORw0KGgo=" alt="x"/><img src="logo.png"/><img src="https://example.org/a.png"/></div>`, "", ""},
		{"xml:lang and comments", open + `<p xml:lang="nb" lang="nb"><!-- generated -->Tekst</p></div>`, "", ""},
		{"image only is content", open + `<img src="a.png"/></div>`, "", ""},

		{"empty string", ``, "txt-2", "empty"},
		{"whitespace only", open + "  \n\t</div>", "txt-2", "no content"},
		{"empty elements only", open + `<p> </p><br/></div>`, "txt-2", "no content"},
		{"script", open + `<p>x</p><script>alert(1)</script></div>`, "txt-1", "element <script>"},
		{"uppercase script", open + `x<SCRIPT>alert(1)</SCRIPT></div>`, "txt-1", "element <SCRIPT>"},
		{"iframe", open + `x<iframe src="https://evil.example"/></div>`, "txt-1", "element <iframe>"},
		{"object", open + `x<object data="a.swf"/></div>`, "txt-1", "element <object>"},
		{"form and input", open + `x<form action="https://evil.example"><input name="pw"/></form></div>`, "txt-1", "element <form>"},
		{"embed", open + `x<embed src="a"/></div>`, "txt-1", "element <embed>"},
		{"style element", open + `x<style>p{}</style></div>`, "txt-1", "element <style>"},
		{"deprecated font", open + `<font color="red">x</font></div>`, "txt-1", "element <font>"},
		{"ins is chapter 9.4", open + `<ins>x</ins></div>`, "txt-1", "element <ins>"},
		{"onload", open + `<img src="a.png" onload="alert(1)"/></div>`, "txt-1", "event handler attribute onload"},
		{"onclick mixed case", open + `<p OnClick="alert(1)">x</p></div>`, "txt-1", "event handler attribute OnClick"},
		{"javascript href", open + `<a href="javascript:alert(1)">x</a></div>`, "txt-1", "scheme javascript:"},
		{"javascript href with tab and case", open + `<a href=" Java&#9;Script:alert(1)">x</a></div>`, "txt-1", "scheme javascript:"},
		{"data href", open + `<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">x</a></div>`, "txt-1", "scheme data:"},
		{"javascript img src", open + `<img src="javascript:alert(1)"/></div>`, "txt-1", "<img src="},
		{"data img src not an image", open + `<img src="data:text/html;base64,PHNjcmlwdD4="/></div>`, "txt-1", "<img src="},
		{"unknown attribute", open + `<p foo="1">x</p></div>`, "txt-1", "attribute foo is not allowed on <p>"},
		{"href on span", open + `<span href="https://a.no">x</span></div>`, "txt-1", "attribute href is not allowed on <span>"},
		{"style expression", open + `<p style="width: expression(alert(1))">x</p></div>`, "txt-1", "expression("},
		{"style url", open + `<p style="background: url(https://evil.example/track)">x</p></div>`, "txt-1", "url("},
		{"style escape", open + `<p style="background: u\72 l(x)">x</p></div>`, "txt-1", `\`},
		{"unknown entity", open + `a &foo; b</div>`, "txt-1", "&foo;"},
		{"html entity", open + `CPT&reg;</div>`, "txt-1", "&reg;"},
		{"nbsp entity", open + `a&nbsp;b</div>`, "txt-1", "&nbsp;"},
		{"unbalanced", open + `<p><b>x</p></div>`, "txt-1", "not well-formed"},
		{"unclosed", open + `<p>x</p>`, "txt-1", "not well-formed"},
		{"missing xmlns", `<div>x</div>`, "txt-1", "namespace none"},
		{"wrong xmlns", `<div xmlns="http://www.w3.org/2000/svg">x</div>`, "txt-1", "namespace http://www.w3.org/2000/svg"},
		{"root not div", `<p xmlns="http://www.w3.org/1999/xhtml">x</p>`, "txt-1", "root element is <p>"},
		{"two roots", open + `x</div>` + open + `y</div>`, "txt-1", "more than one root"},
		{"text outside root", open + `x</div>trailing`, "txt-1", "outside its root"},
		{"not xml", `just text`, "txt-1", "outside"},
		{"comment only", `<!-- x -->`, "txt-1", "no root element"},
		{"cdata", open + `<![CDATA[<script>alert(1)</script>]]></div>`, "txt-1", "CDATA"},
		{"processing instruction", open + `<?php echo 1; ?>x</div>`, "txt-1", "processing instruction"},
		{"xml declaration", `<?xml version="1.0"?>` + open + `x</div>`, "txt-1", "processing instruction"},
		{"doctype", `<!DOCTYPE div [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + open + `&x;</div>`, "txt-1", "DOCTYPE and ENTITY"},
		{"entity declaration inside", open + `<!ENTITY x "y">x</div>`, "txt-1", "DOCTYPE and ENTITY"},
		{"foreign namespace element", open + `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg></div>`, "txt-1", "namespace"},
		{"xlink prefix", `<div xmlns="http://www.w3.org/1999/xhtml" xmlns:xlink="http://www.w3.org/1999/xlink">x</div>`, "txt-1", "prefix \"xlink\""},
		{"control character", open + "a\x01b</div>", "txt-1", "not well-formed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := Check(tc.div)
			if tc.rule == "" {
				if len(ps) != 0 {
					t.Fatalf("Check(%q) = %v, want no problems", tc.div, ps)
				}
				return
			}
			if len(ps) == 0 {
				t.Fatalf("Check(%q) found nothing, want a %s problem mentioning %q", tc.div, tc.rule, tc.want)
			}
			if ps[0].Rule != tc.rule || !strings.Contains(ps[0].Message, tc.want) {
				t.Fatalf("Check(%q) = %v, want first a %s problem mentioning %q", tc.div, ps, tc.rule, tc.want)
			}
		})
	}
}

func TestCheckResourceNamesTheElement(t *testing.T) {
	body := `{"resourceType":"Condition","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">ok</div>"},
		"contained":[{"resourceType":"Practitioner","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><img src=\"a.png\" onerror=\"alert(1)\"/></div>"}}]}`
	vs := CheckResource("Condition", []byte(body))
	if len(vs) != 1 || vs[0].Element != "Condition.contained[0].text.div" || vs[0].Rule != "txt-1" || !strings.Contains(vs[0].Message, "onerror") {
		t.Fatalf("CheckResource = %+v, want one txt-1 violation at Condition.contained[0].text.div naming onerror", vs)
	}
	if vs := CheckResource("Patient", []byte(`{"resourceType":"Patient"}`)); vs != nil {
		t.Fatalf("a resource without narrative: %+v, want none", vs)
	}
}
