package codec

import (
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

func TestEncodingRoundTrip(t *testing.T) {
	ops := []orderedlog.Op{
		orderedlog.Put("services/a", []byte("v")),
		orderedlog.PutIf("network/vips/a", nil, 0),
		orderedlog.Delete("endpoints/x"),
		orderedlog.DeleteIf("endpoints/y", 1<<40),
		orderedlog.Check("policy/p", 7),
	}
	enc, own := Encode(ops)
	now := time.Unix(1700000000, 123)
	StampTime(enc, now)
	b, err := Decode(9, enc)
	if err != nil || b.Seq != 9 || !b.Time.Equal(now) || !logtest.SameOps(b.Ops, ops) || !logtest.SameOps(own, ops) {
		t.Fatalf("round trip = %+v, %v", b, err)
	}
	for cut := range len(enc) {
		if _, err := Decode(9, enc[:cut]); err == nil {
			t.Fatalf("decoding %d of %d bytes succeeded", cut, len(enc))
		}
	}
}
