package badger

import (
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// A ring and watch buffers far smaller than the suite's logs make watchers
// read the disk and switch back to the ring on the way.
func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) orderedlog.Log {
		return openTestLog(t, t.TempDir(), Options{
			HeartbeatInterval: 20 * time.Millisecond,
			KeepEntries:       -1,
			RecentBatches:     16,
			WatchBuffer:       4,
		})
	})
}
