package api_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/store"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb"
	"github.com/kjernejournal/kjernejournal/internal/store/mongodb/mongotest"
)

// dbProxy is a TCP proxy between the server and its MongoDB-protocol
// database, so a test can make the database stop answering (freeze: hold
// every byte) or go away (stop: drop every connection, refuse new ones),
// as a hung or crashed database does.
type dbProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	frozen bool
	thaw   chan struct{}
}

func newDBProxy(t *testing.T, target string) *dbProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dbProxy{ln: ln, target: target, thaw: make(chan struct{})}
	t.Cleanup(p.stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *dbProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				thaw := p.thaw
				frozen := p.frozen
				p.mu.Unlock()
				if frozen {
					<-thaw
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
}

func (p *dbProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.frozen {
		p.frozen, p.thaw = true, make(chan struct{})
	}
}

func (p *dbProxy) unfreeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		p.frozen = false
		close(p.thaw)
	}
}

// stop drops every connection and refuses new ones.
func (p *dbProxy) stop() {
	p.ln.Close()
	p.unfreeze()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// proxiedMongo opens the MongoDB engine through a proxy to the test
// database.
func proxiedMongo(t *testing.T) (store.Store, *dbProxy) {
	u, err := url.Parse(mongotest.URI(t))
	require.NoError(t, err)
	if strings.Contains(u.Host, ",") {
		t.Skipf("the test database %s is a replica set; the proxy speaks to one host", u.Host)
	}
	p := newDBProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	q := u.Query()
	q.Set("directConnection", "true")
	u.RawQuery = q.Encode()
	st, err := mongodb.Open(context.Background(), mongodb.Options{URI: u.String(), Database: fmt.Sprintf("kjproxy_%d", dbSeq.Add(1))})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st, p
}

// TestDatabaseDownAnswers503: with the MongoDB engine's database gone, a
// read is answered 503 within a few seconds, not after a minute or two.
func TestDatabaseDownAnswers503(t *testing.T) {
	st, p := proxiedMongo(t)
	c := newServer(t, st, api.Config{})
	patient := createPatient(t, c, 80)
	require.Equal(t, http.StatusOK, c.do("GET", "/Patient/"+patient, nil).status)
	p.stop()
	start := time.Now()
	r := c.do("GET", "/Patient/"+patient, nil)
	elapsed := time.Since(start)
	outcome(t, r, http.StatusServiceUnavailable)
	assert.Less(t, elapsed, 5*time.Second, "the answer took %s", elapsed)
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	r = c.do("GET", "/readyz", nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.status, "not ready without a database")
}

// observed is the real store with its reads watched: each read's error
// is reported when the read returns.
type observed struct {
	store.Store
	started chan struct{}
	reads   chan error
}

func (o observed) Read(ctx context.Context, typ, id string) (store.Version, error) {
	select {
	case o.started <- struct{}{}:
	default:
	}
	v, err := o.Store.Read(ctx, typ, id)
	select {
	case o.reads <- err:
	default:
	}
	return v, err
}

// TestCancelledRequestCancelsStoreWork: a client that goes away cancels
// the store call its request is waiting in, rather than leaving it to the
// database's operation timeout.
func TestCancelledRequestCancelsStoreWork(t *testing.T) {
	st, p := proxiedMongo(t)
	c := newServer(t, st, api.Config{})
	patient := createPatient(t, c, 81)
	obs := observed{Store: st, started: make(chan struct{}, 1), reads: make(chan error, 1)}
	c = newServer(t, obs, api.Config{})
	p.freeze()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/Patient/"+patient, nil)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if res, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}()
	select {
	case <-obs.started: // the read is on its way to the frozen database
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the store")
	}
	cancel()
	<-done
	select {
	case err := <-obs.reads:
		assert.ErrorIs(t, err, context.Canceled, "the read ended because the client went away")
	case <-time.After(4 * time.Second):
		t.Fatal("the store read went on after the client had gone")
	}
	p.unfreeze()
}
