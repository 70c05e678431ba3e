package interaction

import (
	"github.com/kjernejournal/kjernejournal/fhir/search"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// indexFor is the index q is to be matched against: the stored one
// (indexOf), unless q uses a parameter added after indexes were first
// stored (search.Query.Reextract), which an index stored by an earlier
// build lacks; then the index is extracted again from the stored body,
// so that searches on the new parameters are right for old data too.
func (s *Service) indexFor(q *search.Query, v store.Version) (search.Index, error) {
	if q.Reextract() {
		idx, err := s.reg.Extract(v.Type, v.Body)
		if err == nil && !v.LastUpdated.IsZero() {
			idx.SetLastUpdated(v.LastUpdated)
		}
		return idx, err
	}
	return s.indexOf(v)
}
