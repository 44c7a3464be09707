package ingress

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	ingressRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_ingress_requests_total",
		Help: "Edge HTTP/HTTPS requests by routed host (\"unknown\" when no route matched) and response status.",
	}, []string{"host", "status"})
	ingressDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rune_ingress_request_duration_seconds",
		Help:    "Time from an edge request's head being read to its response being written, by routed host (\"unknown\" when no route matched).",
		Buckets: prometheus.DefBuckets,
	}, []string{"host"})
	ingressLoops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_ingress_loops_total",
		Help: "Requests answered 508 Loop Detected because they came back to the edge node that had forwarded them, by routed host.",
	}, []string{"host"})
	acmeCertificates = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rune_acme_certificates",
		Help: "ACME-managed certificates of this edge node by lifecycle state: pending, ready, error.",
	}, []string{"state"})
	certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rune_acme_certificate_expiry_timestamp_seconds",
		Help: "Unix time at which the certificate serving a routed host (ACME or manual TLS) expires.",
	}, []string{"host"})
)

func init() {
	prometheus.MustRegister(ingressRequests, ingressDuration, ingressLoops, acmeCertificates, certExpiry)
}

// setCertGauges sets the certificate metrics from cur, and drops the expiry
// series of hosts that old had a certificate for and cur has none for.
func setCertGauges(old, cur *table) {
	counts := map[string]float64{CertPending: 0, CertReady: 0, CertError: 0}
	has := make(map[string]bool, len(cur.ordered))
	for _, r := range cur.ordered {
		if r.tlsMode == TLSACME {
			counts[r.state]++
		}
		if !r.notAfter.IsZero() {
			has[r.host] = true
			certExpiry.WithLabelValues(r.host).Set(float64(r.notAfter.Unix()))
		}
	}
	for state, n := range counts {
		acmeCertificates.WithLabelValues(state).Set(n)
	}
	if old == nil {
		return
	}
	for _, r := range old.ordered {
		if !r.notAfter.IsZero() && !has[r.host] {
			certExpiry.DeleteLabelValues(r.host)
		}
	}
}

// forgetHosts drops the request series of hosts that old routed and cur
// does not (their service was deleted or stopped exposing them), so the
// metric does not keep every host it ever served.
func forgetHosts(old, cur *table) {
	if old == nil {
		return
	}
	kept := make(map[string]bool, len(cur.ordered))
	for _, r := range cur.ordered {
		kept[r.host] = true
	}
	for _, r := range old.ordered {
		if !kept[r.host] {
			ingressRequests.DeletePartialMatch(prometheus.Labels{"host": r.host})
			ingressDuration.DeleteLabelValues(r.host)
		}
	}
}

// requestCounter counts requests in rune_ingress_requests_total and
// rune_ingress_request_duration_seconds. It keeps the last series it counted
// in: a keep-alive connection mostly repeats them, and finding a series by
// its label values hashes and allocates.
type requestCounter struct {
	host     string
	status   int
	c        prometheus.Counter
	obsHost  string
	duration prometheus.Observer
}

// inc counts a request for host answered with status, started at start.
func (rc *requestCounter) inc(host string, status int, start time.Time) {
	if rc.c == nil || rc.status != status || rc.host != host {
		rc.host, rc.status, rc.c = host, status, ingressRequests.WithLabelValues(host, strconv.Itoa(status))
	}
	rc.c.Inc()
	if rc.duration == nil || rc.obsHost != host {
		rc.obsHost, rc.duration = host, ingressDuration.WithLabelValues(host)
	}
	rc.duration.Observe(time.Since(start).Seconds())
}
