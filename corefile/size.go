package corefile

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// ParseSize reads a byte count written as a number with an optional binary
// unit: 512MiB, 1GiB, 65536.
func ParseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, errors.New("want a size such as 256MiB or 1GiB (units KiB, MiB, GiB, TiB), or 0")
	}
	return n * mult, nil
}
