package badger

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// benchOps is a typical endpoint update: the endpoint record plus the local
// instance row, ~150 bytes.
func benchOps(worker int, i int64) []orderedlog.Op {
	return []orderedlog.Op{
		orderedlog.Put(fmt.Sprintf("endpoints/default/svc%d/inst%d", i%200, worker), logtest.Val(`{"ip":"172.17.0.%d","port":8080,"node":"node-1","ready":true}`, i%250)),
		orderedlog.Put(fmt.Sprintf("local_instances/node-1/%d-%d", worker, i%50), logtest.Val(`{"svc":"svc%d"}`, i%200)),
	}
}

// proposeN has `proposers` goroutines propose n durable batches in total.
func proposeN(b *testing.B, l orderedlog.Log, proposers, n int, each func(seq uint64)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range proposers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				seq, err := l.Propose(context.Background(), benchOps(w, i))
				if err != nil {
					b.Error(err)
					return
				}
				if each != nil {
					each(seq)
				}
			}
		})
	}
	wg.Wait()
}

// commitCount is how many durable commits the package has made so far.
func commitCount(b *testing.B) uint64 {
	var m dto.Metric
	if err := groupBatches.Write(&m); err != nil {
		b.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// Durable proposals per second with one proposer (one fsync per batch) and
// with 64 (group commit shares fsyncs).
func BenchmarkProposeDurable(b *testing.B) {
	for _, proposers := range []int{1, 64} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			l := openTestLog(b, b.TempDir(), Options{})
			commitsBefore := commitCount(b)
			b.ResetTimer()
			start := time.Now()
			proposeN(b, l, proposers, b.N, nil)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "batches/s")
			b.ReportMetric(float64(b.N)/float64(commitCount(b)-commitsBefore), "batches/commit")
		})
	}
}

// Time from Propose returning to a watcher holding the batch.
func BenchmarkWatchLatency(b *testing.B) {
	for _, proposers := range []int{1, 16} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			l := openTestLog(b, b.TempDir(), Options{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := l.Watch(ctx, 0)
			if err != nil {
				b.Fatal(err)
			}
			base := l.Tail()
			received := make([]int64, b.N)
			returned := make([]int64, b.N)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for ev := range ch {
					if ev.Batch == nil {
						continue
					}
					i := ev.Batch.Seq - base - 1
					received[i] = time.Now().UnixNano()
					if i == uint64(b.N)-1 {
						return
					}
				}
			}()
			b.ResetTimer()
			proposeN(b, l, proposers, b.N, func(seq uint64) { returned[seq-base-1] = time.Now().UnixNano() })
			<-done
			b.StopTimer()
			lat := make([]float64, b.N)
			for i := range lat {
				// The watcher may be woken before the proposer is.
				lat[i] = float64(max(0, received[i]-returned[i])) / 1e6
			}
			slices.Sort(lat)
			b.ReportMetric(lat[len(lat)/2], "p50-ms")
			b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
		})
	}
}
