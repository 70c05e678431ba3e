package fhir

import "strings"

func validationErrorString(e *ValidationError) string {
	if e == nil || len(e.Issues) == 0 {
		return "fhir: invalid resource"
	}
	var sb strings.Builder
	sb.WriteString("fhir: invalid resource: ")
	for i, is := range e.Issues {
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(is.Diagnostics)
	}
	return sb.String()
}

func outcome(issues []Issue) []byte {
	out := make([]byte, 0, 128+96*len(issues))
	return appendOutcome(out, issues)
}

func appendOutcome(out []byte, issues []Issue) []byte {
	// OperationOutcome.issue is 1..*; an empty outcome still needs one.
	if len(issues) == 0 {
		issues = []Issue{{Severity: "information", Code: "informational", Diagnostics: "All OK"}}
	}
	out = append(out, `{"resourceType":"OperationOutcome","issue":[`...)
	for i, is := range issues {
		if i > 0 {
			out = append(out, ',')
		}
		sev, code := is.Severity, is.Code
		if sev == "" {
			sev = "error"
		}
		if code == "" {
			code = "processing"
		}
		first := true
		out = append(out, '{')
		out = appendStringMember(out, &first, "severity", sev)
		out = appendStringMember(out, &first, "code", code)
		if is.Details.Code != "" {
			out = append(out, `,"details":{"coding":[{`...)
			f := true
			if is.Details.System != "" {
				out = appendStringMember(out, &f, "system", is.Details.System)
			}
			out = appendStringMember(out, &f, "code", is.Details.Code)
			if is.Details.Display != "" {
				out = appendStringMember(out, &f, "display", is.Details.Display)
			}
			out = append(out, `}]}`...)
		}
		if is.Diagnostics != "" {
			out = appendStringMember(out, &first, "diagnostics", is.Diagnostics)
		}
		if len(is.Expression) > 0 {
			out = append(out, `,"expression":[`...)
			for j, e := range is.Expression {
				if j > 0 {
					out = append(out, ',')
				}
				out = appendString(out, e)
			}
			out = append(out, ']')
		}
		out = append(out, '}')
	}
	return append(out, `]}`...)
}
