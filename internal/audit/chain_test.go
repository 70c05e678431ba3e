package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/access"
)

// chainOf builds n linked events as a store would keep them.
func chainOf(t *testing.T, n int) [][]byte {
	t.Helper()
	c := NewChain("")
	out := make([][]byte, n)
	for i := range n {
		r := with(doctor(), func(r *Record) {
			r.ID = fmt.Sprintf("ae-%d", i)
			r.Time = t0.Add(time.Duration(i) * time.Second)
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
		})
		if i == 2 {
			// An event without a root extension of its own exercises the
			// other way the link is embedded.
			out[i] = []byte(`{"resourceType":"AuditEvent","id":"ae-2"}`)
		} else {
			out[i] = Event(r)
		}
		var err error
		out[i], _, err = c.Next(out[i])
		require.NoError(t, err)
	}
	return out
}

func TestChainLinksAndStaysValidFHIR(t *testing.T) {
	evs := chainOf(t, 5)
	prev := ""
	for i, ev := range evs {
		if i != 2 {
			validate(t, ev)
		}
		m := decode(t, ev)
		link := get(m, "extension", 0)
		require.Equal(t, ExtChain, get(link, "url"), "the link is the first root extension")
		if i == 0 {
			assert.Len(t, get(link, "extension"), 1, "the first record has no previous")
		} else {
			assert.Equal(t, prev, get(link, "extension", 0, "valueString"))
		}
		h := get(link, "extension", -1+len(get(link, "extension").([]any)), "valueString").(string)
		prev = h
	}

	// The hash is SHA-256(previous raw hash || the event as handed to Next).
	plain := Event(with(doctor(), func(r *Record) { r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1" }))
	prevRaw, _ := hex.DecodeString(prev)
	want := sha256.Sum256(append(slices.Clone(prevRaw), plain...))
	linked, h, err := Link(prev, plain)
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(want[:]), h)
	l, err := readLink(linked)
	require.NoError(t, err)
	assert.Equal(t, plain, l.canonical, "cutting the link gives back the exact bytes")
}

func TestChainState(t *testing.T) {
	ev := Event(with(doctor(), func(r *Record) { r.Interaction = Batch }))
	c := NewChain("")
	_, h1, err := c.Next(ev)
	require.NoError(t, err)
	assert.Equal(t, h1, c.Head())

	saved := c.Head()
	_, h2, err := c.Next(ev)
	require.NoError(t, err)
	assert.NotEqual(t, h1, h2, "the same event at another place hashes differently")
	c.Reset(saved) // the batch failed to commit
	_, h2again, err := c.Next(ev)
	require.NoError(t, err)
	assert.Equal(t, h2, h2again)

	before := c.Head()
	for _, bad := range [][]byte{nil, []byte(`[]`), []byte(`{}`), []byte(`{"a":1`), []byte(`{"extension":{}}`), []byte(`{"extension":[]}`), []byte(`{"a":1} x`)} {
		_, _, err := c.Next(bad)
		assert.Error(t, err, "%q", bad)
	}
	linked, _, err := c.Next(ev)
	require.NoError(t, err)
	_, _, err = c.Next(linked)
	assert.ErrorContains(t, err, "already")
	_, _, err = Link("not-hex", ev)
	assert.Error(t, err)
	assert.NotEqual(t, before, c.Head())
}

func seq(evs [][]byte) func(yield func(int, []byte) bool) {
	return func(yield func(int, []byte) bool) {
		for i, ev := range evs {
			if !yield(i, ev) {
				return
			}
		}
	}
}

func TestVerify(t *testing.T) {
	good := chainOf(t, 6)
	brokenAt := func(t *testing.T, evs [][]byte) *BrokenLinkError {
		t.Helper()
		err := Verify(seq(evs))
		var be *BrokenLinkError
		require.True(t, errors.As(err, &be), "want a broken link, got %v", err)
		assert.NotEmpty(t, be.Error())
		return be
	}
	cases := []struct {
		name    string
		mutate  func([][]byte) [][]byte
		index   int
		id      string
		problem string
	}{
		{"intact", func(e [][]byte) [][]byte { return e }, -1, "", ""},
		{"one byte altered", func(e [][]byte) [][]byte {
			e[3] = bytes.Replace(e[3], []byte("Lege Testesen"), []byte("Lege Testesem"), 1)
			return e
		}, 3, "ae-3", "hash"},
		{"outcome flipped", func(e [][]byte) [][]byte {
			e[1] = bytes.Replace(e[1], []byte(`"outcome":"0"`), []byte(`"outcome":"4"`), 1)
			return e
		}, 1, "ae-1", "hash"},
		{"record removed", func(e [][]byte) [][]byte { return slices.Delete(e, 2, 3) }, 2, "ae-3", "previous"},
		{"records reordered", func(e [][]byte) [][]byte { e[3], e[4] = e[4], e[3]; return e }, 3, "ae-4", "previous"},
		{"first record removed", func(e [][]byte) [][]byte { return e[1:] }, 0, "ae-1", "previous"},
		{"hash rewritten to match altered content", func(e [][]byte) [][]byte {
			// Whoever alters a record and recomputes its hash breaks the
			// next record's link instead.
			l, _ := readLink(e[3])
			altered := bytes.Replace(l.canonical, []byte("Lege Testesen"), []byte("Lege Annensen"), 1)
			prev, _ := readLink(e[2])
			e[3], _, _ = Link(prev.hash, altered)
			return e
		}, 4, "ae-4", "previous"},
		{"whitespace slipped into the link", func(e [][]byte) [][]byte {
			e[1] = bytes.Replace(e[1], []byte(`"extension":[{"url":"`+ExtChain), []byte(`"extension":[ {"url":"`+ExtChain), 1)
			return e
		}, 1, "ae-1", "hash"},
		{"link removed", func(e [][]byte) [][]byte {
			l, _ := readLink(e[4])
			e[4] = l.canonical
			return e
		}, 4, "ae-4", "format"},
		{"not JSON any more", func(e [][]byte) [][]byte { e[5] = e[5][:len(e[5])-1]; return e }, 5, "", "format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := tc.mutate(slices.Clone(good))
			if tc.index < 0 {
				require.NoError(t, Verify(seq(evs)))
				return
			}
			be := brokenAt(t, evs)
			assert.Equal(t, tc.index, be.Index)
			assert.Equal(t, tc.id, be.ID)
			assert.Equal(t, tc.problem, be.Problem)
			if tc.problem != "format" {
				assert.NotEqual(t, be.Expected, be.Found)
				assert.Contains(t, be.Error(), be.Expected)
				assert.Contains(t, be.Error(), be.Found)
			}
		})
	}
}

func TestVerifyFromSegmentAndHead(t *testing.T) {
	evs := chainOf(t, 6)
	head, err := VerifyFrom("", seq(evs))
	require.NoError(t, err)
	l, _ := readLink(evs[5])
	assert.Equal(t, l.hash, head, "the head to compare with the store's to see a cut-off tail")

	mid, _ := readLink(evs[2])
	h2, err := VerifyFrom(mid.hash, seq(evs[3:]))
	require.NoError(t, err)
	assert.Equal(t, head, h2)

	_, err = VerifyFrom(mid.hash, seq(evs[4:]))
	var be *BrokenLinkError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "previous", be.Problem)

	_, err = VerifyFrom("zz", seq(evs))
	assert.Error(t, err)
}

// TestChainAppendOrder shows the appender pattern: one goroutine owns the
// chain and fixes the order; producers only hand events over.
func TestChainAppendOrder(t *testing.T) {
	in := make(chan []byte)
	stored := make(chan [][]byte)
	go func() {
		c := NewChain("")
		var log [][]byte
		for ev := range in {
			linked, _, err := c.Next(ev)
			if err != nil {
				panic(err)
			}
			log = append(log, linked)
		}
		stored <- log
	}()
	done := make(chan struct{})
	for p := range 4 {
		go func() {
			for i := range 25 {
				in <- Event(with(doctor(), func(r *Record) {
					r.ID = fmt.Sprintf("p%d-%d", p, i)
					r.Interaction, r.Basis = Search, access.Samtykke
				}))
			}
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	close(in)
	log := <-stored
	require.Len(t, log, 100)
	require.NoError(t, Verify(seq(log)))
}

// FuzzLink checks that cutting the link out always gives back the exact
// bytes that were linked, whatever JSON object they are.
func FuzzLink(f *testing.F) {
	f.Add([]byte(`{"resourceType":"AuditEvent"}`))
	f.Add([]byte(`{"a":"q\"uo\\\\te\\","extension":[{"url":"x"}] , "b" : [1,{"c":null}]}`))
	f.Add(Event(Record{Time: t0, ID: "x", Interaction: Read, User: User{Name: `\"\\"`}, Query: `"\`}))
	f.Fuzz(func(t *testing.T, ev []byte) {
		linked, h, err := Link("", ev)
		if err != nil {
			return
		}
		l, err := readLink(linked)
		require.NoError(t, err)
		require.Equal(t, ev, l.canonical)
		require.Equal(t, h, l.hash)
		require.NoError(t, Verify(seq([][]byte{linked})))
	})
}

// compactChainOf builds n linked compact records of the current version.
func compactChainOf(t *testing.T, n int) [][]byte {
	t.Helper()
	c := NewChain("")
	out := make([][]byte, n)
	for i := range n {
		r := with(doctor(), func(r *Record) {
			r.ID = fmt.Sprintf("ae-%d", i)
			r.Time = t0.Add(time.Duration(i) * time.Second)
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
		})
		var err error
		out[i], _, err = c.Next(Compact(r)[0])
		require.NoError(t, err)
	}
	return out
}

// TestVerifyCompactVersion3: a chain of records that store only their own
// hash finds what a chain of JSON records finds (TestVerify), an altered
// record and a removed, inserted or reordered one being one problem there.
func TestVerifyCompactVersion3(t *testing.T) {
	good := compactChainOf(t, 6)
	require.EqualValues(t, compactVersion, good[0][1])
	rename := func(ev []byte, name string) []byte {
		r, id, l, err := readCompactLink(ev)
		require.NoError(t, err)
		r.ID, r.User.Name = id, name
		raw, _ := hex.DecodeString(l.hash)
		return append(Compact(r)[0], raw...)
	}
	cases := []struct {
		name    string
		mutate  func([][]byte) [][]byte
		index   int
		id      string
		problem string
	}{
		{"intact", func(e [][]byte) [][]byte { return e }, -1, "", ""},
		{"one byte altered", func(e [][]byte) [][]byte {
			e[3] = bytes.Replace(e[3], []byte("Lege Testesen"), []byte("Lege Testesem"), 1)
			return e
		}, 3, "ae-3", "hash or previous"},
		{"renamed under its old hash", func(e [][]byte) [][]byte { e[1] = rename(e[1], "Lege Annensen"); return e }, 1, "ae-1", "hash or previous"},
		{"record removed", func(e [][]byte) [][]byte { return slices.Delete(e, 2, 3) }, 2, "ae-3", "hash or previous"},
		{"records reordered", func(e [][]byte) [][]byte { e[3], e[4] = e[4], e[3]; return e }, 3, "ae-4", "hash or previous"},
		{"record inserted", func(e [][]byte) [][]byte { return slices.Insert(e, 2, e[4]) }, 2, "ae-4", "hash or previous"},
		{"first record removed", func(e [][]byte) [][]byte { return e[1:] }, 0, "ae-1", "hash or previous"},
		{"hash rewritten to match altered content", func(e [][]byte) [][]byte {
			// Whoever alters a record and recomputes its hash breaks the
			// next record's instead.
			r, id, _, err := readCompactLink(e[3])
			require.NoError(t, err)
			r.ID, r.User.Name = id, "Lege Annensen"
			prev := mustHash(t, e[2])
			e[3], _, _ = Link(prev, Compact(r)[0])
			return e
		}, 4, "ae-4", "hash or previous"},
		{"link removed", func(e [][]byte) [][]byte { e[4] = e[4][:len(e[4])-32]; return e }, 4, "ae-4", "format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := tc.mutate(slices.Clone(good))
			if tc.index < 0 {
				require.NoError(t, Verify(seq(evs)))
				return
			}
			err := Verify(seq(evs))
			var be *BrokenLinkError
			require.ErrorAs(t, err, &be)
			assert.Equal(t, tc.index, be.Index)
			assert.Equal(t, tc.problem, be.Problem)
			if tc.problem != "format" {
				assert.Equal(t, tc.id, be.ID)
				assert.NotEqual(t, be.Expected, be.Found)
				assert.Contains(t, be.Error(), be.Expected)
				assert.Contains(t, be.Error(), be.Found)
				assert.Contains(t, be.Error(), "the record was altered, or a record before it was removed, inserted or reordered")
			}
		})
	}

	head, err := VerifyFrom("", seq(good))
	require.NoError(t, err)
	assert.Equal(t, mustHash(t, good[5]), head)
	h2, err := VerifyFrom(mustHash(t, good[2]), seq(good[3:]))
	require.NoError(t, err)
	assert.Equal(t, head, h2, "a segment verifies from the hash before it")
	_, err = VerifyFrom(mustHash(t, good[2]), seq(good[4:]))
	var be *BrokenLinkError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "hash or previous", be.Problem)
}

// TestVerifyCompactVersion3To4: a log written in version 3 that goes on in
// version 4 (records with and without a source system) verifies as one
// chain, and an altered source system is found like any altered field.
func TestVerifyCompactVersion3To4(t *testing.T) {
	c := NewChain("")
	var evs [][]byte
	for i := range 6 {
		r := with(doctor(), func(r *Record) {
			r.ID = fmt.Sprintf("ae-%d", i)
			r.Time = t0.Add(time.Duration(i) * time.Second)
			r.Interaction, r.ResourceType, r.ResourceID = Read, "Flag", "f1"
		})
		body := compactAs(r, 3)
		if i >= 2 {
			if i%2 == 0 {
				r.SourceSystem = "DIPS Arena"
			}
			body = Compact(r)[0]
		}
		linked, _, err := c.Next(body)
		require.NoError(t, err)
		evs = append(evs, linked)
	}
	require.EqualValues(t, 3, evs[1][1])
	require.EqualValues(t, 4, evs[2][1])
	require.NoError(t, Verify(seq(evs)))
	ev, err := Render(evs[4])
	require.NoError(t, err)
	assert.Contains(t, string(ev), `"display":"DIPS Arena"`)

	altered := slices.Clone(evs)
	altered[4] = bytes.Replace(slices.Clone(evs[4]), []byte("DIPS Arena"), []byte("DIPS Arenb"), 1)
	err = Verify(seq(altered))
	var be *BrokenLinkError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, 4, be.Index)
	assert.Equal(t, "hash or previous", be.Problem)
}
