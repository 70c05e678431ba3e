package ratelimit

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSpec(t *testing.T) {
	for in, want := range map[string]Spec{"60/1m": {60, time.Minute}, "20/10m": {20, 10 * time.Minute}, "off": {}, "0": {}} {
		got, err := ParseSpec(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"60", "x/1m", "-1/1m", "5/soon", "5/0s"} {
		_, err := ParseSpec(bad)
		assert.Error(t, err, bad)
		assert.Contains(t, err.Error(), bad, "the error names the input")
	}
}

func TestBucketsRefillAndAreForgotten(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	k := NewKeyed(Spec{Burst: 3, Period: time.Minute}, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		ok, _ := k.Allow("a")
		require.True(t, ok, "within the burst (%d)", i)
	}
	ok, wait := k.Allow("a")
	assert.False(t, ok)
	assert.Equal(t, 20*time.Second, wait, "3 per minute: one every 20 s")
	assert.Equal(t, "20", RetryAfter(wait))
	blocked, _ := k.Exhausted("a")
	assert.True(t, blocked)
	ok, _ = k.Allow("b")
	assert.True(t, ok, "another key has its own bucket")
	blocked, _ = k.Exhausted("never-seen")
	assert.False(t, blocked)

	now = now.Add(20 * time.Second)
	ok, _ = k.Allow("a")
	assert.True(t, ok, "refilled")

	// Buckets idle for a period are full again and dropped once the map
	// has grown.
	now = now.Add(time.Minute)
	for i := 0; i < 1100; i++ {
		k.Allow("k" + strconv.Itoa(i))
	}
	assert.Less(t, k.Len(), 1103)
	assert.Nil(t, NewKeyed(Spec{}, nil), "off")
	ok, _ = (*Keyed)(nil).Allow("x")
	assert.True(t, ok, "no limit when off")
}

func TestAddrKey(t *testing.T) {
	assert.Equal(t, "192.0.2.7", AddrKey("192.0.2.7:51234"))
	assert.Equal(t, "2001:db8:1:2::/64", AddrKey("[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443"), "an IPv6 subscriber's /64 is one key")
	assert.Equal(t, AddrKey("[2001:db8:1:2::1]:1"), AddrKey("[2001:db8:1:2::2]:2"))
}

func TestAllowOnAKnownKeyAllocatesNothing(t *testing.T) {
	k := NewKeyed(Spec{Burst: 1 << 30, Period: time.Second}, nil)
	k.Allow("client-1")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { k.Allow("client-1") }))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { k.Exhausted(AddrKey("192.0.2.7:51234")) }))
	r := &http.Request{RemoteAddr: "192.0.2.7:51234"}
	assert.Zero(t, testing.AllocsPerRun(1000, func() { k.Exhausted(Proxies(nil).Key(r)) }))
}

func TestProxiesKey(t *testing.T) {
	p, err := ParseProxies("10.0.0.0/8, 192.0.2.1")
	require.NoError(t, err)
	req := func(peer string, xff ...string) *http.Request {
		r := &http.Request{RemoteAddr: peer, Header: http.Header{}}
		for _, v := range xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		return r
	}
	assert.Equal(t, "198.51.100.9", p.Key(req("198.51.100.9:1234", "203.0.113.5")), "an untrusted peer's header is ignored")
	assert.Equal(t, "203.0.113.5", p.Key(req("10.1.2.3:1234", "203.0.113.5")))
	assert.Equal(t, "203.0.113.5", p.Key(req("10.1.2.3:1234", "6.6.6.6, 203.0.113.5, 192.0.2.1")),
		"the nearest untrusted hop, not what the client wrote further left")
	assert.Equal(t, "10.1.2.3", p.Key(req("10.1.2.3:1234")), "no header: the proxy itself")
	_, err = ParseProxies("10.0.0.0/8,lb.example")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lb.example")
	assert.Equal(t, "198.51.100.9", Proxies(nil).Key(req("198.51.100.9:1")))
}
