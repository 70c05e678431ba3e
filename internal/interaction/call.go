package interaction

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/documents"
)

// Kind is what a call does. Its value is the FHIR interaction code (or
// the operation's name) the CapabilityStatement, the metrics and the
// usage log use.
type Kind string

const (
	Capabilities Kind = "capabilities"
	Read         Kind = "read"
	VRead        Kind = "vread"
	History      Kind = "history-instance"
	Search       Kind = "search-type" // also the compartment search (Call.Compartment)
	Create       Kind = "create"
	Update       Kind = "update" // also the conditional update (no ID, Call.Query)
	Delete       Kind = "delete"
	Bundle       Kind = "transaction" // a batch or transaction Bundle; its type decides
	Validate     Kind = "$validate"
	Status       Kind = "$kj-status"
	DocumentRead Kind = "document-read"
)

// Kinds are every kind of call ParseCall routes.
func Kinds() []Kind {
	return []Kind{Capabilities, Read, VRead, History, Search, Create, Update, Delete, Bundle, Validate, Status, DocumentRead}
}

// Call is one FHIR request without its transport: what ParseCall read
// from the method and URL, and what the caller adds from the body and
// headers (or from a Bundle entry).
type Call struct {
	Kind   Kind
	Method string
	// Path is the URL path as requested, without the leading slash, for
	// messages.
	Path string
	Type string
	ID   string
	// Version is the version of a vread.
	Version int64
	// Compartment is the patient of /Patient/{id}/{type}.
	Compartment string
	// Token is the document token of /documents/{token}.
	Token string
	// RawQuery is the query string as received; Query its parameters.
	RawQuery string
	Query    url.Values
	// Form is the form-encoded body of POST /{type}/_search, one search
	// with the query.
	Form []byte
	// Body is the resource (create, update, $validate) or Bundle.
	Body []byte
	// IfMatch is the version If-Match names (0: none); IfNoneExist the
	// query of a conditional create.
	IfMatch     int64
	IfNoneExist string
	// Lenient is Prefer: handling=lenient (unknown search parameters are
	// ignored and reported instead of refused).
	Lenient bool
	// Return is Prefer: return= (minimal, representation,
	// OperationOutcome; "" is representation).
	Return string
	// Entry marks a call that is a Bundle entry.
	Entry bool
}

// Public reports whether the call needs no token: the CapabilityStatement
// and the server's conformance resources.
func (c *Call) Public() bool {
	return c.Kind == Capabilities || (c.Kind == Read || c.Kind == Search) && isConformanceType(c.Type)
}

// isConformanceType reports whether t is one of the server's conformance
// resource types (StructureDefinition, CodeSystem, ValueSet,
// SearchParameter), public like the CapabilityStatement (canonical.go).
func isConformanceType(t string) bool { return access.IsConformanceType(t) }

// isLabType reports whether t is a type of lab results (prøvesvar), which
// are searched at the lab sources, never stored.
func isLabType(t string) bool { return t == "DiagnosticReport" || t == "Observation" }

// served reports whether the server answers resource type t at all.
func (s *Service) served(t string) bool {
	switch t {
	case "AuditEvent":
		return true
	case "DocumentReference":
		return s.cfg.Documents != nil && s.cfg.Documents.Serves(documents.KindDocuments)
	case "DiagnosticReport", "Observation":
		return s.cfg.Documents != nil && s.cfg.Documents.Serves(documents.KindLab)
	case "Subscription":
		return s.cfg.Notify != nil
	case "Practitioner":
		return s.cfg.Policy != nil
	}
	return s.codec.Accepts(t) || isConformanceType(t)
}

func (s *Service) servedTypes() []string {
	out := s.codec.Types()
	if s.served("DocumentReference") {
		out = append(out, "DocumentReference")
	}
	if s.served("DiagnosticReport") {
		out = append(out, "DiagnosticReport", "Observation")
	}
	if s.cfg.Notify != nil {
		out = append(out, "Subscription")
	}
	if s.cfg.Policy != nil {
		out = append(out, "Practitioner")
	}
	return append(out, "AuditEvent")
}

// ParseCall routes a FHIR request: the method and the path (relative to
// the server's base, leading slash optional) and the raw query become a
// Call, or an *Error for what no route serves (404 for an unknown path or
// type, 405 with the methods that are allowed, 400 for a malformed id or
// version). REST requests and Bundle entries both route here, so a Bundle
// entry reaches exactly what the same URL reaches.
func (s *Service) ParseCall(method, path, rawQuery string) (*Call, error) {
	c := &Call{}
	if err := s.Route(c, method, path, rawQuery); err != nil {
		return nil, err
	}
	return c, nil
}

// Route is ParseCall into a Call the caller holds (the HTTP adapter keeps
// it with the rest of its state of the request).
func (s *Service) Route(c *Call, method, path, rawQuery string) error {
	var query url.Values
	if rawQuery != "" {
		var err error
		if query, err = url.ParseQuery(rawQuery); err != nil {
			return invalid("", "the query string cannot be read: %v", err)
		}
	}
	path = strings.TrimPrefix(path, "/")
	*c = Call{Method: method, Path: path, RawQuery: rawQuery, Query: query}
	// No FHIR path has more than four segments; splitting into a fixed
	// array keeps the router free of allocations.
	var buf [5]string
	seg := buf[:0]
	for rest := path; ; {
		if len(seg) == len(buf) {
			return notFound("no FHIR endpoint at %s /%s", method, path)
		}
		part, tail, more := strings.Cut(rest, "/")
		seg = append(seg, part)
		if !more {
			break
		}
		rest = tail
	}
	if e := s.route(c, seg); e != nil {
		return e
	}
	return nil
}

func (s *Service) route(c *Call, seg []string) *Error {
	m := c.Method
	where := func() string { return m + " /" + c.Path }
	if len(seg) == 1 && seg[0] == "" {
		if m == http.MethodGet && len(c.Query) > 0 {
			// A whole-system search would reach every patient's record.
			return notAllowed(http.MethodPost, "%s: a search of the whole system is not offered: every search is bound to one patient; "+
				"search one record across types with GET /Patient/{id}/*?_type=…", where())
		}
		if m != http.MethodPost {
			return notAllowed(http.MethodPost, "%s: the base takes POST of a batch or transaction Bundle", where())
		}
		c.Kind = Bundle
		return nil
	}
	if seg[0] == "metadata" && len(seg) == 1 {
		if m != http.MethodGet {
			return notAllowed(http.MethodGet, "the CapabilityStatement is read with GET /metadata; it cannot be written")
		}
		c.Kind = Capabilities
		return nil
	}
	if seg[0] == "documents" && len(seg) == 2 && s.cfg.Documents != nil {
		if m != http.MethodGet {
			return notAllowed(http.MethodGet, "%s: documents are read with GET", where())
		}
		c.Kind, c.Type, c.Token = DocumentRead, "DocumentReference", seg[1]
		return nil
	}
	c.Type = seg[0]
	if !s.served(c.Type) {
		switch {
		case c.Type == "DocumentReference" || c.Type == "documents":
			return fail(http.StatusNotFound, "not-supported", "journal documents are not configured on this server (--sources)")
		case isLabType(c.Type):
			return fail(http.StatusNotFound, "not-supported", "lab results are not configured on this server (lab sources in --sources)")
		case c.Type == "Subscription":
			return fail(http.StatusNotFound, "not-supported", "change notifications are not enabled on this server")
		}
		if !validType(c.Type) {
			return notFound("no FHIR endpoint at %s", where())
		}
		return fail(http.StatusNotFound, "not-supported", "resource type %q is not served here; served types: %s",
			c.Type, strings.Join(s.servedTypes(), ", "))
	}
	switch len(seg) {
	case 1:
		return s.routeType(c, where)
	case 2:
		return s.routeInstance(c, seg[1], where)
	case 3:
		if seg[2] == "_history" {
			if e := s.routeID(c, seg[1], where); e != nil {
				return e
			}
			if m != http.MethodGet || !s.recordType(c.Type) {
				return notAllowed(allowIf(s.recordType(c.Type), http.MethodGet), "%s: the history of a resource is read with GET", where())
			}
			c.Kind = History
			return nil
		}
		if c.Type == "Patient" && (seg[2] == "$kj-status" || seg[2] == compartmentAll || s.recordType(seg[2]) || isLabType(seg[2]) && s.served(seg[2])) {
			if e := s.routeID(c, seg[1], where); e != nil {
				return e
			}
			if m != http.MethodGet {
				return notAllowed(http.MethodGet, "%s: read with GET", where())
			}
			if seg[2] == "$kj-status" {
				c.Kind = Status
				return nil
			}
			c.Kind, c.Compartment, c.Type = Search, c.ID, seg[2]
			c.ID = ""
			return nil
		}
	case 4:
		if seg[2] == "_history" && s.recordType(c.Type) {
			if e := s.routeID(c, seg[1], where); e != nil {
				return e
			}
			v, err := strconv.ParseInt(seg[3], 10, 64)
			if err != nil || v < 1 {
				return invalid("", "version %q is not a version number", seg[3])
			}
			if m != http.MethodGet {
				return notAllowed(http.MethodGet, "%s: a version is read with GET", where())
			}
			c.Kind, c.Version = VRead, v
			return nil
		}
	}
	return notFound("no FHIR endpoint at %s", where())
}

// routeType routes /{type}.
func (s *Service) routeType(c *Call, where func() string) *Error {
	switch {
	case c.Type == "AuditEvent":
		if c.Method != http.MethodGet {
			return notAllowed(http.MethodGet, "the usage log is written by the server only: AuditEvents cannot be created, read one by one, updated or deleted through the API; search them")
		}
	case c.Type == "DocumentReference":
		if c.Method != http.MethodGet {
			return notAllowed(http.MethodGet, "%s: journal documents are searched with GET; they are not stored here", where())
		}
	case isLabType(c.Type):
		if c.Method != http.MethodGet {
			return notAllowed(http.MethodGet, "%s: lab results are searched with GET; they are looked up at the labs, not stored here", where())
		}
	case c.Type == "Subscription":
		if c.Method != http.MethodPost {
			return notAllowed(http.MethodPost, "%s: a Subscription is created with POST and read by id", where())
		}
	case isConformanceType(c.Type):
		if c.Method != http.MethodGet {
			return notAllowed(http.MethodGet, "%s: %s resources are built into the server: read them by id or search them with GET", where(), c.Type)
		}
	case c.Type == "Practitioner":
		return notFound("Practitioner is read by id only: the signed-in practitioner's own, named by the token's fhirUser")
	}
	switch c.Method {
	case http.MethodGet:
		c.Kind = Search
	case http.MethodPost:
		c.Kind = Create
	case http.MethodPut:
		c.Kind = Update // conditional update: the query names the resource
		if len(c.Query) == 0 {
			return notAllowed("GET, POST", "PUT /%s needs an id (/%s/{id}) or, for a conditional update, a search query", c.Type, c.Type)
		}
	default:
		return notAllowed("GET, POST, PUT", "%s is not supported on /%s", c.Method, c.Type)
	}
	return nil
}

// routeInstance routes /{type}/{second}: an instance, or the type-level
// _search, _history and $validate.
func (s *Service) routeInstance(c *Call, second string, where func() string) *Error {
	switch second {
	case "_search":
		searchable := s.recordType(c.Type) || isLabType(c.Type)
		if c.Method != http.MethodPost || !searchable {
			return notAllowed(allowIf(searchable, http.MethodPost), "%s: POST /%s/_search searches with a form body; GET /%s searches with the query", where(), c.Type, c.Type)
		}
		c.Kind = Search
		return nil
	case "_history":
		// The history of a whole type is not offered (nor advertised).
		return notAllowed("", "%s: the history of a whole type is not offered; read the history of one resource at /%s/{id}/_history", where(), c.Type)
	case "$validate":
		if c.Method != http.MethodPost || !s.recordType(c.Type) {
			return notAllowed(allowIf(s.recordType(c.Type), http.MethodPost), "%s: $validate takes POST of a resource", where())
		}
		c.Kind = Validate
		return nil
	}
	if c.Type == "AuditEvent" {
		return notAllowed("", "the usage log is written by the server only: AuditEvents cannot be created, read one by one, updated or deleted through the API; search them")
	}
	if e := s.routeID(c, second, where); e != nil {
		return e
	}
	readOnly := isConformanceType(c.Type) || c.Type == "Subscription" || c.Type == "DocumentReference" || c.Type == "Practitioner"
	switch {
	case c.Type == "DocumentReference":
		return notFound("journal documents are not stored here: search DocumentReference?patient= and open the attachment URL")
	case isLabType(c.Type):
		return notFound("lab results are not stored here, so not read by id: search %s?patient=", c.Type)
	case c.Method == http.MethodGet:
		c.Kind = Read
	case readOnly:
		return notAllowed(http.MethodGet, "%s is not supported on %s", c.Method, where())
	case c.Method == http.MethodPut:
		c.Kind = Update
	case c.Method == http.MethodDelete && c.Type == "Consent":
		// A privacy setting is lifted (status inactive), never deleted: its
		// history is part of what the citizen and the log can see.
		return notAllowed("GET, PUT", "privacy settings are not deleted; lift one by updating it with status inactive")
	case c.Method == http.MethodDelete:
		c.Kind = Delete
	default:
		return notAllowed("GET, PUT, DELETE", "%s is not supported on %s", c.Method, where())
	}
	return nil
}

func (s *Service) routeID(c *Call, id string, where func() string) *Error {
	if !ValidID(id) {
		return invalid("", "%q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", id)
	}
	c.ID = id
	return nil
}

// recordType reports whether t is one of the types patients' records
// are stored as.
func (s *Service) recordType(t string) bool { return s.codec.Accepts(t) }

func allowIf(ok bool, methods string) string {
	if ok {
		return methods
	}
	return ""
}

// ValidID reports whether id is a FHIR id: [A-Za-z0-9-.]{1,64}.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			return false
		}
	}
	return true
}

// validType reports whether t looks like a FHIR resource type name, so
// that arbitrary text is not echoed as one.
func validType(t string) bool {
	if t == "" || len(t) > 64 || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := 0; i < len(t); i++ {
		ch := t[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

// EntryCall routes one Bundle entry's request through ParseCall: its
// request.url is relative to the base (an absolute URL under the base is
// made relative by the caller) and may carry a query.
func (s *Service) EntryCall(method, rawURL string) (*Call, error) {
	for i := 0; i < len(rawURL); i++ {
		if rawURL[i] < 0x21 || rawURL[i] == 0x7f {
			return nil, invalid("", "request.url %q holds a space or a control character; encode it", rawURL)
		}
	}
	if strings.Contains(rawURL, "://") || strings.HasPrefix(rawURL, "/") {
		// (The Bundle reader takes one leading slash off; a second one
		// would name another host.)
		return nil, invalid("", "request.url %q must be relative to the server's base, such as Flag/123 or Flag?patient=p", rawURL)
	}
	path, query, _ := strings.Cut(rawURL, "?")
	if strings.Contains(path, "#") {
		return nil, invalid("", "request.url %q holds a fragment", rawURL)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return nil, invalid("", "request.url %q holds a dot segment", rawURL)
		}
	}
	unescaped, err := url.PathUnescape(path)
	if err != nil {
		return nil, invalid("", "request.url %q cannot be read: %v", rawURL, err)
	}
	c, err := s.ParseCall(method, unescaped, query)
	if err != nil {
		return nil, errorOf(err)
	}
	c.Entry = true
	return c, nil
}

func (c *Call) String() string { return fmt.Sprintf("%s /%s", c.Method, c.Path) }
