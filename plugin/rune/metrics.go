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
