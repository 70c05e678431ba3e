package devclock

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClockOnlyMovesForward(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := New(time.Hour)
	require.NoError(t, err)
	c.real = func() time.Time { return base }
	assert.Equal(t, base.Add(time.Hour), c.Now())
	require.NoError(t, c.Advance(7*24*time.Hour))
	assert.Equal(t, base.Add(time.Hour+7*24*time.Hour), c.Now())
	assert.Error(t, c.Advance(-time.Hour))
	assert.Error(t, c.Advance(0))
	assert.Error(t, c.Advance(MaxStep+time.Second))
	_, err = New(-time.Second)
	assert.Error(t, err)
}

func TestHandler(t *testing.T) {
	c, err := New(0)
	require.NoError(t, err)
	runs := 0
	h := Handler(c, func(context.Context) ([]string, error) { runs++; return []string{"p1"}, nil })
	do := func(method, body, remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, Path, strings.NewReader(body))
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := do("GET", "", "127.0.0.1:5000")
	require.Equal(t, http.StatusOK, w.Code)
	var st State
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &st))
	assert.EqualValues(t, 0, st.OffsetSeconds)

	w = do("POST", `{"advance":"168h"}`, "[::1]:5000")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &st))
	assert.EqualValues(t, 7*24*3600, st.OffsetSeconds)
	assert.Equal(t, []string{"p1"}, st.Purged)
	assert.Equal(t, 1, runs, "the purge job runs after a move")

	for _, bad := range []string{`{"advance":"-1h"}`, `{"advance":"soon"}`, `{"back":"1h"}`, `not json`} {
		w = do("POST", bad, "127.0.0.1:5000")
		assert.Equal(t, http.StatusBadRequest, w.Code, bad)
		assert.Contains(t, w.Body.String(), "OperationOutcome")
	}
	assert.Equal(t, http.StatusForbidden, do("GET", "", "192.0.2.7:5000").Code, "loopback peers only")
	assert.Equal(t, http.StatusMethodNotAllowed, do("DELETE", "", "127.0.0.1:5000").Code)
	assert.Equal(t, 7*24*time.Hour, c.Offset(), "refused moves changed nothing")
}
