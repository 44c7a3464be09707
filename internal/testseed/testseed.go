// Package testseed gives randomized tests a seed they log, so a failure can
// be rerun with the same random choices.
package testseed

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// Env names the variable that replays a logged seed.
const Env = "RUNE_TEST_SEED"

// Rand returns a generator seeded from $RUNE_TEST_SEED, else from the clock,
// and logs the seed.
func Rand(tb testing.TB) *rand.Rand {
	tb.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(Env); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			tb.Fatalf("%s=%q: want an unsigned integer", Env, s)
		}
	}
	tb.Logf("random seed %d (rerun with %s=%d)", seed, Env, seed)
	return rand.New(rand.NewPCG(seed, 0))
}
