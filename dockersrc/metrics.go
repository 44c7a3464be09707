package dockersrc

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Package-level so they are registered once per process, however many
// sources a Corefile reload creates.
var (
	eventsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "rune_docker_events_total",
		Help: "Docker Engine container events received, by type (start, die, stop, destroy, health_status).",
	}, []string{"type"})
	reconcileTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "rune_docker_reconcile_total",
		Help: "Full reconciliations with the Docker Engine's container list (one per connection to the Engine).",
	})
)
