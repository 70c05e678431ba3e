package fhir

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// BaseIssues returns what base R4 refuses in a parsed resource that the
// parser lets through, element by element, including contained resources:
//   - a code element with a required binding that has no code, only
//     extensions (the value set cannot be met without a code);
//   - extensions on Resource.id, which is a plain string in R4;
//   - a contained resource's id that is not an R4 id (the parser checks
//     only the resource's own);
//   - a string that holds HTML markup (<script>…</script>, <img …>): a
//     string is shown as text, and every reader that renders it in a
//     browser would have to escape it; narrative is the place for markup.
//     The HL7 validator's security checks refuse the same.
func (r *Resource) BaseIssues() []Issue {
	if r == nil || r.msg.res == nil {
		return nil
	}
	w := baseWalker{root: r.Type, path: make([]baseSeg, 0, 16)}
	w.resource(r.msg.res, false)
	return w.issues
}

// MayBreakBaseRules reports whether body, the JSON a resource was parsed
// from, can hold anything BaseIssues refuses: each rule needs a
// primitive's extension ("_code", "_id"), a contained resource, or
// markup ('<', also escaped as \u003c). It is false for most writes, which
// then skip the walk over the parsed resource (reflection, on every
// write).
func MayBreakBaseRules(body []byte) bool {
	return bytes.Contains(body, []byte(`"_`)) || bytes.Contains(body, []byte(`"contained"`)) ||
		bytes.IndexByte(body, '<') >= 0 || bytes.Contains(body, []byte(`\u003c`)) || bytes.Contains(body, []byte(`\u003C`))
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// baseWalker walks a parsed resource. The path to the element being
// looked at is kept as segments and printed only for an issue: the walk
// is on every write, and almost every write has none.
type baseWalker struct {
	root   string
	path   []baseSeg
	issues []Issue
}

// baseSeg is one step of the path: a field (its JSON name; for a choice
// type's wrapper field, the type the value[x] name ends in) and its
// index in a list (-1: not in a list).
type baseSeg struct {
	name   string
	choice bool
	idx    int
}

func (w *baseWalker) pathString() string {
	var b strings.Builder
	b.WriteString(w.root)
	for _, s := range w.path {
		if s.choice {
			name := strings.TrimSuffix(s.name, "Value")
			b.WriteString(strings.ToUpper(name[:1]) + name[1:])
		} else {
			b.WriteByte('.')
			b.WriteString(s.name)
		}
		if s.idx >= 0 {
			fmt.Fprintf(&b, "[%d]", s.idx)
		}
	}
	return b.String()
}

func (w *baseWalker) add(code, format string, args ...any) {
	path := w.pathString()
	msg := fmt.Sprintf(format, args...)
	w.issues = append(w.issues, Issue{Severity: "error", Code: code, Diagnostics: path + ": " + msg, Expression: []string{path}})
}

func (w *baseWalker) resource(res protoreflect.Message, contained bool) {
	if fd := res.Descriptor().Fields().ByName("id"); fd != nil && res.Has(fd) {
		if id, ok := res.Get(fd).Message().Interface().(*d4pb.Id); ok {
			w.path = append(w.path, baseSeg{name: "id", idx: -1})
			if len(id.GetExtension()) > 0 || id.GetId() != nil {
				w.add("structure", "extensions are not allowed on Resource.id (the resource id is a plain string)")
			}
			if contained && !idRE.MatchString(id.GetValue()) {
				w.add("value", "%q is not a valid id (1 to 64 of A-Z, a-z, 0-9, '-' and '.')", clipRunes(id.GetValue(), 80))
			}
			w.path = w.path[:len(w.path)-1]
		}
	}
	w.fields(res, true)
}

func (w *baseWalker) fields(m protoreflect.Message, top bool) {
	choice := m.Descriptor().Oneofs().ByName("choice") != nil
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if top && fd.Name() == "id" {
			return true // resource() has looked at it
		}
		seg := baseSeg{name: fd.JSONName(), choice: choice, idx: -1}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				seg.idx = i
				w.path = append(w.path, seg)
				w.element(l.Get(i).Message())
				w.path = w.path[:len(w.path)-1]
			}
			return true
		}
		w.path = append(w.path, seg)
		w.element(v.Message())
		w.path = w.path[:len(w.path)-1]
		return true
	})
}

func (w *baseWalker) element(m protoreflect.Message) {
	switch x := m.Interface().(type) {
	case *anypb.Any:
		cr := &bcrpb.ContainedResource{}
		if x.UnmarshalTo(cr) != nil {
			return
		}
		if res := innerResource(cr); res != nil {
			w.resource(res, true)
		}
		return
	case *d4pb.String:
		if tag := htmlTag(x.GetValue()); tag != "" {
			w.add("value", "the text contains HTML markup (%s); a string is plain text, markup belongs in the narrative (text.div)", tag)
		}
	}
	fields := m.Descriptor().Fields()
	if vf := fields.ByName("value"); vf != nil && vf.Kind() != protoreflect.MessageKind {
		// A primitive: its value is checked here, and only its
		// extensions (rare) can hold more to look at.
		if vf.Kind() == protoreflect.EnumKind && m.Get(vf).Enum() == 0 {
			// Generated enums are the codes of required bindings; 0 is
			// INVALID_UNINITIALIZED: no code was given.
			w.add("required", "no code: the element is bound to a required value set, so it needs a code from it (an extension alone is not enough)")
		}
		if ext := fields.ByName("extension"); ext == nil || m.Get(ext).List().Len() == 0 {
			return
		}
	}
	w.fields(m, false)
}

// htmlTag returns the first HTML start or end tag in s, or "". Clinical
// text often holds '<' and '>' ("Hb < 10", "<5 mg", "->", "<Nordmann>"),
// so a tag is '<' or '</' and the name of an HTML element, then '>', '/'
// or whitespace and a closing '>' with no other '<' in between.
func htmlTag(s string) string {
	for i := strings.IndexByte(s, '<'); i >= 0; {
		rest := s[i+1:]
		name := strings.TrimPrefix(rest, "/")
		k := 0
		for k < len(name) && k < 12 && name[k] < 0x80 && (unicode.IsLetter(rune(name[k])) || k > 0 && unicode.IsDigit(rune(name[k]))) {
			k++
		}
		if k > 0 && k < len(name) && htmlElements[strings.ToLower(name[:k])] {
			after := name[k:]
			end := strings.IndexAny(after, "<>")
			if end >= 0 && after[end] == '>' && (end == 0 || after[0] == '/' || unicode.IsSpace(rune(after[0]))) {
				return clipRunes(s[i:i+1+len(rest)-len(name)+k+end+1], 40)
			}
		}
		next := strings.IndexByte(rest, '<')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return ""
}

// htmlElements are the HTML element names htmlTag knows: those that run,
// load or embed something, and the common formatting ones.
var htmlElements = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`script noscript style link meta base iframe frame frameset object embed applet param
		svg math img image picture source audio video track canvas map area form input button select option textarea label
		html head body title template slot a div span p br hr b i u s em strong small big sub sup code pre tt font center
		blockquote q cite abbr h1 h2 h3 h4 h5 h6 ul ol li dl dt dd table thead tbody tfoot tr th td caption col colgroup
		marquee blink details summary dialog bdo ins del mark`) {
		m[n] = true
	}
	return m
}()

func clipRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
