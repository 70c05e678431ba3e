package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/auth"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// maxBundleEntries bounds the work one request can ask for.
const maxBundleEntries = 1000

// batchOrTransaction serves POST / with a batch or transaction Bundle.
func (s *Server) batchOrTransaction(c *gin.Context) {
	c.Set(keyInteraction, "transaction")
	c.Set(keyType, "Bundle")
	out, ok := s.negotiate(c)
	if !ok {
		return
	}
	body, err := s.readBody(c)
	if err != nil {
		s.failErr(c, err)
		return
	}
	typ, entries, err := fhir.ParseRequestBundle(body)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if len(entries) > maxBundleEntries {
		s.fail(c, http.StatusRequestEntityTooLarge, fhir.Issue{Severity: "error", Code: "too-costly",
			Diagnostics: fmt.Sprintf("a Bundle may hold at most %d entries; this one holds %d", maxBundleEntries, len(entries))})
		return
	}
	switch typ {
	case "transaction":
		s.transaction(c, out, entries)
	case "batch":
		c.Set(keyInteraction, "batch")
		s.batch(c, out, entries)
	default:
		s.fail(c, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid",
			Diagnostics: "POST to the base accepts Bundles of type batch or transaction, not " + strconv.Quote(typ),
			Expression:  []string{"Bundle.type"}})
	}
}

// entryURL is a parsed entry.request.url.
type entryURL struct {
	typ, id, query string
	version        int64
}

func parseEntryURL(raw string) (entryURL, error) {
	var u entryURL
	path, query, _ := strings.Cut(raw, "?")
	u.query = query
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 0 || parts[0] == "" {
		return u, fmt.Errorf("request.url %q names no resource type", raw)
	}
	u.typ = parts[0]
	if len(parts) >= 2 {
		if !validID(parts[1]) {
			return u, fmt.Errorf("request.url %q holds an invalid id", raw)
		}
		u.id = parts[1]
	}
	if len(parts) == 4 && parts[2] == "_history" {
		v, err := strconv.ParseInt(parts[3], 10, 64)
		if err != nil || v < 1 {
			return u, fmt.Errorf("request.url %q holds an invalid version", raw)
		}
		u.version = v
	} else if len(parts) > 2 {
		// compartment or history: only valid for GET, which goes through the router.
		u.query = ""
	}
	return u, nil
}

// entryIssue prefixes a resource-level expression with the entry's path.
func entryIssues(i int, err error) []fhir.Issue {
	var verr *fhir.ValidationError
	var issues []fhir.Issue
	if errors.As(err, &verr) {
		issues = verr.Issues
	} else {
		issues = issuesOf(err)
	}
	out := make([]fhir.Issue, len(issues))
	prefix := fmt.Sprintf("Bundle.entry[%d].resource", i)
	for k, is := range issues {
		is.Expression = append([]string(nil), is.Expression...)
		for j, e := range is.Expression {
			if _, rest, ok := strings.Cut(e, "."); ok && e[0] >= 'A' && e[0] <= 'Z' {
				is.Expression[j] = prefix + "." + rest
			} else {
				is.Expression[j] = prefix
			}
		}
		if len(is.Expression) == 0 {
			is.Expression = []string{fmt.Sprintf("Bundle.entry[%d]", i)}
		}
		is.Diagnostics = fmt.Sprintf("entry %d: %s", i, is.Diagnostics)
		out[k] = is
	}
	return out
}

// transaction applies all write entries in one store commit, or none.
func (s *Server) transaction(c *gin.Context, out output, entries []fhir.RequestEntry) {
	type planned struct {
		idx    int
		url    entryURL
		method string
		pw     *pendingWrite
		del    *store.Write
	}
	// Processing order defined by FHIR: DELETE, POST, PUT, then GET.
	order := map[string]int{http.MethodDelete: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodGet: 3}
	var plan []planned
	idMap := map[string]string{}
	seen := map[string]int{}
	var issues []fhir.Issue
	bad := func(i int, err error) { issues = append(issues, entryIssues(i, err)...) }
	for i, e := range entries {
		if _, ok := order[e.Method]; !ok {
			bad(i, invalid("", "request.method %s is not supported in a transaction", e.Method))
			continue
		}
		u, err := parseEntryURL(e.URL)
		if err != nil {
			bad(i, invalid("", "%v", err))
			continue
		}
		p := planned{idx: i, url: u, method: e.Method}
		if e.Method != http.MethodGet {
			if !slices.Contains(fhir.ServedTypes, u.typ) {
				bad(i, invalid("", "resource type %q is not served here", u.typ))
				continue
			}
			if e.Method == http.MethodPost && u.id != "" || e.Method != http.MethodPost && (u.id == "" || u.version != 0) {
				bad(i, invalid("", "request.url %q does not fit method %s", e.URL, e.Method))
				continue
			}
			if e.Method == http.MethodPost {
				p.url.id = rand.Text()
				if e.FullURL != "" {
					idMap[e.FullURL] = u.typ + "/" + p.url.id
				}
			}
			key := u.typ + "/" + p.url.id
			if j, dup := seen[key]; dup {
				bad(i, invalid("", "%s is also changed by entry %d; a transaction changes a resource once", key, j))
				continue
			}
			seen[key] = i
		}
		plan = append(plan, p)
	}
	// Parse every resource before anything is written.
	created := map[string]bool{}
	parsed := map[int]*fhir.Resource{}
	for _, p := range plan {
		e := entries[p.idx]
		if p.method != http.MethodPost && p.method != http.MethodPut {
			continue
		}
		if e.Resource == nil {
			bad(p.idx, invalid("", "a %s entry needs a resource", p.method))
			continue
		}
		res, err := s.codec.Parse(e.Resource)
		if err == nil && res.Type == p.url.typ {
			err = checkProfile(res.Type, e.Resource)
		}
		if err != nil {
			var pe *profileError
			if errors.As(err, &pe) {
				err = &badRequest{issues: pe.issues}
			}
			bad(p.idx, err)
			continue
		}
		if res.Type != p.url.typ {
			bad(p.idx, invalid("", "the resource is a %s, but request.url is for %s", res.Type, p.url.typ))
			continue
		}
		if p.method == http.MethodPut && res.ID != p.url.id {
			bad(p.idx, invalid(res.Type+".id", "the resource's id %q differs from request.url's id %q", res.ID, p.url.id))
			continue
		}
		parsed[p.idx] = res
	}
	for idx, res := range parsed {
		for _, p := range plan {
			if p.idx == idx {
				res.SetID(p.url.id)
			}
		}
		res.RewriteReferences(idMap)
		if res.Type == "Patient" {
			created[res.ID] = true
		}
	}
	if len(issues) == 0 {
		for i := range plan {
			p := &plan[i]
			e := entries[p.idx]
			var ifMatch int64
			if e.IfMatch != "" {
				v, err := parseETag(e.IfMatch)
				if err != nil {
					bad(p.idx, invalid("", "request.ifMatch: %v", err))
					continue
				}
				ifMatch = v
			}
			switch p.method {
			case http.MethodDelete:
				p.del = &store.Write{Type: p.url.typ, ID: p.url.id, Op: store.OpDelete, IfMatch: ifMatch}
			case http.MethodPost, http.MethodPut:
				res := parsed[p.idx]
				if err := checkRules(res, e.Resource); err != nil {
					bad(p.idx, err)
					continue
				}
				if err := s.checkPatientExists(c, res, created); err != nil {
					bad(p.idx, err)
					continue
				}
				pw, err := s.pendingFor(res, ifMatch, p.method == http.MethodPost)
				if err != nil {
					bad(p.idx, err)
					continue
				}
				p.pw = pw
			}
		}
	}
	if len(issues) > 0 {
		s.fail(c, http.StatusBadRequest, issues...)
		return
	}
	// Every write passes the enforcement point before anything is written.
	for _, p := range plan {
		switch {
		case p.del != nil:
			if !s.allowWrite(c, auth.Delete, p.url.typ, p.url.id, "") {
				return
			}
		case p.method == http.MethodPost:
			if _, ok := s.allow(c, auth.Create, p.url.typ, p.pw.res.Patient); !ok {
				return
			}
		case p.method == http.MethodPut:
			if !s.allowWrite(c, auth.Update, p.url.typ, p.url.id, p.pw.res.Patient) {
				return
			}
		}
		if p.url.typ == "Consent" && (p.del != nil || !s.checkPrivacyWrite(c, p.pw.res, entries[p.idx].Resource)) {
			if p.del != nil {
				s.fail(c, http.StatusMethodNotAllowed, fhir.Issue{Severity: "error", Code: "not-supported",
					Diagnostics: "privacy settings are not deleted; lift one by updating it with status inactive"})
			}
			return
		}
	}
	// One commit: all or nothing.
	var writes []store.Write
	var writeIdx []int
	for _, method := range []string{http.MethodDelete, http.MethodPost, http.MethodPut} {
		for _, p := range plan {
			if p.method != method {
				continue
			}
			if p.del != nil {
				writes = append(writes, *p.del)
			} else {
				writes = append(writes, p.pw.write)
			}
			writeIdx = append(writeIdx, p.idx)
		}
	}
	results := make([]fhir.BundleEntry, len(entries))
	if len(writes) > 0 {
		writes = s.withOutbox(c, writes)
		vs, err := s.store.Commit(c, writes)
		if err != nil {
			s.transactionFailed(c, err, writeIdx)
			return
		}
		s.published(c, writes)
		vs = vs[:len(writeIdx)] // the outbox records come last
		base := s.baseURL(c)
		for k, v := range vs {
			i := writeIdx[k]
			r := fhir.BundleEntry{ResponseETag: etag(v.VersionID), ResponseLastModified: v.LastUpdated}
			switch {
			case v.Deleted:
				r.ResponseStatus = "204 No Content"
			default:
				r.FullURL = base + "/" + v.Type + "/" + v.ID
				r.ResponseLocation = v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.VersionID, 10)
				r.ResponseStatus = "200 OK"
				if v.VersionID == 1 {
					r.ResponseStatus = "201 Created"
				}
				if b, err := out.shape(v.Body); err == nil {
					r.Resource = b
				}
			}
			results[i] = r
		}
	}
	for _, p := range plan {
		if p.method == http.MethodGet {
			results[p.idx] = s.subRequest(c, entries[p.idx])
		}
	}
	s.write(c, http.StatusOK, out, fhir.Bundle(fhir.BundleOptions{Type: "transaction-response", ID: rand.Text()}, results))
}

func (s *Server) transactionFailed(c *gin.Context, err error, writeIdx []int) {
	var conflict *store.ConflictError
	var nf *store.NotFoundError
	switch {
	case errors.As(err, &conflict) && conflict.Index < len(writeIdx):
		status := http.StatusConflict
		if conflict.Reason == store.ConflictVersion {
			status = http.StatusPreconditionFailed
		}
		i := writeIdx[conflict.Index]
		s.fail(c, status, fhir.Issue{Severity: "error", Code: "conflict",
			Diagnostics: fmt.Sprintf("entry %d: %s; nothing in the transaction was applied", i, conflictText(conflict)),
			Expression:  []string{fmt.Sprintf("Bundle.entry[%d]", i)}})
	case errors.As(err, &nf) && nf.Index < len(writeIdx):
		i := writeIdx[nf.Index]
		s.fail(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found",
			Diagnostics: fmt.Sprintf("entry %d: %s/%s is not known; nothing in the transaction was applied", i, nf.Type, nf.ID),
			Expression:  []string{fmt.Sprintf("Bundle.entry[%d]", i)}})
	default:
		s.failErr(c, err)
	}
}

// batch processes each entry on its own, as if it were a request of its
// own: it goes through the same router, so every rule applies to it.
func (s *Server) batch(c *gin.Context, out output, entries []fhir.RequestEntry) {
	results := make([]fhir.BundleEntry, len(entries))
	for i, e := range entries {
		switch e.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete:
			results[i] = s.subRequest(c, e)
		default:
			results[i] = fhir.BundleEntry{ResponseStatus: "405 Method Not Allowed", ResponseOutcome: fhir.Outcome(fhir.Issue{
				Severity: "error", Code: "not-supported", Diagnostics: fmt.Sprintf("entry %d: method %s is not supported", i, e.Method)})}
		}
	}
	s.write(c, http.StatusOK, out, fhir.Bundle(fhir.BundleOptions{Type: "batch-response", ID: rand.Text()}, results))
}

// subRequest runs one Bundle entry through the router and turns the
// answer into a response entry.
func (s *Server) subRequest(c *gin.Context, e fhir.RequestEntry) fhir.BundleEntry {
	target := "/" + strings.TrimPrefix(e.URL, "/")
	var body *bytes.Reader
	if e.Resource != nil {
		body = bytes.NewReader(e.Resource)
	} else {
		body = bytes.NewReader(nil)
	}
	ctx := context.WithoutCancel(c.Request.Context())
	if p := principal(c); p != nil {
		ctx = context.WithValue(ctx, principalKey{}, p)
	}
	req := httptest.NewRequestWithContext(ctx, e.Method, target, body)
	req.Host = c.Request.Host
	req.TLS = c.Request.TLS
	req.Header.Set("Content-Type", ctFHIRJSON)
	req.Header.Set("Accept", ctFHIRJSON)
	for _, h := range []string{"Authorization", "DPoP", basisHeader, "Prefer", "X-Request-Id"} {
		if v := c.GetHeader(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if e.IfMatch != "" {
		req.Header.Set("If-Match", e.IfMatch)
	}
	if e.IfNoneExist != "" {
		req.Header.Set("If-None-Exist", e.IfNoneExist)
	}
	rec := httptest.NewRecorder()
	s.engine.ServeHTTP(rec, req)
	res := rec.Result()
	r := fhir.BundleEntry{
		ResponseStatus:   strconv.Itoa(res.StatusCode) + " " + http.StatusText(res.StatusCode),
		ResponseLocation: strings.TrimPrefix(res.Header.Get("Location"), s.baseURL(c)+"/"),
		ResponseETag:     res.Header.Get("ETag"),
	}
	if lm := res.Header.Get("Last-Modified"); lm != "" {
		if t, err := time.Parse(http.TimeFormat, lm); err == nil {
			r.ResponseLastModified = t
		}
	}
	b := rec.Body.Bytes()
	if len(b) > 0 {
		if res.StatusCode >= 400 {
			r.ResponseOutcome = b
		} else {
			r.Resource = b
		}
	}
	return r
}
