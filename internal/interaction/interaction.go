// Package interaction is kjernejournal's FHIR interactions without a
// transport: read, vread, search, history, create, update, delete,
// conditional create and update, batch and transaction Bundles, the
// operations ($validate, $kj-status), the usage-log search, change
// notification subscriptions, and the search and opening of journal
// documents from the source hospitals.
//
// Every interaction takes the request's context, a Request (who asks, on
// what access basis, and the Facts the usage log is built from) and a
// typed Call, and returns a typed Result or an *Error. There is one path
// per job: one router for FHIR URLs (ParseCall) that REST requests and
// Bundle entries both use, one write pipeline (parse, validate, profile,
// server-set fields, decide, commit with the usage-log records and the
// notification outbox, publish) for direct writes and Bundle entries
// alike, one read path, and one decision point (package access) that every
// access of every route passes, _include and history included. The HTTP
// adapter (internal/api) only maps HTTP onto Calls and Results onto
// answers.
package interaction

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/documents"
	"github.com/kjernejournal/kjernejournal/internal/notify"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Store is what the interactions need of a storage engine: the patients'
// records and the usage log. Both engines are one.
type Store interface {
	store.Resources
	store.AuditLog
}

// Config holds what the interactions need. Store, Codec and Search are
// required.
type Config struct {
	Store  Store
	Codec  *fhir.Codec
	Search *search.Registry
	// Policy decides every access. nil switches the access rules off
	// (and with them the need for a token): only for tests of FHIR
	// behaviour and loopback development servers (--insecure-no-auth).
	Policy *access.Policy
	// Audit switches the usage log on: writes commit their records with
	// them, and Facts.Entries builds the rest. Off only for tests of FHIR
	// behaviour and --insecure-no-audit on loopback.
	Audit bool
	// Notify, if set, serves Subscriptions and queues change
	// notifications of critical information.
	Notify *Notifications
	// Documents, if set, serves journal documents from the source
	// hospitals.
	Documents *documents.Federation
	// RegionOf gives the health region of an organisation number, for the
	// sources that share by region ("" if unknown).
	RegionOf func(org string) string
	// Version is the software version shown in the CapabilityStatement;
	// Security its rest.security (nil: none).
	Version  string
	Security *Security
	// Server names this server in the usage log (its base URL).
	Server string
	Now    func() time.Time
	Log    *slog.Logger
}

// Security describes the authorisation server for the CapabilityStatement.
type Security struct {
	Authorize, Token, Introspect, Revoke, Manage string
	// CORS: browser apps on other origins may call the server.
	CORS bool
}

// Notifications of changed critical information: FHIR R4 Subscriptions
// (rest-hook, backport id-only or empty payloads) for one patient. They
// carry no health data; the receiver fetches with its own token and basis.
type Notifications struct {
	State      *notify.StoreState
	Dispatcher *notify.Dispatcher
	// Dev allows http endpoints on loopback (the development setup).
	Dev bool
	// Allow lists the endpoint hosts (suffixes) notifications may go to.
	Allow []string
}

// Service runs the interactions. It is safe for concurrent use.
type Service struct {
	cfg     Config
	store   Store
	codec   *fhir.Codec
	reg     *search.Registry
	log     *slog.Logger
	started time.Time
	states  stateCache
	locks   keyLocks
}

// New checks cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Codec == nil || cfg.Search == nil {
		return nil, errors.New("interaction: Config.Store, Codec and Search are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	s := &Service{cfg: cfg, store: cfg.Store, codec: cfg.Codec, reg: cfg.Search, log: cfg.Log, started: cfg.Now()}
	if cfg.Notify != nil && cfg.Notify.Dispatcher != nil {
		// Every notification passes the access rules (notifygate.go).
		cfg.Notify.Dispatcher.SetGate(s.notificationAllowed)
	}
	return s, nil
}

// Request is one request as the interactions see it.
type Request struct {
	// Principal is the verified identity; nil when authentication is off
	// (Config.Policy nil) or for a public call.
	Principal *auth.Principal
	// Basis is the nhn-access-basis header as sent.
	Basis string
	// Base is the server's base URL, for fullUrl, Location and links.
	Base string
	// Facts are what the usage log records of the request; the
	// interactions add to them as they run.
	Facts *Facts
	// PersonNumber is the nhn-patient-nin header (fødselsnummer or
	// D-nummer, checked by the adapter), "" when not sent: the patient the
	// request is about, for EHRs that do not know our FHIR ids. Do
	// resolves it once (see national.go).
	PersonNumber string
	// UserRole is the HP category code the nhn-user-role header declares
	// ("" when not sent); the decision point checks it against the token.
	UserRole string
	// named is PersonNumber resolved to the patient's FHIR id (or
	// unknownPerson); resolved says the lookup was made.
	named    string
	resolved bool
}

// entry is the Request of one Bundle entry: the same identity, basis and
// base, and facts of its own, kept with the Bundle's.
func (r *Request) entry(index int, call *Call) *Request {
	e := *r
	e.Facts = r.Facts.entry(index, call)
	return &e
}

// Do runs one call: the one entry point of REST requests and Bundle
// entries alike. An error is always an *Error, the answer to give.
func (s *Service) Do(ctx context.Context, req *Request, call *Call) (*Result, error) {
	req.Facts.describe(call)
	if err := s.resolveNamed(ctx, req); err != nil {
		return nil, errorOf(err)
	}
	res, err := s.do(ctx, req, call)
	if err != nil {
		return nil, errorOf(err)
	}
	return res, nil
}

func (s *Service) do(ctx context.Context, req *Request, call *Call) (*Result, error) {
	switch call.Kind {
	case Capabilities:
		return s.capabilities(req, call)
	case Read:
		switch {
		case isConformanceType(call.Type):
			return s.conformanceRead(req, call)
		case call.Type == "Subscription":
			return s.subscriptionRead(ctx, req, call)
		case call.Type == "Practitioner":
			return s.practitionerRead(ctx, req, call)
		}
		return s.read(ctx, req, call)
	case VRead:
		return s.vread(ctx, req, call)
	case History:
		return s.history(ctx, req, call)
	case Search:
		switch call.Type {
		case "AuditEvent":
			return s.usageLog(ctx, req, call)
		case "DocumentReference":
			return s.documentSearch(ctx, req, call)
		case "DiagnosticReport", "Observation":
			return s.labSearch(ctx, req, call)
		}
		if isConformanceType(call.Type) {
			return s.conformanceSearch(req, call)
		}
		if call.Type == compartmentAll {
			return s.searchCompartment(ctx, req, call)
		}
		return s.search(ctx, req, call)
	case Create:
		if call.Type == "Subscription" {
			return s.subscriptionCreate(ctx, req, call)
		}
		return s.write(ctx, req, call)
	case Update:
		return s.write(ctx, req, call)
	case Delete:
		return s.delete(ctx, req, call)
	case Bundle:
		return s.bundle(ctx, req, call)
	case Validate:
		return s.validate(call)
	case Status:
		return s.status(ctx, req, call)
	case DocumentRead:
		return s.documentRead(ctx, req, call)
	}
	return nil, notFound("no FHIR endpoint at %s %s", call.Method, call.Path)
}

// Result is the answer of a call that succeeded.
type Result struct {
	Status int
	// Body is the JSON answered (a resource, Bundle, Parameters or
	// OperationOutcome), nil for none.
	Body []byte
	// Version is the resource version answered, written or deleted: its
	// ETag and Last-Modified go into the answer.
	Version *store.Version
	// Location, for a create or update, is Type/id/_history/version.
	Location string
	// Stream is a document to stream to the client (Body is nil); the
	// caller writes the usage log first, then streams and closes it.
	Stream *documents.Stream
}
