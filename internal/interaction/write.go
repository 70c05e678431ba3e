package interaction

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/domain"
	"github.com/kjernejournal/kjernejournal/internal/ingest"
	"github.com/kjernejournal/kjernejournal/internal/notify"
	"github.com/kjernejournal/kjernejournal/internal/privacy"
	"github.com/kjernejournal/kjernejournal/internal/profile"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// The write pipeline. Every create, update and delete — a REST request, a
// batch entry or a transaction entry — goes through the same steps:
//
//  1. prepare: server-set fields (who recorded critical information, from
//     the token), parse and validate (base R4: 400), kjernejournal's rules
//     (the patient reference, the person number: 400), the profile (422),
//     the id, the patient held here, and the stored form (package ingest:
//     JSON, search index, identifiers; a person number is unique);
//  2. decide: the decision point for every record the write touches, the
//     privacy change it makes, and the granular scopes on the result;
//  3. commit: the versions, the notification outbox and the usage-log
//     records of the request in one all-or-nothing store commit;
//  4. publish the change notifications from the outbox.
//
// Conditional creates (If-None-Exist) and updates (PUT with a query) run
// the same steps around a search inside the patient's record.

// pending is one write on its way through the pipeline.
type pending struct {
	call  *Call
	res   *fhir.Resource // nil for a delete
	write store.Write
	// prev is the current version before the write (nil: none).
	prev *store.Version
	// holder is the current Patient the resource refers to, read when
	// prepare checked it is held here (Type "" when not read), so the
	// decision point does not read it again.
	holder store.Version
	// change is the privacy change a Consent write makes.
	change *access.PrivacyChange
	// status is what the write answers once committed.
	status int
	facts  *Facts
	// check, when set, is run by the store inside the commit (a
	// conditional create's "no match yet", guardCreate).
	check func(context.Context) error
}

// write serves create, update, conditional create (If-None-Exist) and
// conditional update (PUT /{type}?query).
func (s *Service) write(ctx context.Context, req *Request, c *Call) (*Result, error) {
	if c.Kind == Update && c.ID == "" {
		return s.conditionalUpdate(ctx, req, c)
	}
	p, err := s.prepare(ctx, req, c, prepareOptions{})
	if err != nil {
		return nil, err
	}
	if err := s.decideWrite(ctx, req, p); err != nil {
		return nil, err
	}
	if c.Kind == Create && c.IfNoneExist != "" {
		return s.conditionalCreate(ctx, req, p)
	}
	unlock := s.locks.Lock(uniqueKeys(p.write)...)
	defer unlock()
	return s.commitOne(ctx, req, p)
}

// prepareOptions carry what a transaction knows beyond the entry itself.
type prepareOptions struct {
	// id is the id a transaction assigned to a created resource.
	id string
	// refs maps the transaction's fullUrls (urn:uuid:) to the resources
	// they became.
	refs map[string]string
	// created are the patients the same transaction creates.
	created map[string]bool
	// body and res, when res is set, are the call's body already stamped
	// and parsed (parse) by a caller that needed the resource first.
	body []byte
	res  *fhir.Resource
}

// parse is the start of step 1: the server-set fields, then the one parse
// and base validation of the body.
func (s *Service) parse(req *Request, c *Call) ([]byte, *fhir.Resource, error) {
	if len(c.Body) == 0 {
		if c.Entry {
			return nil, nil, invalid("", "a %s entry needs a resource", c.Method)
		}
		return nil, nil, invalid("", "the request has no body; a FHIR resource in JSON is expected")
	}
	// Server-set fields first, so that what is validated and stored is
	// what the server says, never a client's "who recorded this".
	body, err := stampRecorder(c.Body, c.Type, req.Principal, s.cfg.Now())
	if err != nil {
		return nil, nil, err
	}
	res, err := s.codec.Parse(body)
	if err != nil {
		return nil, nil, err
	}
	if res.Type != c.Type {
		return nil, nil, invalid(res.Type+".resourceType", "the body is a %s, but the URL is for %s", res.Type, c.Type)
	}
	return body, res, nil
}

// prepare is step 1 for a create or update.
func (s *Service) prepare(ctx context.Context, req *Request, c *Call, o prepareOptions) (*pending, error) {
	body, res := o.body, o.res
	if res == nil {
		var err error
		if body, res, err = s.parse(req, c); err != nil {
			return nil, err
		}
	}
	body, res, err := s.stampSettingTime(ctx, c, body, res)
	if err != nil {
		return nil, err
	}
	if len(o.refs) > 0 {
		// A transaction's urn:uuid: references become the resources they
		// name before the rules look at the patient reference.
		res.RewriteReferences(o.refs)
	}
	if c.Entry {
		// A Bundle entry's conditional references (condrefs.go).
		changed, err := s.resolveConditionalRefs(ctx, req, c, res)
		if err != nil {
			return nil, err
		}
		if changed {
			// The rules and the profile check what is stored: the
			// resolved references.
			if body, err = s.codec.Marshal(res); err != nil {
				return nil, err
			}
		}
	}
	if err := checkBody(res, body); err != nil {
		return nil, err
	}
	p := &pending{call: c, res: res, facts: req.Facts}
	create := c.Kind == Create
	id := c.ID
	switch {
	case create && o.id != "":
		id = o.id
	case create:
		id = rand.Text()
	case res.ID == "":
		return nil, invalid(c.Type+".id", "an update must carry the id from the URL (%s) in the body", c.ID)
	case res.ID != c.ID:
		return nil, invalid(c.Type+".id", "the body's id %q differs from the URL's id %q", res.ID, c.ID)
	}
	res.SetID(id)
	req.Facts.ID = id
	if res.Type == "Consent" && !profile.CriticalConsent(body) {
		setting, err := privacy.Parse(body)
		if err != nil {
			return nil, err
		}
		p.change = &access.PrivacyChange{New: setting.Rule()}
	} else if res.Type == "Consent" {
		req.Facts.CriticalConsent = true
	}
	holder, err := s.checkPatientHeld(ctx, res, o.created)
	if err != nil {
		return nil, err
	}
	p.holder = holder
	if !create {
		cur, err := s.store.Read(ctx, c.Type, id)
		switch {
		case err == nil:
			p.prev = &cur
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	w, err := (&ingest.Preparer{Codec: s.codec, Search: s.reg}).Write(res, c.IfMatch, create)
	if err != nil {
		return nil, err
	}
	if res.Type == "Patient" {
		w.Unique = personNumbers(w.Identifiers)
	}
	p.status = http.StatusOK
	switch {
	case create:
		p.status = http.StatusCreated
	case p.prev == nil:
		// An update that creates: if another request creates the resource
		// meanwhile, the commit refuses rather than overwriting it.
		p.status, w.Create = http.StatusCreated, true
	}
	p.write = w
	return p, nil
}

// personNumbers are the person-number identifiers among a Patient's
// identifier keys: one person has one Patient here.
func personNumbers(idents []string) []string {
	var out []string
	for _, k := range idents {
		if strings.HasPrefix(k, ingest.IdentifierKey(domain.SystemFNR, "")) || strings.HasPrefix(k, ingest.IdentifierKey(domain.SystemDNR, "")) {
			out = append(out, k)
		}
	}
	return out
}

// checkPatientHeld refuses a clinical resource for a patient the store
// does not hold, and returns the Patient it read (none for a Patient, or
// a patient the same transaction creates, which are in created).
func (s *Service) checkPatientHeld(ctx context.Context, res *fhir.Resource, created map[string]bool) (store.Version, error) {
	if res.Type == "Patient" || res.Patient == "" || created[res.Patient] {
		return store.Version{}, nil
	}
	v, err := s.store.Read(ctx, "Patient", res.Patient)
	if errors.Is(err, store.ErrNotFound) || err == nil && v.Deleted {
		return store.Version{}, absent{kind: patientNotHeld, typ: res.Type, id: res.Patient}.err()
	}
	return v, err
}

// decideWrite is step 2: every record the write touches passes the
// decision point (the record the resource belongs to now and, for a move,
// the one it will belong to), with the privacy change it makes; the
// written resource must pass the granular scope constraints.
func (s *Service) decideWrite(ctx context.Context, req *Request, p *pending) error {
	c := p.call
	in := access.Create
	if c.Kind != Create {
		in = access.Update
	}
	newPatient := p.res.Patient
	missing := absent{kind: patientNotHeld, typ: c.Type, id: newPatient}
	// A Consent without a privacy change is critical information.
	critical := c.Type == "Consent" && p.change == nil
	if err := checkConsentKind(p.prev, critical); err != nil {
		return err
	}
	if p.prev != nil && !p.prev.Deleted {
		if p.change != nil {
			prev, err := privacy.Parse(p.prev.Body)
			if err != nil {
				return fmt.Errorf("stored Consent/%s: %w", p.prev.ID, err)
			}
			r := prev.Rule()
			p.change.Previous = &r
		}
		// (A Patient's own previous version is its state's source.)
		d, _, err := s.require(ctx, req, ask{in: in, typ: c.Type, patient: p.prev.Patient, current: *p.prev, change: p.change, critical: critical}, absent{kind: unknownResource, typ: c.Type, id: c.ID})
		if err != nil {
			return err
		}
		if p.prev.Patient == newPatient {
			return s.admitsWrite(req, d, p)
		}
	}
	d, _, err := s.require(ctx, req, ask{in: in, typ: c.Type, patient: newPatient, current: p.holder, change: p.change, critical: critical}, missing)
	if err != nil {
		return err
	}
	return s.admitsWrite(req, d, p)
}

func (s *Service) admitsWrite(req *Request, d access.Decision, p *pending) error {
	v := store.Version{Type: p.write.Type, ID: p.write.ID, Index: p.write.Index}
	if !s.admits(d, v) {
		return scopeRefusal(req, p.res.Patient, p.write.Type, fmt.Sprintf("the token's scopes do not allow writing this %s (granular scope constraint)", p.write.Type))
	}
	return nil
}

// commitOne is steps 3 and 4 for one write, answered as the call asks.
func (s *Service) commitOne(ctx context.Context, req *Request, p *pending) (*Result, error) {
	vs, err := s.commit(ctx, []*pending{p}, req.Facts)
	if err != nil {
		return nil, err
	}
	return s.written(req, p.call, vs[0], p.status)
}

// commit is steps 3 and 4: the writes, their notification outbox and the
// usage-log records of the facts given (with the statuses the writes
// answer once committed) in one store commit, then the notifications
// queued. On failure nothing is stored and the facts stay unlogged, for
// the caller to log how the request ended.
func (s *Service) commit(ctx context.Context, ps []*pending, logs ...*Facts) ([]store.Version, error) {
	b := store.Batch{Writes: make([]store.Write, len(ps))}
	for i, p := range ps {
		b.Writes[i] = p.write
		if p.facts != nil && p.facts.Status == 0 {
			p.facts.Status = p.status
		}
	}
	b.Queue = s.outbox(ctx, ps)
	var checks []func(context.Context) error
	for _, p := range ps {
		if p.check != nil {
			checks = append(checks, p.check)
		}
	}
	if len(checks) > 0 {
		b.Precondition = func(ctx context.Context) error {
			for _, check := range checks {
				if err := check(ctx); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if s.cfg.Audit {
		now := s.cfg.Now()
		for _, f := range logs {
			if f.Status == 0 {
				f.Status = http.StatusOK
			}
			b.Audit = append(b.Audit, f.Entries(now, s.cfg.Server)...)
		}
		b.Link = audit.Link
	}
	vs, err := s.store.Commit(ctx, b)
	if err != nil {
		for _, f := range logs {
			f.Status = 0
		}
		return nil, err
	}
	if s.cfg.Audit {
		for _, f := range logs {
			f.Logged()
		}
	}
	s.published(ctx, b.Queue)
	return vs, nil
}

// written answers a create or update as Prefer: return= asks.
func (s *Service) written(req *Request, c *Call, v store.Version, status int) (*Result, error) {
	r := &Result{Status: status, Version: &v, Location: v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.VersionID, 10)}
	switch c.Return {
	case "minimal":
	case "OperationOutcome":
		r.Body = fhir.Outcome(fhir.Issue{Severity: "information", Code: "informational",
			Diagnostics: fmt.Sprintf("%s/%s stored as version %d", v.Type, v.ID, v.VersionID)})
	default:
		sh, e := shapeOf(c.Query)
		if e != nil {
			sh = Shape{}
		}
		body, err := sh.apply(v.Body)
		if err != nil {
			return nil, err
		}
		r.Body = body
	}
	return r, nil
}

// delete serves DELETE /{type}/{id}.
func (s *Service) delete(ctx context.Context, req *Request, c *Call) (*Result, error) {
	p, err := s.prepareDelete(ctx, req, c)
	if err != nil {
		return nil, err
	}
	vs, err := s.commit(ctx, []*pending{p}, req.Facts)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("%s/%s is not known, so there is nothing to delete", c.Type, c.ID)
		}
		return nil, err
	}
	return &Result{Status: http.StatusNoContent, Version: &vs[0]}, nil
}

// prepareDelete is steps 1 and 2 for a delete: the record the resource
// belongs to passes the decision point; a resource that does not exist
// touches no record (the commit answers 404).
func (s *Service) prepareDelete(ctx context.Context, req *Request, c *Call) (*pending, error) {
	p := &pending{call: c, status: http.StatusNoContent, facts: req.Facts,
		write: store.Write{Type: c.Type, ID: c.ID, Op: store.OpDelete, IfMatch: c.IfMatch}}
	cur, err := s.store.Read(ctx, c.Type, c.ID)
	switch {
	case err == nil:
		p.prev = &cur
		p.write.Patient = cur.Patient
		if !cur.Deleted {
			if _, _, err := s.require(ctx, req, ask{in: access.Delete, typ: c.Type, patient: cur.Patient}, absent{kind: nothingToDelete, typ: c.Type, id: c.ID}); err != nil {
				return nil, err
			}
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return p, nil
}

// conditionalCreate finishes a create that carries If-None-Exist: the
// existing match is answered (200) instead of a new resource, several
// matches are a 412, none creates. The store decides (guardCreate), for
// every process on the database; the lock only spares this process's
// requests the store's retries.
func (s *Service) conditionalCreate(ctx context.Context, req *Request, p *pending) (*Result, error) {
	key, err := condCreateKey(p)
	if err != nil {
		return nil, err
	}
	defer s.locks.Lock(append(uniqueKeys(p.write), key)...)()
	s.guardCreate(p, p.call.IfNoneExist, "If-None-Exist", nil)
	r, err := s.commitOne(ctx, req, p)
	var m *matched
	if !errors.As(err, &m) {
		return r, err
	}
	req.Facts.ID = m.v.ID
	return s.written(req, p.call, m.v, http.StatusOK)
}

// matched is a conditional create's precondition finding its match in
// the commit: the write is not made, and m.v is answered instead.
type matched struct {
	p *pending
	v store.Version
}

func (m *matched) Error() string {
	return fmt.Sprintf("%s/%s already matches the conditional create", m.v.Type, m.v.ID)
}

// guardCreate makes p a create that happens only if criteria match
// nothing in the resource's record, decided by the store: the write is
// guarded by the record's key, and the search runs as the commit's
// precondition, after the store has ordered it after every earlier
// guarded commit of that record on any process (store.Write.Guard). A
// match fails the commit with *matched; wrap, if set, wraps the other
// errors of the search (what names the criteria in them).
func (s *Service) guardCreate(p *pending, criteria, what string, wrap func(error) error) {
	p.write.Guard = condGuard(p.res.Patient)
	p.check = func(ctx context.Context) error {
		matches, err := s.matchInRecord(ctx, p.res.Type, p.res.Patient, criteria, what)
		switch {
		case err != nil:
		case len(matches) == 1:
			return &matched{p: p, v: matches[0]}
		case len(matches) > 1:
			err = fail(http.StatusPreconditionFailed, "duplicate", "%s matched %d resources; it must match at most one", what, len(matches))
		default:
			return nil
		}
		if wrap != nil {
			err = wrap(err)
		}
		return err
	}
}

// condGuard is the store guard of conditional writes in patient's record
// (the store keeps guards per type: together, condKey).
func condGuard(patient string) string { return "cond/" + patient }

// condCreateKey is the lock of a conditional create (condKey); one
// outside a patient's record is refused.
func condCreateKey(p *pending) (string, error) {
	if p.res.Type == "Patient" || p.res.Patient == "" {
		return "", fail(http.StatusBadRequest, "not-supported", "conditional create works within a patient's record: for clinical resources only")
	}
	return condKey(p.res.Type, p.res.Patient), nil
}

// conditionalUpdate serves PUT /{type}?query: the query is run inside the
// record of the patient the resource belongs to; one match is updated,
// none creates the resource, several are a 412.
func (s *Service) conditionalUpdate(ctx context.Context, req *Request, c *Call) (*Result, error) {
	body, res, err := s.parse(req, c)
	if err != nil {
		return nil, err
	}
	if res.Type == "Patient" || res.Patient == "" {
		return nil, fail(http.StatusBadRequest, "not-supported", "conditional update works within a patient's record: for clinical resources that refer to their Patient")
	}
	defer s.locks.Lock(condKey(res.Type, res.Patient))()
	for {
		r, err := s.conditionalUpdateOnce(ctx, req, c, body, res)
		var m *matched
		if !errors.As(err, &m) {
			return r, err
		}
		// Another request created a match since the search: again, from
		// the body as sent (the try set an id in res).
		if body, res, err = s.parse(req, c); err != nil {
			return nil, err
		}
	}
}

// conditionalUpdateOnce is one try of conditionalUpdate. A create (no
// match) is guarded like a conditional create, and fails with *matched
// if a match appeared meanwhile.
func (s *Service) conditionalUpdateOnce(ctx context.Context, req *Request, c *Call, body []byte, res *fhir.Resource) (*Result, error) {
	matches, err := s.matchInRecord(ctx, res.Type, res.Patient, c.RawQuery, "the query")
	if err != nil {
		return nil, err
	}
	u := *c
	switch len(matches) {
	case 0:
		u.Kind = Create
		if res.ID != "" {
			u.Kind, u.ID = Update, res.ID
		}
	case 1:
		if res.ID != "" && res.ID != matches[0].ID {
			return nil, invalid(c.Type+".id", "the body's id %q is not the id of the resource the query matched (%s)", res.ID, matches[0].ID)
		}
		u.Kind, u.ID = Update, matches[0].ID
		res.SetID(u.ID)
	default:
		return nil, fail(http.StatusPreconditionFailed, "multiple-matches", "the conditional update matched %d resources; it must match at most one", len(matches))
	}
	req.Facts.ID = u.ID
	p, err := s.prepare(ctx, req, &u, prepareOptions{body: body, res: res})
	if err != nil {
		return nil, err
	}
	if err := s.decideWrite(ctx, req, p); err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		s.guardCreate(p, c.RawQuery, "the query", nil)
	}
	// (A clinical resource has no unique identifiers to lock.)
	return s.commitOne(ctx, req, p)
}

// matchInRecord runs a search query inside one patient's record (a
// resource never matches one of another patient). what names the query
// in errors.
func (s *Service) matchInRecord(ctx context.Context, typ, patient, criteria, what string) ([]store.Version, error) {
	params, err := url.ParseQuery(criteria)
	if err != nil || len(params) == 0 {
		return nil, invalid("", "%s must be a search query such as identifier=system|value, not %q", what, criteria)
	}
	q, _, err := s.reg.ParseQuery(typ, params, false)
	if err != nil {
		return nil, err
	}
	all, err := s.store.Compartment(ctx, patient, typ)
	if err != nil {
		return nil, err
	}
	var out []store.Version
	for _, v := range all {
		idx, err := s.indexFor(q, v)
		if err != nil {
			return nil, err
		}
		if q.Match(idx) {
			out = append(out, v)
		}
	}
	return out, nil
}

// outbox is the notification outbox of the changes of critical
// information among ps that someone watches: committed with them, so a
// crash before the notifications are queued loses none of them.
func (s *Service) outbox(ctx context.Context, ps []*pending) []store.QueueOp {
	if s.cfg.Notify == nil {
		return nil
	}
	var events []notify.Event
	for _, p := range ps {
		w := p.write
		if !criticalChange(p) {
			continue
		}
		patient := w.Patient
		if patient == "" && p.prev != nil {
			patient = p.prev.Patient
		}
		if patient != "" {
			events = append(events, notify.Event{ResourceType: w.Type, ID: w.ID, Patient: patient})
		}
	}
	if len(events) == 0 {
		return nil
	}
	if watched, err := s.cfg.Notify.Dispatcher.Watched(ctx, events); err == nil {
		events = watched
	} else {
		// Unsure who watches: keep every event; the dispatcher sorts it out.
		s.log.Warn("subscriptions not read before a change; every event goes to the outbox", "error", err)
	}
	if len(events) == 0 {
		return nil
	}
	return notify.OutboxOps(events)
}

// published queues the notifications of a committed change from its
// outbox. The change is durable; what cannot be queued now stays in the
// outbox, and the dispatcher queues it at its next start.
func (s *Service) published(ctx context.Context, ops []store.QueueOp) {
	if s.cfg.Notify == nil || len(ops) == 0 {
		return
	}
	if err := s.cfg.Notify.Dispatcher.Published(context.WithoutCancel(ctx), ops); err != nil {
		s.log.Error("change notification not queued; it stays in the outbox until the next start", "error", err)
	}
}
