package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// maxNestingDepth bounds how deep the parser follows nested elements. Real
// resources stay far below it (nested extensions are the deepest thing in
// practice); it keeps hostile input from exhausting the stack.
const maxNestingDepth = 64

type codecImpl struct {
	u *jsonformat.Unmarshaller
	m *jsonformat.Marshaller
}

// resourceMsg holds the parsed resource: the ContainedResource wrapper and
// the concrete resource message inside its oneof.
type resourceMsg struct {
	cr  *bcrpb.ContainedResource
	res protoreflect.Message
}

func newCodec(types []string) (*Codec, error) {
	if len(types) == 0 {
		return nil, errors.New("fhir: NewCodec needs the resource types to accept")
	}
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("fhir: unmarshaller: %w", err)
	}
	u.MaxNestingDepth = maxNestingDepth
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("fhir: marshaller: %w", err)
	}
	return &Codec{impl: codecImpl{u: u, m: m}, types: slices.Clone(types)}, nil
}

// collector is an errorreporter.ErrorReporter that keeps every validation
// error so that one response can list all problems of a resource.
type collector struct{ errs []error }

func (c *collector) ReportValidationError(_ string, err error) error {
	c.errs = append(c.errs, err)
	return nil
}

func (c *collector) ReportValidationWarning(string, error) error { return nil }

func (c *Codec) parse(body []byte) (*Resource, error) {
	if c == nil || c.impl.u == nil {
		return nil, fmt.Errorf("fhir: codec not initialised (use NewCodec)")
	}
	// Refuse unsupported types before the parser reports their own
	// validation errors, which would only distract the client.
	if t, ok := peekResourceType(body); ok && !c.Accepts(t) {
		return nil, &ValidationError{Issues: []Issue{{
			Severity:    "error",
			Code:        "not-supported",
			Diagnostics: fmt.Sprintf("resource type %q is not supported by this server (supported: %s)", t, strings.Join(c.types, ", ")),
			Expression:  []string{"resourceType"},
		}}}
	}

	var rep collector
	pb, err := c.impl.u.UnmarshalWithErrorReporter(body, &rep)
	var issues []Issue
	if err != nil {
		issues = append(issues, issuesFromError(err, body)...)
	}
	for _, e := range rep.errs {
		issues = append(issues, issuesFromError(e, body)...)
	}
	if len(issues) > 0 {
		sortIssues(issues)
		return nil, &ValidationError{Issues: issues}
	}
	cr, ok := pb.(*bcrpb.ContainedResource)
	if !ok {
		return nil, fmt.Errorf("fhir: parser returned %T", pb)
	}
	res := innerResource(cr)
	if res == nil {
		return nil, &ValidationError{Issues: []Issue{{Severity: "error", Code: "structure", Diagnostics: "no resource found in body"}}}
	}
	r := &Resource{Type: string(res.Descriptor().Name()), msg: resourceMsg{cr: cr, res: res}}
	if !c.Accepts(r.Type) { // defensive: peekResourceType saw a different body
		return nil, &ValidationError{Issues: []Issue{{Severity: "error", Code: "not-supported",
			Diagnostics: fmt.Sprintf("resource type %q is not supported by this server", r.Type), Expression: []string{"resourceType"}}}}
	}
	r.ID = idOf(res)
	r.Patient = patientOf(r.Type, r.ID, res)
	return r, nil
}

// peekResourceType reads the top-level resourceType without parsing the
// resource; ok is false if the body is not an object with a string
// resourceType (the parser then reports the problem).
func peekResourceType(body []byte) (string, bool) {
	var stack [48]member
	ms, err := scanObject(body, stack[:0])
	if err != nil {
		return "", false
	}
	m, ok := findMember(ms, "resourceType")
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(m.val, &s) != nil {
		return "", false
	}
	return s, true
}

func innerResource(cr *bcrpb.ContainedResource) protoreflect.Message {
	m := cr.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName("oneof_resource")
	if od == nil {
		return nil
	}
	fd := m.WhichOneof(od)
	if fd == nil {
		return nil
	}
	return m.Get(fd).Message()
}

func idOf(res protoreflect.Message) string {
	fd := res.Descriptor().Fields().ByName("id")
	if fd == nil || !res.Has(fd) {
		return ""
	}
	if id, ok := res.Get(fd).Message().Interface().(*d4pb.Id); ok {
		return id.GetValue()
	}
	return ""
}

// patientFields names the element that ties each served type to its
// patient (Patient itself uses its own id).
var patientFields = map[string]protoreflect.Name{
	"AllergyIntolerance":  "patient",
	"Flag":                "subject",
	"MedicationStatement": "subject",
	"Encounter":           "subject",
	"Consent":             "patient",
	"Condition":           "subject",
	"Procedure":           "subject",
}

func patientOf(typ, id string, res protoreflect.Message) string {
	if typ == "Patient" {
		return id
	}
	name, ok := patientFields[typ]
	if !ok {
		return ""
	}
	fd := res.Descriptor().Fields().ByName(name)
	if fd == nil || !res.Has(fd) {
		return ""
	}
	ref, ok := res.Get(fd).Message().Interface().(*d4pb.Reference)
	if !ok {
		return ""
	}
	if pid := ref.GetPatientId(); pid != nil {
		return pid.GetValue()
	}
	// An untyped uri is only a patient link if it is exactly Patient/{id}
	// (optionally with a version); absolute and urn: references are not
	// resolvable to a local patient here.
	s := ref.GetUri().GetValue()
	if rest, ok := strings.CutPrefix(s, "Patient/"); ok {
		id, _, _ := strings.Cut(rest, "/")
		if id != "" {
			return id
		}
	}
	return ""
}

func (r *Resource) setID(id string) {
	r.ID = id
	if r.Type == "Patient" {
		r.Patient = id
	}
	res := r.msg.res
	if res == nil {
		return
	}
	fd := res.Descriptor().Fields().ByName("id")
	if fd == nil {
		return
	}
	if id == "" {
		res.Clear(fd)
		return
	}
	res.Set(fd, protoreflect.ValueOfMessage((&d4pb.Id{Value: id}).ProtoReflect()))
}

func (r *Resource) meta() (*d4pb.Meta, protoreflect.FieldDescriptor) {
	res := r.msg.res
	if res == nil {
		return nil, nil
	}
	fd := res.Descriptor().Fields().ByName("meta")
	if fd == nil {
		return nil, nil
	}
	if !res.Has(fd) {
		return nil, fd
	}
	m, _ := res.Get(fd).Message().Interface().(*d4pb.Meta)
	return m, fd
}

func (r *Resource) profiles() []string {
	m, _ := r.meta()
	if m == nil {
		return nil
	}
	out := make([]string, len(m.Profile))
	for i, p := range m.Profile {
		out[i] = p.GetValue()
	}
	return out
}

func (r *Resource) setProfiles(urls []string) {
	m, fd := r.meta()
	if fd == nil {
		return
	}
	if m == nil {
		if len(urls) == 0 {
			return
		}
		m = &d4pb.Meta{}
	}
	m.Profile = m.Profile[:0]
	for _, u := range urls {
		m.Profile = append(m.Profile, &d4pb.Canonical{Value: u})
	}
	if proto.Size(m) == 0 {
		r.msg.res.Clear(fd)
		return
	}
	r.msg.res.Set(fd, protoreflect.ValueOfMessage(m.ProtoReflect()))
}

func (c *Codec) marshal(r *Resource) ([]byte, error) {
	if r == nil || r.msg.res == nil {
		return nil, fmt.Errorf("fhir: Marshal of an unparsed resource")
	}
	b, err := c.impl.m.MarshalResource(withoutVersionMeta(r.msg.res).Interface())
	if err != nil {
		return nil, fmt.Errorf("fhir: marshal %s: %w", r.Type, err)
	}
	return headFirst(b)
}

// withoutVersionMeta returns res, or a shallow copy of it whose meta lacks
// versionId and lastUpdated (and is dropped if nothing else is left). The
// copy keeps Marshal free of side effects on the Resource.
func withoutVersionMeta(res protoreflect.Message) protoreflect.Message {
	fd := res.Descriptor().Fields().ByName("meta")
	if fd == nil || !res.Has(fd) {
		return res
	}
	meta, ok := res.Get(fd).Message().Interface().(*d4pb.Meta)
	if !ok || (meta.VersionId == nil && meta.LastUpdated == nil) {
		return res
	}
	cp := res.New()
	res.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		cp.Set(f, v)
		return true
	})
	m := proto.Clone(meta).(*d4pb.Meta)
	m.VersionId, m.LastUpdated = nil, nil
	if proto.Size(m) == 0 {
		cp.Clear(fd)
	} else {
		cp.Set(fd, protoreflect.ValueOfMessage(m.ProtoReflect()))
	}
	return cp
}

// libError mirrors the fields of the parser's UnmarshalError. That type
// lives in an internal package of github.com/google/fhir/go, so its fields
// are read by reflection rather than by a type assertion.
type libError struct {
	path, details, diagnostics, typ string
}

func libErrors(err error) []libError {
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Slice {
		out := make([]libError, 0, v.Len())
		for i := 0; i < v.Len(); i++ {
			if le, ok := libErrorOf(v.Index(i)); ok {
				out = append(out, le)
			}
		}
		if len(out) == v.Len() {
			return out
		}
		return nil
	}
	if le, ok := libErrorOf(v); ok {
		return []libError{le}
	}
	return nil
}

func libErrorOf(v reflect.Value) (libError, bool) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return libError{}, false
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return libError{}, false
	}
	str := func(name string) (string, bool) {
		f := v.FieldByName(name)
		if !f.IsValid() || f.Kind() != reflect.String {
			return "", false
		}
		return f.String(), true
	}
	details, ok := str("Details")
	if !ok {
		return libError{}, false
	}
	path, _ := str("Path")
	diag, _ := str("Diagnostics")
	typ, _ := str("Type")
	return libError{path: path, details: details, diagnostics: diag, typ: typ}, true
}

func issuesFromError(err error, body []byte) []Issue {
	les := libErrors(err)
	if les == nil {
		return []Issue{{Severity: "error", Code: "invalid", Diagnostics: err.Error()}}
	}
	out := make([]Issue, 0, len(les))
	for _, le := range les {
		if le.details == "invalid JSON" {
			out = append(out, syntaxIssue(body))
			continue
		}
		out = append(out, issueFrom(le))
	}
	return out
}

// syntaxIssue describes malformed JSON with encoding/json's message, which
// names the byte offset, instead of the parser's, which echoes raw input.
func syntaxIssue(body []byte) Issue {
	msg := "malformed JSON: the body must be one JSON object"
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			msg = fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())
		} else {
			msg = "malformed JSON: " + err.Error()
		}
	} else if _, ok := v.(map[string]any); !ok {
		msg = "malformed JSON: the body must be a JSON object"
	}
	return Issue{Severity: "error", Code: "structure", Diagnostics: msg}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// issueFrom maps a parser error to an issue type code (see the FHIR
// IssueType value set) and, where the parser names the element only in its
// message, moves that name into the expression.
func issueFrom(le libError) Issue {
	d := le.details
	expr := le.path
	code := "invalid"
	extra := le.diagnostics
	switch {
	case le.typ == "RequiredFieldError" || strings.HasPrefix(d, "missing required field "):
		code = "required"
		if name, err := strconv.Unquote(strings.TrimPrefix(d, "missing required field ")); err == nil {
			expr = joinPath(le.path, name)
			d = "missing required element"
		}
	case le.typ == "ReferenceTypeError" || strings.HasPrefix(d, "invalid reference"):
		code = "invalid"
	case d == "unknown field":
		code = "structure"
		if name, err := strconv.Unquote(le.diagnostics); err == nil {
			expr = joinPath(le.path, name)
			d, extra = "unknown element", ""
		}
	case d == "invalid JSON":
		code = "structure"
	case d == "code type mismatch":
		code = "code-invalid"
		d = "invalid code (not in the required value set)"
	case d == "expected array" || d == "invalid field" || d == "invalid extension field" ||
		strings.HasPrefix(d, "cannot accept multiple values") || strings.HasPrefix(d, "array length mismatch") ||
		strings.HasPrefix(d, "field exceeded the maximum nesting depth") || d == "unknown resource type" ||
		d == "invalid resource type" || strings.HasPrefix(d, "invalid type"):
		code = "structure"
	case strings.HasPrefix(d, "expected ") || strings.HasPrefix(d, "invalid ") ||
		strings.HasPrefix(d, "string ") || strings.Contains(d, "out of range"):
		code = "value"
	}
	msg := d
	if extra != "" {
		msg += ": " + strings.ToValidUTF8(extra, "\uFFFD")
	}
	is := Issue{Severity: "error", Code: code}
	if expr != "" {
		is.Expression = []string{expr}
		msg = expr + ": " + msg
	}
	is.Diagnostics = msg
	return is
}

// sortIssues orders issues by expression: the parser walks maps, so its
// order would differ between runs.
func sortIssues(is []Issue) {
	key := func(i Issue) string {
		if len(i.Expression) > 0 {
			return i.Expression[0]
		}
		return ""
	}
	slices.SortStableFunc(is, func(a, b Issue) int {
		if c := strings.Compare(key(a), key(b)); c != 0 {
			return c
		}
		return strings.Compare(a.Diagnostics, b.Diagnostics)
	})
}
