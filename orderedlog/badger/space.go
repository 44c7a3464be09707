package badger

import (
	"errors"
	"sync"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// groupBytes estimates what committing group adds to the disk: each batch is
// written as a log entry and again as the state its ops leave.
func groupBytes(group []*proposal) uint64 {
	var n uint64
	for _, p := range group {
		n += 2 * uint64(len(p.enc))
	}
	return n
}

var valueLogGC = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "rune_orderedlog_value_log_gc_total",
	Help: "Value-log GC attempts by result: rewritten (a file's live values moved and the file freed), nothing (no file worth rewriting), skipped (disk full), error.",
}, []string{"result"})

var registerGC sync.Once

// gcLoop runs Badger's value-log GC, which Badger never runs on its own:
// without it overwritten and deleted values (and compacted log entries) keep
// their disk space forever.
func (l *Log) gcLoop() {
	defer l.wg.Done()
	registerGC.Do(func() {
		if err := prometheus.Register(valueLogGC); err != nil {
			l.opts.Logger.Warn("orderedlog metric not exported", "err", err)
		}
	})
	tick := time.NewTicker(l.opts.GCInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.closing:
			return
		case <-tick.C:
		}
		l.collectValueLog()
	}
}

// collectValueLog rewrites value-log files while Badger finds one that is at
// least half garbage. A rewrite copies the live values before it frees the
// file, so it waits while the disk is below its reserve.
func (l *Log) collectValueLog() {
	if l.space.Full() {
		valueLogGC.WithLabelValues("skipped").Inc()
		return
	}
	if err := l.enter(); err != nil {
		return
	}
	defer l.life.RUnlock()
	for {
		select {
		case <-l.closing:
			return
		default:
		}
		err := l.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			valueLogGC.WithLabelValues("rewritten").Inc()
			continue
		case errors.Is(err, badgerdb.ErrNoRewrite), errors.Is(err, badgerdb.ErrRejected):
			valueLogGC.WithLabelValues("nothing").Inc()
		default:
			valueLogGC.WithLabelValues("error").Inc()
			l.opts.Logger.Warn("orderedlog value-log GC failed", "err", err)
		}
		return
	}
}
