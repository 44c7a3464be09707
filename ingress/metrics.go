package ingress

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	ingressRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_ingress_requests_total",
		Help: "Edge HTTP/HTTPS requests by routed host (\"unknown\" when no route matched) and response status.",
	}, []string{"host", "status"})
	ingressLoops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_ingress_loops_total",
		Help: "Requests answered 508 Loop Detected because they came back to the edge node that had forwarded them, by routed host.",
	}, []string{"host"})
	acmeCertificates = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rune_acme_certificates",
		Help: "ACME-managed certificates of this edge node by lifecycle state: pending, ready, error.",
	}, []string{"state"})
)

func init() {
	prometheus.MustRegister(ingressRequests, ingressLoops, acmeCertificates)
}

func setCertGauge(t *table) {
	counts := map[string]float64{CertPending: 0, CertReady: 0, CertError: 0}
	for _, r := range t.ordered {
		if r.tlsMode == TLSACME {
			counts[r.state]++
		}
	}
	for state, n := range counts {
		acmeCertificates.WithLabelValues(state).Set(n)
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
		}
	}
}

// requestCounter counts requests in rune_ingress_requests_total. It keeps
// the last series it counted in: a keep-alive connection mostly repeats it,
// and finding a series by its label values hashes and allocates.
type requestCounter struct {
	host   string
	status int
	c      prometheus.Counter
}

func (rc *requestCounter) inc(host string, status int) {
	if rc.c == nil || rc.status != status || rc.host != host {
		rc.host, rc.status, rc.c = host, status, ingressRequests.WithLabelValues(host, strconv.Itoa(status))
	}
	rc.c.Inc()
}
