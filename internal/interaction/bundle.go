package interaction

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// maxBundleEntries bounds the work one request can ask for.
const maxBundleEntries = 1000

// bundle serves POST / with a batch or transaction Bundle. Every entry is
// routed by ParseCall like a request of its own and runs through the same
// interactions: a batch entry exactly as the same REST request would, a
// transaction's write entries through the same write pipeline, committed
// together.
func (s *Service) bundle(ctx context.Context, req *Request, c *Call) (*Result, error) {
	if c.Entry {
		return nil, invalid("", "a Bundle entry cannot hold another batch or transaction")
	}
	if len(c.Body) == 0 {
		return nil, invalid("", "the request has no body; a batch or transaction Bundle is expected")
	}
	typ, entries, err := fhir.ParseRequestBundle(c.Body)
	if err != nil {
		return nil, err
	}
	if len(entries) > maxBundleEntries {
		return nil, fail(http.StatusRequestEntityTooLarge, "too-costly", "a Bundle may hold at most %d entries; this one holds %d", maxBundleEntries, len(entries))
	}
	switch typ {
	case "transaction":
		req.Facts.Bundle = typ
		return s.transaction(ctx, req, c, entries)
	case "batch":
		req.Facts.Bundle = typ
		return s.batch(ctx, req, c, entries)
	}
	e := invalid("Bundle.type", "POST to the base accepts Bundles of type batch or transaction, not %q", typ)
	return nil, e
}

// entryCall routes one entry's request: request.url through ParseCall,
// the entry's resource and preconditions, and the Bundle request's
// Prefer.
func (s *Service) entryCall(req *Request, outer *Call, e fhir.RequestEntry) (*Call, error) {
	u := e.URL
	if base := req.Base + "/"; req.Base != "" && strings.HasPrefix(u, base) {
		u = strings.TrimPrefix(u, base)
	}
	c, err := s.EntryCall(e.Method, u)
	if err != nil {
		return nil, err
	}
	c.Body, c.IfNoneExist, c.Lenient, c.Return = e.Resource, e.IfNoneExist, outer.Lenient, outer.Return
	if e.IfMatch != "" {
		v, err := ParseETag(e.IfMatch)
		if err != nil {
			return nil, invalid("", "request.ifMatch: %v", err)
		}
		c.IfMatch = v
	}
	return c, nil
}

// batch runs each entry on its own, as if it were a request of its own.
func (s *Service) batch(ctx context.Context, req *Request, outer *Call, entries []fhir.RequestEntry) (*Result, error) {
	results := make([]fhir.BundleEntry, len(entries))
	for i, e := range entries {
		c, err := s.entryCall(req, outer, e)
		if err != nil {
			results[i] = entryRefused(req.entry(i, &Call{Method: e.Method, Path: e.URL}), i, err)
			continue
		}
		results[i] = s.runEntry(ctx, req, req.entry(i, c), i, c)
	}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(fhir.BundleOptions{Type: "batch-response", ID: rand.Text()}, results)}, nil
}

// runEntry runs entry i (its own Request er) as the same request made on
// its own would run, and answers it in the response Bundle.
func (s *Service) runEntry(ctx context.Context, req, er *Request, i int, c *Call) fhir.BundleEntry {
	r, err := s.Do(ctx, er, c)
	if err != nil {
		return entryRefused(er, i, err)
	}
	er.Facts.Status = r.Status
	return responseEntry(req, r)
}

// entryRefused answers entry i with its error, and records the status
// for the usage log.
func entryRefused(er *Request, i int, err error) fhir.BundleEntry {
	e := entryError(i, err)
	er.Facts.Status = e.Status
	return errorEntry(e)
}

// planned is one transaction entry.
type planned struct {
	index int
	call  *Call
	req   *Request
	p     *pending
	// existing is the match of a conditional create that needs no write.
	existing *store.Version
}

// transaction applies all write entries in one store commit, or none, and
// then answers its read entries.
func (s *Service) transaction(ctx context.Context, req *Request, outer *Call, entries []fhir.RequestEntry) (*Result, error) {
	// Processing order defined by FHIR: DELETE, POST, PUT, then GET.
	order := map[string]int{http.MethodDelete: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodGet: 3}
	plan := make([]*planned, 0, len(entries))
	var issues []fhir.Issue
	var firstStatus int
	bad := func(i int, err error) {
		e := entryError(i, err)
		if firstStatus == 0 {
			firstStatus = e.Status
		}
		issues = append(issues, e.Issues...)
	}
	refs := map[string]string{}
	created := map[string]bool{}
	targets := map[string]int{}
	for i, e := range entries {
		c, err := s.entryCall(req, outer, e)
		if err != nil {
			req.entry(i, &Call{Method: e.Method, Path: e.URL}).Facts.Status = http.StatusBadRequest
			bad(i, err)
			continue
		}
		if _, ok := order[c.Method]; !ok || c.Method != http.MethodGet && !(c.Kind == Create || c.Kind == Update || c.Kind == Delete) {
			req.entry(i, c).Facts.Status = http.StatusBadRequest
			bad(i, invalid("", "%s %s cannot be part of a transaction", c.Method, e.URL))
			continue
		}
		pl := &planned{index: i, call: c, req: req.entry(i, c)}
		if c.Kind == Create {
			pl.call.ID = rand.Text()
			if e.FullURL != "" {
				refs[e.FullURL] = c.Type + "/" + pl.call.ID
			}
		}
		if c.Method != http.MethodGet {
			if c.Kind == Update && c.ID == "" {
				bad(i, invalid("", "request.url %q: a conditional update cannot be part of a transaction here; name the resource by id", e.URL))
				continue
			}
			key := c.Type + "/" + pl.call.ID
			if j, dup := targets[key]; dup {
				bad(i, invalid("", "%s is also changed by entry %d; a transaction changes a resource once", key, j))
				continue
			}
			targets[key] = i
			if c.Type == "Patient" && c.Kind != Delete {
				created[pl.call.ID] = true
			}
		}
		plan = append(plan, pl)
	}
	// Step 1 of the write pipeline for every write entry, before anything
	// is decided or written.
	for _, pl := range plan {
		var err error
		switch pl.call.Kind {
		case Create:
			pl.p, err = s.prepare(ctx, pl.req, pl.call, prepareOptions{id: pl.call.ID, refs: refs, created: created})
		case Update:
			pl.p, err = s.prepare(ctx, pl.req, pl.call, prepareOptions{refs: refs, created: created})
		}
		if err != nil {
			pl.req.Facts.Status = errorOf(err).Status
			bad(pl.index, err)
		}
	}
	if len(issues) > 0 {
		return nil, &Error{Status: firstStatus, Issues: issues}
	}
	if err := s.holdersInTransaction(plan); err != nil {
		return nil, err
	}
	// Step 2: every write passes the decision point before anything is
	// written; the first refusal refuses the transaction.
	for _, pl := range plan {
		var err error
		switch pl.call.Kind {
		case Create, Update:
			err = s.decideWrite(ctx, pl.req, pl.p)
		case Delete:
			pl.p, err = s.prepareDelete(ctx, pl.req, pl.call)
		}
		if err != nil {
			e := entryError(pl.index, err)
			pl.req.Facts.Status = e.Status
			return nil, e
		}
	}
	// Conditional creates and unique identifiers are decided by the store
	// in the commit; the locks spare this process's requests its retries.
	var keys []string
	for _, pl := range plan {
		if pl.p == nil {
			continue
		}
		keys = append(keys, uniqueKeys(pl.p.write)...)
		if pl.call.Kind == Create && pl.call.IfNoneExist != "" {
			key, err := condCreateKey(pl.p)
			if err != nil {
				return nil, entryError(pl.index, err)
			}
			keys = append(keys, key)
		}
	}
	defer s.locks.Lock(keys...)()
	var writes []*pending
	var writeOf []*planned
	for _, method := range []string{http.MethodDelete, http.MethodPost, http.MethodPut} {
		for _, pl := range plan {
			if pl.call.Method != method || pl.p == nil {
				continue
			}
			if pl.call.Kind == Create && pl.call.IfNoneExist != "" {
				index := pl.index
				s.guardCreate(pl.p, pl.call.IfNoneExist, "request.ifNoneExist", func(err error) error { return entryError(index, err) })
			}
			writes = append(writes, pl.p)
			writeOf = append(writeOf, pl)
		}
	}
	// Step 3: one commit with every write, its outbox and the usage-log
	// records of the transaction and of each write entry.
	results := make([]fhir.BundleEntry, len(entries))
	for len(writes) > 0 {
		logs := []*Facts{req.Facts}
		for _, pl := range writeOf {
			logs = append(logs, pl.req.Facts)
		}
		req.Facts.Status = http.StatusOK
		vs, err := s.commit(ctx, writes, logs...)
		var m *matched
		if errors.As(err, &m) {
			// A conditional create found its match in the commit: that
			// entry answers the match, the rest commit without it.
			k := slices.Index(writes, m.p)
			pl := writeOf[k]
			pl.existing = &m.v
			pl.req.Facts.ID, pl.req.Facts.Status = m.v.ID, http.StatusOK
			writes, writeOf = slices.Delete(writes, k, k+1), slices.Delete(writeOf, k, k+1)
			continue
		}
		if err != nil {
			return nil, s.transactionFailed(err, writeOf)
		}
		for k, v := range vs {
			pl := writeOf[k]
			if v.Deleted {
				results[pl.index] = fhir.BundleEntry{ResponseStatus: "204 No Content", ResponseETag: ETag(v.VersionID), ResponseLastModified: v.LastUpdated}
				continue
			}
			r, err := s.written(pl.req, pl.call, v, pl.p.status)
			if err != nil {
				return nil, err
			}
			results[pl.index] = responseEntry(req, r)
		}
		break
	}
	for _, pl := range plan {
		switch {
		case pl.existing != nil:
			r, err := s.written(pl.req, pl.call, *pl.existing, http.StatusOK)
			if err != nil {
				return nil, err
			}
			results[pl.index] = responseEntry(req, r)
		case pl.call.Method == http.MethodGet:
			results[pl.index] = s.runEntry(ctx, req, pl.req, pl.index, pl.call)
		}
	}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(fhir.BundleOptions{Type: "transaction-response", ID: rand.Text()}, results)}, nil
}

// transactionFailed names the entry whose write the store refused.
func (s *Service) transactionFailed(err error, writeOf []*planned) error {
	var conflict *store.ConflictError
	var nf *store.NotFoundError
	switch {
	case errors.As(err, &conflict) && conflict.Index < len(writeOf):
		e := errorOf(err)
		i := writeOf[conflict.Index].index
		e.Issues[0].Diagnostics = fmt.Sprintf("entry %d: %s; nothing in the transaction was applied", i, e.Issues[0].Diagnostics)
		e.Issues[0].Expression = []string{fmt.Sprintf("Bundle.entry[%d]", i)}
		return e
	case errors.As(err, &nf) && nf.Index < len(writeOf):
		i := writeOf[nf.Index].index
		e := notFound("entry %d: %s/%s is not known; nothing in the transaction was applied", i, nf.Type, nf.ID)
		e.Issues[0].Expression = []string{fmt.Sprintf("Bundle.entry[%d]", i)}
		return e
	}
	return err
}

// entryError is the answer for entry i, its issues naming the entry.
func entryError(i int, err error) *Error {
	e := errorOf(err)
	out := *e
	out.Issues = make([]fhir.Issue, len(e.Issues))
	prefix := fmt.Sprintf("Bundle.entry[%d].resource", i)
	for k, is := range e.Issues {
		is.Expression = append([]string(nil), is.Expression...)
		for j, x := range is.Expression {
			if _, rest, ok := strings.Cut(x, "."); ok && x[0] >= 'A' && x[0] <= 'Z' {
				is.Expression[j] = prefix + "." + rest
			} else {
				is.Expression[j] = prefix
			}
		}
		if len(is.Expression) == 0 {
			is.Expression = []string{fmt.Sprintf("Bundle.entry[%d]", i)}
		}
		is.Diagnostics = fmt.Sprintf("entry %d: %s", i, is.Diagnostics)
		out.Issues[k] = is
	}
	return &out
}

// responseEntry is a Bundle response entry for a result.
func responseEntry(req *Request, r *Result) fhir.BundleEntry {
	e := fhir.BundleEntry{ResponseStatus: statusLine(r.Status), ResponseLocation: r.Location}
	if v := r.Version; v != nil {
		e.ResponseETag, e.ResponseLastModified = ETag(v.VersionID), v.LastUpdated
		if !v.Deleted && r.Location != "" {
			e.FullURL = req.Base + "/" + v.Type + "/" + v.ID
		}
	}
	if len(r.Body) > 0 {
		e.Resource = r.Body
	}
	return e
}

// errorEntry is a Bundle response entry for a refused or failed entry.
func errorEntry(e *Error) fhir.BundleEntry {
	r := fhir.BundleEntry{ResponseStatus: statusLine(e.Status), ResponseOutcome: e.Outcome()}
	if e.Version != nil {
		r.ResponseETag = ETag(e.Version.VersionID)
	}
	return r
}

func statusLine(code int) string { return strconv.Itoa(code) + " " + http.StatusText(code) }

// holdersInTransaction gives every entry that writes into the record of a
// Patient the same transaction writes that Patient as it will be: the
// rules judge the entry by the person the transaction records (a secret
// address reserves the record, so no clinical data may come with it),
// exactly as they would once the Patient is stored.
func (s *Service) holdersInTransaction(plan []*planned) error {
	var patients map[string]store.Version
	for _, pl := range plan {
		if pl.p == nil || pl.p.res.Type != "Patient" {
			continue
		}
		body, err := pl.p.write.Render(0, s.cfg.Now())
		if err != nil {
			return err
		}
		if patients == nil {
			patients = map[string]store.Version{}
		}
		// VersionID 0: not stored yet, so never cached as a version.
		patients[pl.p.res.ID] = store.Version{Type: "Patient", ID: pl.p.res.ID, Patient: pl.p.res.ID, Body: body}
	}
	for _, pl := range plan {
		if pl.p == nil || pl.p.res.Type == "Patient" {
			continue
		}
		if v, ok := patients[pl.p.res.Patient]; ok {
			pl.p.holder = v
		}
	}
	return nil
}
