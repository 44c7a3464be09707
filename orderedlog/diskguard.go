package orderedlog

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// ErrNoSpace: the store's disk is (nearly) full, so the log refuses writes
// until space is freed; reads, watches and everything served from them go
// on. Refusing before the disk is full matters because a store that runs out
// mid-write does not fail the write, it kills the process (Badger writes
// through mmap, and a full disk turns that into SIGBUS).
var ErrNoSpace = errors.New("orderedlog: disk full")

// NoSpaceError says how much space there is against the reserve.
type NoSpaceError struct {
	Dir     string
	Free    uint64
	Reserve uint64
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("disk full: the store's filesystem (%s) has %s free, less than the %s reserve kept so the store never fills it; "+
		"writes resume once space is freed (reads, DNS and the data plane keep working)", e.Dir, mib(e.Free), mib(e.Reserve))
}

func (e *NoSpaceError) Unwrap() error { return ErrNoSpace }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// DefaultDiskReserve is the free space a store keeps by default: room for
// what Badger allocates without asking (memtable flushes, compactions, a new
// value-log file) after the last write it accepted.
const DefaultDiskReserve = 256 << 20

var diskFull = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "rune_orderedlog_disk_full",
	Help: "1 while the store's disk is below its free-space reserve and the log refuses writes, else 0.",
})

var registerDiskFull sync.Once

// DiskGuard keeps a free-space reserve on a store's filesystem: a backend
// asks it before every write.
type DiskGuard struct {
	dir     string
	reserve uint64
	logger  *slog.Logger
	full    atomic.Bool
}

// NewDiskGuard guards dir's filesystem with reserve bytes (0: no guard).
func NewDiskGuard(dir string, reserve uint64, logger *slog.Logger) *DiskGuard {
	registerDiskFull.Do(func() {
		if err := prometheus.Register(diskFull); err != nil {
			logger.Warn("orderedlog metric not exported", "err", err)
		}
	})
	diskFull.Set(0) // a guard starts accepting; a closed store's state does not carry over
	return &DiskGuard{dir: dir, reserve: reserve, logger: logger}
}

// Check returns a *NoSpaceError when writing need more bytes would leave
// less than the reserve free. Once it has refused, it accepts again only
// when a sixteenth of the reserve more is free, so writes near the limit do
// not flap between accepted and refused. The first refusal and the recovery
// are logged and shown by rune_orderedlog_disk_full.
func (g *DiskGuard) Check(need uint64) error {
	if g.reserve == 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(g.dir, &st); err != nil {
		// Unable to tell: refuse, since guessing wrong kills the node.
		return fmt.Errorf("%w: cannot read the free space of %s: %v", ErrNoSpace, g.dir, err)
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	if g.full.Load() {
		need += g.reserve / 16
	}
	if free >= g.reserve && free-g.reserve >= need {
		if g.full.Swap(false) {
			diskFull.Set(0)
			g.logger.Info("orderedlog: disk space is back above the reserve, accepting writes again", "dir", g.dir, "free", mib(free), "reserve", mib(g.reserve))
		}
		return nil
	}
	if !g.full.Swap(true) {
		diskFull.Set(1)
		g.logger.Error("orderedlog: disk nearly full, refusing writes until space is freed", "dir", g.dir, "free", mib(free), "reserve", mib(g.reserve))
	}
	return &NoSpaceError{Dir: g.dir, Free: free, Reserve: g.reserve}
}

// Full reports whether the last check refused; background work that needs
// space to free space (a value-log rewrite) waits while it is.
func (g *DiskGuard) Full() bool { return g.full.Load() }
