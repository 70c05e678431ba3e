package conformance

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// fhirSchemaID is the id the HL7 FHIR R4 JSON Schema gives itself; its
// definitions are addressed as fhirSchemaID#/definitions/<name>.
const fhirSchemaID = "http://hl7.org/fhir/json-schema/4.0"

// fhirSchema is the HL7 FHIR R4 JSON Schema, compiled. Each resource is
// validated against its own definition (#/definitions/Patient) rather than
// the schema's root, a oneOf over some 150 resource types: through the
// oneOf a single wrong element yields an error for every alternative, and
// validation is many times slower.
type fhirSchema struct {
	mu       sync.Mutex // guards defs and seen; the compiler is not safe for concurrent use
	compiler *jsonschema.Compiler
	types    map[string]bool // resource types: the root's discriminator mapping
	defs     map[string]*jsonschema.Schema
	seen     map[[32]byte][]schemaError // results by resource content

	// Compile is how long reading and compiling took: most of the
	// group's own time.
	Compile time.Duration
}

// loadFHIRSchema reads and compiles the schema at path. Compiling any
// resource's definition compiles nearly all of the 3 MB schema (every
// resource can contain every other), about half a second; later
// definitions are then found compiled.
func loadFHIRSchema(path string) (*fhirSchema, error) {
	start := time.Now()
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	root, _ := doc.(map[string]any)
	if id, _ := root["id"].(string); id != fhirSchemaID {
		return nil, fmt.Errorf("%s: schema id %q, want the FHIR R4 JSON Schema %s", path, id, fhirSchemaID)
	}
	addFHIRVersion401(root)
	s := &fhirSchema{compiler: jsonschema.NewCompiler(), types: map[string]bool{}, defs: map[string]*jsonschema.Schema{}, seen: map[[32]byte][]schemaError{}}
	// The schema declares draft-06 in $schema; this only matters for a
	// copy that lost it.
	s.compiler.DefaultDraft(jsonschema.Draft6)
	if err := s.compiler.AddResource(fhirSchemaID, doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	disc, _ := root["discriminator"].(map[string]any)
	mapping, _ := disc["mapping"].(map[string]any)
	for typ := range mapping {
		s.types[typ] = true
	}
	if len(s.types) == 0 {
		return nil, fmt.Errorf("%s: no resource types in discriminator.mapping; not the FHIR R4 JSON Schema", path)
	}
	if _, err := s.definition("Bundle"); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.Compile = time.Since(start)
	return s, nil
}

// addFHIRVersion401 adds "4.0.1" to the schema's FHIRVersion enums
// (CapabilityStatement.fhirVersion and the like). The file is the schema
// HL7 published with R4 4.0.0, whose enums end at "4.0.0"; R4's technical
// correction 4.0.1 is what servers implement and declare. The file itself
// stays as distributed (testdata/fhir/README.md); this is the one change,
// made in memory.
func addFHIRVersion401(v any) {
	switch v := v.(type) {
	case map[string]any:
		if enum, ok := v["enum"].([]any); ok && slices.Contains(enum, any("4.0.0")) && !slices.Contains(enum, any("4.0.1")) {
			v["enum"] = append(enum, "4.0.1")
		}
		for _, x := range v {
			addFHIRVersion401(x)
		}
	case []any:
		for _, x := range v {
			addFHIRVersion401(x)
		}
	}
}

func (s *fhirSchema) definition(typ string) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.defs[typ]; ok {
		return d, nil
	}
	d, err := s.compiler.Compile(fhirSchemaID + "#/definitions/" + typ)
	if err != nil {
		return nil, fmt.Errorf("compile the definition of %s: %w", typ, err)
	}
	s.defs[typ] = d
	return d, nil
}

// schemaError is one violation: where (a JSON pointer into the body) and
// what.
type schemaError struct {
	Pointer string
	Message string
}

func (e schemaError) String() string {
	p := e.Pointer
	if p == "" {
		p = "/"
	}
	return p + ": " + e.Message
}

// Validate validates a FHIR JSON body and returns every violation, in
// document order; nil means the body is valid. A body that is not a JSON
// object with a known R4 resourceType is one violation.
func (s *fhirSchema) Validate(body []byte) ([]schemaError, error) {
	return s.validateRaw(body)
}

// validateRaw validates one resource, with pointers relative to it. The
// result is kept by the resource's content: a run is served the same
// resources over and over (every AuditEvent search repeats most of the
// log), and each distinct one is validated once.
func (s *fhirSchema) validateRaw(raw []byte) ([]schemaError, error) {
	key := sha256.Sum256(raw)
	s.mu.Lock()
	errs, ok := s.seen[key]
	s.mu.Unlock()
	if ok {
		return errs, nil
	}
	errs, err := s.validateResource(raw)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.seen[key] = errs
	s.mu.Unlock()
	return errs, nil
}

// validateResource validates one resource. The resources nested in it
// (contained, Bundle entries and outcomes, Parameters) are cut out and
// validated against their own definitions: left in place the schema would
// check each through the oneOf of all resource types.
func (s *fhirSchema) validateResource(raw []byte) ([]schemaError, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return []schemaError{{"", "not JSON: " + err.Error()}}, nil
		}
		return []schemaError{{"", "not a JSON object, so not a FHIR resource"}}, nil
	}
	var typ string
	switch rt, ok := members["resourceType"]; {
	case !ok:
		return []schemaError{{"/resourceType", "missing: not a FHIR resource"}}, nil
	case json.Unmarshal(rt, &typ) != nil || !s.types[typ]:
		return []schemaError{{"/resourceType", string(rt) + " is not a FHIR R4 resource type"}}, nil
	}
	nested := detachResources(typ, members)
	if len(nested) > 0 {
		var err error
		if raw, err = json.Marshal(members); err != nil {
			return nil, err
		}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	def, err := s.definition(typ)
	if err != nil {
		return nil, err
	}
	var out []schemaError
	if err := def.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return nil, err
		}
		obj, _ := doc.(map[string]any)
		subsetted := isSubsetted(obj)
		for _, leaf := range leaves(ve) {
			// _elements and _summary answers leave out elements on
			// purpose and say so with the SUBSETTED tag; such a
			// resource may miss required elements and nothing else.
			if _, ok := leaf.ErrorKind.(*kind.Required); ok && subsetted {
				continue
			}
			out = append(out, schemaError{pointer(leaf.InstanceLocation), leafMessage(leaf)})
		}
	}
	for _, n := range nested {
		errs, err := s.validateRaw(n.raw)
		if err != nil {
			return nil, err
		}
		for _, e := range errs {
			out = append(out, schemaError{pointer(n.path) + e.Pointer, e.Message})
		}
	}
	return out, nil
}

type nestedResource struct {
	path []string
	raw  json.RawMessage
}

// detachResources removes the resources nested in a resource's members
// and returns them with their pointers. A nesting element that does not
// have the expected shape is left in place for the schema to report.
func detachResources(typ string, members map[string]json.RawMessage) []nestedResource {
	var out []nestedResource
	var contained []json.RawMessage
	if json.Unmarshal(members["contained"], &contained) == nil && contained != nil {
		for i, c := range contained {
			out = append(out, nestedResource{[]string{"contained", strconv.Itoa(i)}, c})
		}
		delete(members, "contained")
	}
	switch typ {
	case "Bundle":
		var entries []map[string]json.RawMessage
		if json.Unmarshal(members["entry"], &entries) != nil {
			break
		}
		for i, e := range entries {
			if r, ok := e["resource"]; ok {
				out = append(out, nestedResource{[]string{"entry", strconv.Itoa(i), "resource"}, r})
				delete(e, "resource")
			}
			var resp map[string]json.RawMessage
			if json.Unmarshal(e["response"], &resp) == nil {
				if r, ok := resp["outcome"]; ok {
					out = append(out, nestedResource{[]string{"entry", strconv.Itoa(i), "response", "outcome"}, r})
					delete(resp, "outcome")
					e["response"], _ = json.Marshal(resp)
				}
			}
		}
		if len(out) > 0 {
			members["entry"], _ = json.Marshal(entries)
		}
	case "Parameters":
		members["parameter"] = detachParameters(members["parameter"], []string{"parameter"}, &out)
	}
	return out
}

// detachParameters cuts Parameters.parameter[].resource out, parts too.
func detachParameters(raw json.RawMessage, path []string, out *[]nestedResource) json.RawMessage {
	var params []map[string]json.RawMessage
	if json.Unmarshal(raw, &params) != nil || params == nil {
		return raw
	}
	for i, p := range params {
		at := append(slices.Clone(path), strconv.Itoa(i))
		if r, ok := p["resource"]; ok {
			*out = append(*out, nestedResource{append(slices.Clone(at), "resource"), r})
			delete(p, "resource")
		}
		if parts, ok := p["part"]; ok {
			p["part"] = detachParameters(parts, append(at, "part"), out)
		}
	}
	b, _ := json.Marshal(params)
	return b
}

// isSubsetted says whether meta.tag carries SUBSETTED, the tag FHIR puts
// on an answer to _elements or _summary.
func isSubsetted(obj map[string]any) bool {
	meta, _ := obj["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	for _, t := range tags {
		tag, _ := t.(map[string]any)
		if tag["code"] == "SUBSETTED" {
			return true
		}
	}
	return false
}

// leaves are the violations themselves; the inner nodes of the error tree
// only say that a $ref or a property failed.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// leafMessage is the library's English message for one violation,
// without its "at '<pointer>'" prefix (we print our own pointer, from the
// top of the body rather than of the nested resource).
func leafMessage(leaf *jsonschema.ValidationError) string {
	msg := (&jsonschema.ValidationError{ErrorKind: leaf.ErrorKind}).Error()
	if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "at ") {
		return rest
	}
	return msg
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// validityRun is what the validity group computes once per run: the
// compiled schema and the group's own sample. It lives here rather than in
// env so that the group stays in its own files; there is one slot,
// replaced when another run asks, so a process that runs the suite
// repeatedly (the tests) does not keep a compiled schema per run.
type validityRun struct {
	mu        sync.Mutex
	env       *env
	schema    *fhirSchema
	schemaErr error
	sample    *validitySample
}

var current validityRun

// validity locks the run's slot (the caller unlocks), emptying it when it
// belongs to another run.
func (t *T) validity() *validityRun {
	current.mu.Lock()
	if current.env != t.env {
		current.env, current.schema, current.schemaErr, current.sample = t.env, nil, nil, nil
	}
	return &current
}

// FHIRSchema returns the compiled FHIR R4 JSON Schema of Config.SchemaFile,
// compiling it on first use in the run; a missing file skips the check.
func (t *T) FHIRSchema() *fhirSchema {
	st := t.validity()
	defer st.mu.Unlock()
	if st.schema == nil && st.schemaErr == nil {
		st.schema, st.schemaErr = loadFHIRSchema(t.schemaFile())
	}
	switch {
	case errors.Is(st.schemaErr, os.ErrNotExist):
		t.Skipf("the HL7 FHIR R4 JSON Schema is not at %s (set --fhir-schema): %v", t.schemaFile(), st.schemaErr)
	case st.schemaErr != nil:
		t.Fatalf("the FHIR R4 JSON Schema cannot be used: %v", st.schemaErr)
	}
	return st.schema
}

func (t *T) schemaFile() string { return or(t.env.cfg.SchemaFile, "testdata/fhir/fhir.schema.json") }
