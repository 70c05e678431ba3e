package fhir

import (
	"github.com/google/fhir/go/jsonformat"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// The parser normalises "Patient/123" into a typed oneof member
// (patient_id), "#x" into fragment, and keeps everything else (absolute
// URLs, urn:uuid:) in the uri member. refString turns any of those back
// into the string the client wrote.
func refString(ref *d4pb.Reference) string {
	if u := ref.GetUri(); u != nil {
		return u.GetValue()
	}
	if f := ref.GetFragment(); f != nil {
		return "#" + f.GetValue()
	}
	if ref.GetReference() == nil {
		return "" // identifier- or display-only reference
	}
	c := proto.Clone(ref).(*d4pb.Reference)
	if err := jsonformat.DenormalizeReference(c); err != nil {
		return ""
	}
	return c.GetUri().GetValue()
}

// setRef points ref at s and normalises it the way the parser would, so a
// rewritten "Patient/1" is indistinguishable from a parsed one.
func setRef(ref *d4pb.Reference, s string) {
	ref.Reference = &d4pb.Reference_Uri{Uri: &d4pb.String{Value: s}}
	_ = jsonformat.NormalizeReference(ref)
}

// walkRefs calls fn for every Reference in m, including those inside
// contained resources; it reports whether fn changed anything.
func walkRefs(m protoreflect.Message, fn func(*d4pb.Reference) bool) bool {
	changed := false
	visit := func(v protoreflect.Message) {
		switch x := v.Interface().(type) {
		case *d4pb.Reference:
			if fn(x) {
				changed = true
			}
			// A Reference's own identifier.assigner is a Reference too.
			if walkRefs(v, fn) {
				changed = true
			}
		case *anypb.Any:
			cr := &bcrpb.ContainedResource{}
			if x.UnmarshalTo(cr) != nil {
				return
			}
			if walkRefs(cr.ProtoReflect(), fn) {
				changed = true
				_ = x.MarshalFrom(cr)
			}
		default:
			if walkRefs(v, fn) {
				changed = true
			}
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		if fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visit(l.Get(i).Message())
			}
			return true
		}
		visit(v.Message())
		return true
	})
	return changed
}

func (r *Resource) references() []string {
	if r.msg.res == nil {
		return nil
	}
	var out []string
	walkRefs(r.msg.res, func(ref *d4pb.Reference) bool {
		if s := refString(ref); s != "" {
			out = append(out, s)
		}
		return false
	})
	return out
}

func (r *Resource) rewriteReferences(m map[string]string) {
	if r.msg.res == nil || len(m) == 0 {
		return
	}
	walkRefs(r.msg.res, func(ref *d4pb.Reference) bool {
		s := refString(ref)
		if s == "" {
			return false
		}
		to, ok := m[s]
		if !ok || to == s {
			return false
		}
		setRef(ref, to)
		return true
	})
	r.Patient = patientOf(r.Type, r.ID, r.msg.res)
}
