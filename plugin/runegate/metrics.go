package runegate

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	heldBack = promauto.NewCounter(prometheus.CounterOpts{
		Name: "rune_dns_gate_servfail_total",
		Help: "Queries for .rune names answered SERVFAIL (EDE Not Ready) because the data path was not ready.",
	})
	gateOpen = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "rune_dns_gate_open",
		Help: "1 when every data-path subsystem reports ready and the gate lets .rune queries through, 0 otherwise.",
	})
)

func setOpen(ok bool) {
	if ok {
		gateOpen.Set(1)
	} else {
		gateOpen.Set(0)
	}
}
