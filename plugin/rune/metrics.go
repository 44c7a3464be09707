package rune

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// responses counts replies by outcome. The children are bound once here so
// the answer path increments a counter without a label lookup.
var responses = func() [numResults]prometheus.Counter {
	vec := promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_dns_responses_total",
		Help: "Replies of the rune plugin by result: answer, nodata, nxdomain, refused (a class other than IN, a zone transfer), or servfail (not_loaded, stale) while failing closed.",
	}, []string{"result"})
	var c [numResults]prometheus.Counter
	for res, label := range [numResults]string{
		resultAnswer:    "answer",
		resultNoData:    "nodata",
		resultNXDomain:  "nxdomain",
		resultNotLoaded: "not_loaded",
		resultStale:     "stale",
		resultRefused:   "refused",
	} {
		c[res] = vec.WithLabelValues(label)
	}
	return c
}()

// fastPackets counts the UDP packets the fast path read, by what became of
// them: answered from its rendered replies, or declined to the full plugin
// chain. Both stay zero while the fast path is off.
var fastPackets = func() (p struct{ answered, declined prometheus.Counter }) {
	vec := promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_dns_fastpath_packets_total",
		Help: "UDP packets the rune plugin's fast path read, by path: answered (from replies rendered per snapshot) or declined (served by the full plugin chain).",
	}, []string{"path"})
	p.answered, p.declined = vec.WithLabelValues("answered"), vec.WithLabelValues("declined")
	return p
}()
