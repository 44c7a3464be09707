package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/runenet/runenet/cluster"
)

// staleCheckEvery is how often the runtime looks at its View's lag, so the
// log says within a second when answers start and stop failing closed.
const staleCheckEvery = time.Second

// logStaleness logs once when the View goes stale (past its budget, every
// consumer fails closed) and once when it recovers, until ctx ends. The
// lag is read, not pushed: a View that stops hearing from the log cannot
// say so itself.
func logStaleness(ctx context.Context, v *cluster.View, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	stale, since := false, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !v.Loaded() || v.Stale() == stale {
			continue
		}
		stale = !stale
		if stale {
			since = time.Now()
			log.Warn(fmt.Sprintf("view is stale: %.1f s behind the log (budget %g s); DNS, the data plane and policy fail closed until it catches up", v.Lag().Seconds(), v.StaleBudget().Seconds()))
		} else {
			log.Info(fmt.Sprintf("view has caught up with the log after %.1f s stale", time.Since(since).Seconds()))
		}
	}
}
