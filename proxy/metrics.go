package proxy

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/runenet/runenet/cluster"
)

// Connection results, the `result` label of rune_proxy_connections_total.
const (
	resultOK          = "ok"
	resultNoEndpoints = "no_endpoints" // the service has no ready endpoint
	resultDialFailed  = "dial_failed"  // every endpoint tried failed to connect
	resultStale       = "stale"        // refused: the view is past the stale budget
	resultUnknown     = "unknown_vip"  // no service on that VIP:port (a race with a table swap)
	resultDenied      = "denied"       // refused by network policy (also in rune_policy_drops_total)
)

var (
	connectionsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_proxy_connections_total",
		Help: "Connections (TCP) and flows (UDP) to service VIPs, by outcome.",
	}, []string{"service", "namespace", "protocol", "result"})
	activeConnections = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rune_proxy_active_connections",
		Help: "Connections (TCP) and flows (UDP) currently forwarded.",
	}, []string{"service", "namespace", "protocol"})
	bytesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_proxy_bytes_total",
		Help: "Bytes forwarded; direction=to_endpoint or from_endpoint. TCP bytes are added when a direction closes.",
	}, []string{"service", "namespace", "protocol", "direction"})
	dialFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_proxy_dial_failures_total",
		Help: "Failed connects to endpoints (each is retried on another endpoint).",
	}, []string{"service", "namespace"})
	ejections = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_proxy_ejections_total",
		Help: "Endpoints taken out of rotation for a back-off after a failed connect.",
	}, []string{"service", "namespace"})
	devPortClashes = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "rune_proxy_dev_port_clashes",
		Help: "Dev mode: service ports that could not get their 127.0.0.1 listener (use rune port-forward).",
	})
	nftSyncDuration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "rune_nftables_sync_duration_seconds",
		Help:    "Time to apply one table change to nftables (one netlink transaction).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	nftSyncErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "rune_nftables_sync_errors_total",
		Help: "nftables transactions that failed; the next sync reinstalls the whole table.",
	})
	kernelPorts = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "rune_proxy_kernel_ports",
		Help: "Kernel forwarding: TCP service ports the kernel forwards (nftables DNAT) rather than the proxy.",
	})
	heartbeatErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "rune_proxy_kernel_heartbeat_errors_total",
		Help: "Kernel forwarding: failed refreshes of its deadline; forwarding stops when the deadline passes.",
	})
)

// portMetrics holds one service port's resolved metric children, so the
// per-connection path does no label hashing.
type portMetrics struct {
	ok, noEndpoints, dialFailed, stale, denied prometheus.Counter
	active                                     prometheus.Gauge
	bytesTo, bytesFrom                         prometheus.Counter
	dialFailures, ejections                    prometheus.Counter
}

type metricsKey struct {
	svc   cluster.NamespacedName
	proto cluster.Protocol
}

var portMetricsCache sync.Map // metricsKey → *portMetrics

func metricsFor(svc cluster.NamespacedName, proto cluster.Protocol) *portMetrics {
	k := metricsKey{svc, proto}
	if m, ok := portMetricsCache.Load(k); ok {
		return m.(*portMetrics)
	}
	name, ns, p := svc.Name, svc.Namespace, string(proto)
	m := &portMetrics{
		ok:           connectionsTotal.WithLabelValues(name, ns, p, resultOK),
		noEndpoints:  connectionsTotal.WithLabelValues(name, ns, p, resultNoEndpoints),
		dialFailed:   connectionsTotal.WithLabelValues(name, ns, p, resultDialFailed),
		stale:        connectionsTotal.WithLabelValues(name, ns, p, resultStale),
		denied:       connectionsTotal.WithLabelValues(name, ns, p, resultDenied),
		active:       activeConnections.WithLabelValues(name, ns, p),
		bytesTo:      bytesTotal.WithLabelValues(name, ns, p, "to_endpoint"),
		bytesFrom:    bytesTotal.WithLabelValues(name, ns, p, "from_endpoint"),
		dialFailures: dialFailures.WithLabelValues(name, ns),
		ejections:    ejections.WithLabelValues(name, ns),
	}
	actual, _ := portMetricsCache.LoadOrStore(k, m)
	return actual.(*portMetrics)
}

// forgetMetrics drops the series of a service port that is gone, so a
// deleted service leaves /metrics instead of lingering at its last values;
// lastOfService also drops its per-service series. Connections still
// draining on it update children no longer exported.
func forgetMetrics(k metricsKey, lastOfService bool) {
	portMetricsCache.Delete(k)
	l := prometheus.Labels{"service": k.svc.Name, "namespace": k.svc.Namespace, "protocol": string(k.proto)}
	connectionsTotal.DeletePartialMatch(l)
	activeConnections.DeletePartialMatch(l)
	bytesTotal.DeletePartialMatch(l)
	if lastOfService {
		delete(l, "protocol")
		dialFailures.DeletePartialMatch(l)
		ejections.DeletePartialMatch(l)
	}
}

// unknownVIP counts connections that matched no service.
func unknownVIP(proto cluster.Protocol) prometheus.Counter {
	return connectionsTotal.WithLabelValues("", "", string(proto), resultUnknown)
}
