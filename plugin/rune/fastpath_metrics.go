package rune

import (
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/metrics/vars"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// chainMetrics counts the fast path's answers into the coredns_dns_*
// series the block's prometheus plugin would: the same labels as
// vars.Report gives a UDP query the rune plugin answered NOERROR.
type chainMetrics struct {
	m      *metrics.Metrics
	server string
}

// series are the bound children of one (zone, type, DO) combination, looked
// up once per cached answer rather than per query.
type series struct {
	count, rcode, do       prometheus.Counter
	dur, reqSize, respSize prometheus.Observer
}

func (s *series) observe(dur float64, req, resp int) {
	if s.do != nil {
		s.do.Inc()
	}
	s.count.Inc()
	s.dur.Observe(dur)
	s.respSize.Observe(float64(resp))
	s.reqSize.Observe(float64(req))
	s.rcode.Inc()
}

func (c *chainMetrics) series(qname string, qtype uint16, do bool, fam string) *series {
	zone := plugin.Zones(c.m.ZoneNames()).Matches(qname)
	if zone == "" {
		zone = "."
	}
	// The plugin label is the one right after prometheus: its writer
	// wrapper is the one that reports to the metrics recorder.
	by := ""
	if c.m.Next != nil {
		by = c.m.Next.Name()
	}
	const view, proto = "", "udp"
	s := &series{
		count:    vars.RequestCount.WithLabelValues(c.server, zone, view, proto, fam, dns.TypeToString[qtype]),
		rcode:    vars.ResponseRcode.WithLabelValues(c.server, zone, view, dns.RcodeToString[dns.RcodeSuccess], by),
		dur:      vars.RequestDuration.WithLabelValues(c.server, zone, view),
		reqSize:  vars.RequestSize.WithLabelValues(c.server, zone, view, proto),
		respSize: vars.ResponseSize.WithLabelValues(c.server, zone, view, proto),
	}
	if do {
		s.do = vars.RequestDo.WithLabelValues(c.server, zone, view)
	}
	return s
}

// seriesOf returns e's series, binding them on first use; nil without
// prometheus in the block.
func (fp *fastPath) seriesOf(e *entry, do bool) *series {
	if fp.stats == nil {
		return nil
	}
	i := 0
	if do {
		i = 1
	}
	if e.series[i] == nil {
		e.series[i] = fp.stats.series(e.name, e.qtype, do, fp.fam)
	}
	return e.series[i]
}
