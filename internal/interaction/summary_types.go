package interaction

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"

	"github.com/kjernejournal/kjernejournal/fhir"
	"github.com/kjernejournal/kjernejournal/internal/access"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// _summary and _elements on the two searches that do not go through the
// registry (the usage log and the federated searches of documents and lab
// results): the same
// Shape as every other search, so that a client's summary request gets
// the same answer whatever the type.

// shapeDocuments shapes the matches of a federated search; _summary=count
// keeps only the outcome (the total is given anyway), as for a stored type.
func shapeDocuments(sh Shape, entries []fhir.BundleEntry) ([]fhir.BundleEntry, error) {
	out := entries[:0]
	for _, e := range entries {
		if e.SearchMode == "match" {
			if sh.Summary == "count" {
				continue
			}
			b, err := sh.apply(e.Resource)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.FullURL, err)
			}
			e.Resource = b
		}
		out = append(out, e)
	}
	return out, nil
}

// auditCountPage is how many usage-log records one store call reads while
// counting; the log of one patient is counted a page at a time so that
// memory stays bounded however long it is.
const auditCountPage = 1000

// usageLogCount answers _summary=count on AuditEvent: the number of
// records the search matches, every page of them, and no entries. The
// records are read (not rendered) only to count them, and each patient
// whose log was counted is noted as read, as for the entries.
func (s *Service) usageLogCount(ctx context.Context, req *Request, c *Call, q store.AuditQuery, d access.Decision) (*Result, error) {
	q.Count = auditCountPage // _count sizes pages of entries; a count has none
	total := 0
	for {
		recs, err := s.store.SearchAudit(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if q.Patient == "" && r.Patient != "" {
				req.Facts.note(r.Patient, "AuditEvent", d)
			}
		}
		total += len(recs)
		if len(recs) < auditCountPage {
			break
		}
		q.Before = recs[len(recs)-1].Seq
	}
	links := []fhir.Link{{Relation: "self", URL: selfURL(req, c)}}
	return &Result{Status: http.StatusOK, Body: fhir.Bundle(fhir.BundleOptions{Type: "searchset", Total: &total, Links: links, ID: rand.Text()}, nil)}, nil
}
