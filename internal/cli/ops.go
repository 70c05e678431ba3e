package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/api"
	"github.com/kjernejournal/kjernejournal/internal/ratelimit"
)

// opsFlags are serve's flags for operations: the admin listener and the
// rate limits.
type opsFlags struct {
	adminAddr                         *string
	authServer, failedAuth, perClient *string
	proxies                           *string
}

func addOpsFlags(fs *flagSet) opsFlags {
	return opsFlags{
		adminAddr: fs.String("admin-addr", "", "address of the admin listener: /metrics (Prometheus), /healthz, /readyz; for the operators' network only (e.g. 127.0.0.1:9090); empty: none. /metrics is never served on --addr"),
		authServer: fs.String("rate-auth-server", "300/1m",
			"requests per remote address to the built-in authorisation server's endpoints (/auth/, /ehr), as N/period: N at once, N more per period; off: no limit"),
		failedAuth: fs.String("rate-failed-auth", "60/1m",
			"failed authentications (refused tokens, wrong codes or client assertions) per client and per remote address, as N/period; beyond it 429 until the budget refills; with --mongo-uri also counted per period in the database, for all processes on it together; off: no limit"),
		perClient: fs.String("rate-client", "off",
			"authenticated requests per client id, as N/period (e.g. 60000/1m); off: no limit"),
		proxies: fs.String("trusted-proxies", "",
			"load balancers and reverse proxies (addresses or CIDR prefixes, comma-separated) whose X-Forwarded-For names the client's address for the per-address limits; behind one, set it, or every user shares its address's budget"),
	}
}

// limits reads the rate-limit flags.
func (f opsFlags) limits() (*api.Limits, error) {
	var l api.Limits
	for _, x := range []struct {
		name, v string
		to      *ratelimit.Spec
	}{{"rate-auth-server", *f.authServer, &l.AuthServer}, {"rate-failed-auth", *f.failedAuth, &l.FailedAuth}, {"rate-client", *f.perClient, &l.Client}} {
		spec, err := ratelimit.ParseSpec(x.v)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", x.name, err)
		}
		*x.to = spec
	}
	p, err := ratelimit.ParseProxies(*f.proxies)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	l.TrustedProxies = p
	return &l, nil
}

// startAdmin serves the admin handler on --admin-addr until stop is
// called (nothing when the flag is empty).
func (f opsFlags) startAdmin(h http.Handler, log *slog.Logger, stdout io.Writer) (stop func(), err error) {
	if *f.adminAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", *f.adminAddr)
	if err != nil {
		return nil, fmt.Errorf("--admin-addr: listen on %s: %w", *f.adminAddr, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	fmt.Fprintf(stdout, "admin listener on http://%s (/metrics, /healthz, /readyz)\n", ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}, nil
}
