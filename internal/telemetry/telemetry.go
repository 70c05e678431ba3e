// Package telemetry holds the Prometheus metrics that an operator pages
// on, beyond the HTTP counters of package api: usage-log appends, store
// operations, sources, the token cache, notifications, rate limits and
// refusals. They are process-wide (one process serves one store), made
// once and registered on the admin listener's registry by Register; the
// packages that measure hold pre-resolved children, so an observation on
// the request path allocates nothing.
package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Buckets of latencies from a fraction of a millisecond (a cached read)
// to seconds (a source hospital, a stalled database).
var latencyBuckets = []float64{.0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}

var (
	// AuditAppend is how long a request waited for its usage-log records
	// to be durable (the answer is held until then).
	AuditAppend = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kj_usage_log_append_seconds",
		Help:    "Time a request waits for its usage-log records to be durable (answers are held until then).",
		Buckets: latencyBuckets,
	})
	// CommitGroup is how many requests one group commit of the store
	// carried (commits and usage-log appends sharing one fsync).
	CommitGroup = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kj_store_commit_group_size",
		Help:    "Requests (commits, usage-log appends) carried by one group commit of the store.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	}, []string{"engine"})
	// StoreOp is the latency of store operations by engine and operation.
	StoreOp = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kj_store_operation_seconds",
		Help:    "Store operation latency by engine and operation.",
		Buckets: latencyBuckets,
	}, []string{"engine", "op"})
	// StoreErrors counts store operations that failed for another reason
	// than a missing resource or a precondition.
	StoreErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kj_store_operation_errors_total",
		Help: "Store operations that failed (not counting not-found and conflicts), by engine and operation.",
	}, []string{"engine", "op"})
	// SourceLatency is the latency of requests to the sources (document
	// and lab services).
	SourceLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kj_source_request_seconds",
		Help:    "Latency of requests to the sources (document services and lab services), by source.",
		Buckets: latencyBuckets,
	}, []string{"source"})
	// SourceFailures counts requests to a source that failed (unreachable,
	// timed out, a 5xx).
	SourceFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kj_source_failures_total",
		Help: "Requests to a source (document or lab service) that failed (unreachable, timed out, an error answer), by source.",
	}, []string{"source"})
	// TokenCache counts token validations answered from the cache (hit)
	// or by a signature check (miss); hit / (hit+miss) is the hit ratio.
	TokenCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kj_token_cache_requests_total",
		Help: "Access-token validations by result: hit (from the cache) or miss (signature verified).",
	}, []string{"result"})
	TokenCacheHit  = TokenCache.WithLabelValues("hit")
	TokenCacheMiss = TokenCache.WithLabelValues("miss")
	// NotifyQueue is the number of change notifications waiting to be sent.
	NotifyQueue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kj_notification_queue_depth",
		Help: "Change notifications waiting to be delivered (seen by this process's dispatcher at its last pass).",
	})
	// NotifyFailures counts failed notification deliveries.
	NotifyFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kj_notification_failures_total",
		Help: "Change-notification delivery attempts that failed (will be retried or given up).",
	})
	// NotifySent counts delivered notifications.
	NotifySent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kj_notifications_sent_total",
		Help: "Change notifications delivered.",
	})
	// LeaseHeld is 1 while this process holds a lease (package lease): of
	// the processes on one database, one should show 1 per lease.
	LeaseHeld = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kj_lease_held",
		Help: "1 while this process holds the lease of a background job shared by the processes on one database (notify: delivers change notifications; purge: purges reserved records), else 0.",
	}, []string{"lease"})
	// RateLimited counts requests refused 429 by a rate limit.
	RateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kj_rate_limited_total",
		Help: "Requests refused 429 by a rate limit, by limit: auth-server (per address), failed-auth (per client or address), client (per-client budget).",
	}, []string{"limit"})
	// Refusals counts refused accesses by reason code (the usage log's).
	Refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kj_refusals_total",
		Help: "Refused requests by access reason code (as in the usage log and the OperationOutcome).",
	}, []string{"reason"})
)

// Register adds the metrics to reg (again is fine).
func Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{AuditAppend, CommitGroup, StoreOp, StoreErrors, SourceLatency,
		SourceFailures, TokenCache, NotifyQueue, NotifyFailures, NotifySent, LeaseHeld, RateLimited, Refusals} {
		if err := reg.Register(c); err != nil {
			if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
				return err
			}
		}
	}
	return nil
}
