package loopback

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHostAndAddr(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "localhost.": true, "app.localhost": true,
		"127.0.0.1": true, "127.8.9.10": true, "::1": true, "[::1]": true, "::ffff:127.0.0.1": true,
		"": false, "example.org": false, "localhost.example.org": false, "notlocalhost": false,
		"10.0.0.1": false, "0.0.0.0": false, "::": false, "192.168.1.1": false,
	} {
		assert.Equal(t, want, Host(host), "Host(%q)", host)
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:0": true, "[::1]:443": true,
		":8080": false, "0.0.0.0:8080": false, "example.org:80": false, "127.0.0.1": false,
	} {
		assert.Equal(t, want, Addr(addr), "Addr(%q)", addr)
	}
}
