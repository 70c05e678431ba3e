package telemetry_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
	"github.com/kjernejournal/kjernejournal/internal/telemetry"
)

func TestMeasuredStoreKeepsOnceAndAllocatesNothingMore(t *testing.T) {
	raw, err := embedded.Open(context.Background(), embedded.Options{Path: filepath.Join(t.TempDir(), "kj.db")})
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	st := telemetry.Store(raw, "embedded")
	_, ok := st.(store.Once)
	assert.True(t, ok, "DPoP replay protection still finds ClaimOnce")

	ctx := context.Background()
	_, err = st.Commit(ctx, store.Batch{Writes: []store.Write{{Type: "Flag", ID: "f1", Render: func(int64, time.Time) ([]byte, error) {
		return []byte(`{"resourceType":"Flag","id":"f1"}`), nil
	}}}})
	require.NoError(t, err)
	_, err = st.Read(ctx, "Flag", "missing")
	require.ErrorIs(t, err, store.ErrNotFound)

	before := counter(t, telemetry.StoreErrors.WithLabelValues("embedded", "read"))
	_, _ = st.Read(ctx, "Flag", "missing")
	assert.Equal(t, before, counter(t, telemetry.StoreErrors.WithLabelValues("embedded", "read")), "not found is no store error")

	rawAllocs := testing.AllocsPerRun(200, func() { raw.Read(ctx, "Flag", "f1") })
	measuredAllocs := testing.AllocsPerRun(200, func() { st.Read(ctx, "Flag", "f1") })
	assert.Equal(t, rawAllocs, measuredAllocs, "measuring a read allocates nothing")

	reg := prometheus.NewRegistry()
	require.NoError(t, telemetry.Register(reg))
	require.NoError(t, telemetry.Register(reg), "registering twice is fine (several servers in one process)")
	families, err := reg.Gather()
	require.NoError(t, err)
	n := 0
	for _, f := range families {
		if f.GetName() == "kj_store_operation_seconds" {
			n = len(f.GetMetric())
		}
	}
	assert.GreaterOrEqual(t, n, 10, "a series per operation from the start")
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
