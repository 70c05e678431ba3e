package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/embedded"
)

// smallDisk mounts a tmpfs of size bytes for the test: a real filesystem
// that fills up. Mounting needs root (as make test runs here and in CI).
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mounting a tmpfs needs root: %v", err)
		}
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	return dir
}

// fill writes a file into dir until the disk is full, and returns a
// function that removes it again.
func fill(t *testing.T, dir string) func() {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	require.NoError(t, err)
	chunk := make([]byte, 4<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())
	return func() { require.NoError(t, os.Remove(path)) }
}

// TestUsageLogFailureFailsClosed: when the usage log cannot be written
// (the disk is full), a write is not committed and no data leaves: every
// request answered 201 or 200 has its record in the log and its data in
// the store, every request answered 503 has neither.
func TestUsageLogFailureFailsClosed(t *testing.T) {
	dir := smallDisk(t, 8<<20)
	path := filepath.Join(dir, "kj.db")
	st, err := embedded.Open(context.Background(), embedded.Options{Path: path, MinFreeBytes: -1})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() }) // before the disk is unmounted
	c := newServer(t, st, api.Config{Audit: true})
	patient := createPatient(t, c, 90)

	// Some room is freed inside the database file first (a large Flag,
	// deleted), so that the last writes find pages for the resource but
	// not always for a usage-log record, which the query makes large.
	big := c.do("POST", "/Flag", clinical("Flag", patient, "", strings.Repeat("x", 200<<10)))
	require.Equal(t, http.StatusCreated, big.status, "body: %s", big.body)
	require.Equal(t, http.StatusNoContent, c.do("DELETE", "/"+strings.Join(strings.Split(big.header.Get("Location"), "/")[3:5], "/"), nil).status)
	free := fill(t, dir)
	pad := "?note=" + strings.Repeat("p", 6<<10)

	created, refused := map[string]bool{}, map[string]bool{}
	reads, refusedReads := 0, 0
	for i := range 60 {
		note := fmt.Sprintf("disk-full-%02d", i)
		r := c.do("POST", "/Flag"+pad, clinical("Flag", patient, "", note))
		switch r.status {
		case http.StatusCreated:
			created[note] = true
		case http.StatusServiceUnavailable:
			refused[note] = true
			assert.Empty(t, r.header.Get("Location"), "no Location for a write that did not happen")
			assert.NotContains(t, string(r.body), note)
		default:
			t.Fatalf("POST /Flag on a full disk: status %d: %s", r.status, r.body)
		}
		// The query makes the read's usage-log record large too: records
		// are stored compact and compressed, so it is random text.
		noise := make([]byte, 12<<10)
		_, _ = rand.Read(noise)
		r = c.do("GET", "/Patient/"+patient+"?note="+hex.EncodeToString(noise), nil)
		switch r.status {
		case http.StatusOK:
			reads++
		case http.StatusServiceUnavailable:
			refusedReads++
			assert.NotContains(t, string(r.body), "Nordmann", "no patient data without its usage-log record")
			assert.Empty(t, r.header.Get("ETag"))
		default:
			t.Fatalf("GET on a full disk: status %d: %s", r.status, r.body)
		}
	}
	t.Logf("on the full disk: %d writes acknowledged, %d refused; %d reads answered, %d refused", len(created), len(refused), reads, refusedReads)
	require.NotEmpty(t, refused, "a full disk refused no write")
	require.NotZero(t, refusedReads, "a full disk refused no read")
	assert.Equal(t, http.StatusServiceUnavailable, c.do("GET", "/readyz", nil).status, "not ready while the disk is full")

	// Room again: the store is ready, and what it holds is exactly what
	// was acknowledged, each with its usage-log record.
	free()
	assert.Equal(t, http.StatusOK, c.do("GET", "/readyz", nil).status)
	flags, err := st.Compartment(context.Background(), patient, "Flag")
	require.NoError(t, err)
	stored := map[string]bool{}
	for _, v := range flags {
		for note := range created {
			if bytes.Contains(v.Body, []byte(note)) {
				stored[note] = true
			}
		}
		for note := range refused {
			assert.False(t, bytes.Contains(v.Body, []byte(note)), "%s was answered 503 but is stored", note)
		}
	}
	assert.Equal(t, created, stored, "every acknowledged write is stored")
	recs, err := st.SearchAudit(context.Background(), store.AuditQuery{Patient: patient, Outcome: "0"})
	require.NoError(t, err)
	creates, readRecs := 0, 0
	for _, rec := range recs {
		ev, err := audit.Render(rec.Body)
		require.NoError(t, err)
		switch {
		case bytes.Contains(ev, []byte(`"code":"create"`)):
			creates++
		case bytes.Contains(ev, []byte(`"code":"read"`)):
			readRecs++
		}
	}
	assert.Equal(t, len(created)+2, creates, "one record per acknowledged create (and the Patient's and the large Flag's)")
	assert.Equal(t, reads, readRecs, "one record per answered read")
}
