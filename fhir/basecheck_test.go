package fhir

import (
	"strings"
	"testing"
)

func TestBaseIssues(t *testing.T) {
	c, err := NewCodec("Patient", "AllergyIntolerance", "Condition")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, body string
		want       string // expression and part of the message; "" for none
	}{
		{"clean", `{"resourceType":"Patient","id":"p1","name":[{"text":"Kari <Nordmann>? no: Hb < 10, <5 mg, a->b"}]}`, ""},
		{"script in a string", `{"resourceType":"Patient","name":[{"text":"Standard <script>somescript</script>"}]}`, "Patient.name[0].text: the text contains HTML markup (<script>)"},
		{"img tag in an extension string", `{"resourceType":"Patient","extension":[{"url":"http://example.org/x","valueString":"<img src=x onerror=alert(1)>"}]}`, "Patient.extension[0].valueString: the text contains HTML markup (<img src=x onerror=alert(1)>)"},
		{"end tag and upper case", `{"resourceType":"Patient","name":[{"text":"x</B> y"}]}`, "Patient.name[0].text: the text contains HTML markup (</B>)"},
		{"self-closing tag", `{"resourceType":"Patient","name":[{"text":"a<br/>b"}]}`, "(<br/>)"},
		{"not a tag: no closing bracket", `{"resourceType":"Patient","name":[{"text":"<script is text"}]}`, ""},
		{"extension on Resource.id", `{"resourceType":"Patient","id":"p1","_id":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"masked"}]}}`, "Patient.id: extensions are not allowed on Resource.id"},
		{"contained id too long", `{"resourceType":"Condition","contained":[{"resourceType":"Patient","id":"` + strings.Repeat("1", 65) + `"}],"subject":{"reference":"#` + strings.Repeat("1", 65) + `"}}`, "Condition.contained[0].id: \"" + strings.Repeat("1", 65) + "\" is not a valid id"},
		{"required code without a code", `{"resourceType":"AllergyIntolerance","_category":[{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}],"patient":{"reference":"Patient/1"}}`, "AllergyIntolerance.category[0]: no code"},
		{"markup escaped in the JSON", `{"resourceType":"Patient","name":[{"text":"x \u003Cscript>alert(1)\u003c/script>"}]}`, "Patient.name[0].text: the text contains HTML markup (<script>)"},
		{"required code with a code and an extension", `{"resourceType":"AllergyIntolerance","category":["food"],"_category":[{"extension":[{"url":"http://example.org/x","valueString":"y"}]}],"patient":{"reference":"Patient/1"}}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.Parse([]byte(tc.body))
			if err != nil {
				t.Fatalf("Parse(%s): %v", tc.body, err)
			}
			is := r.BaseIssues()
			// The writes skip the walk when the body cannot break a rule:
			// never when it does.
			if len(is) > 0 && !MayBreakBaseRules([]byte(tc.body)) {
				t.Fatalf("MayBreakBaseRules(%s) = false, but BaseIssues finds %+v", tc.body, is)
			}
			if tc.want == "" {
				if len(is) != 0 {
					t.Fatalf("BaseIssues(%s) = %+v, want none", tc.body, is)
				}
				return
			}
			if len(is) == 0 || !strings.Contains(is[0].Diagnostics, tc.want) {
				t.Fatalf("BaseIssues(%s) = %+v, want first %q", tc.body, is, tc.want)
			}
		})
	}
}
