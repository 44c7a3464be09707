package e2ecluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/runenet/runenet/api"
)

// The register the safety test checks for linearizability. The API has no
// compare-and-set of its own; its preconditioned write is instance
// registration, which claims the instance's IP with a put that requires the
// claim not to exist yet (and rewrites a record only at the revision it
// read). So the register is "which instance owns regIP": acquire registers
// the client's instance with regIP (a compare-and-set from free, or from
// itself, to itself; refused with 409 naming the owner otherwise), release
// deregisters it (from itself to free; 404 if it does not own it), and read
// lists the instances with a linearizable read.
var regIP = netip.MustParseAddr("192.168.60.1")

const regService = "reg"

type regOp int

const (
	regRead regOp = iota
	regAcquire
	regRelease
)

func (o regOp) String() string { return [...]string{"read", "acquire", "release"}[o] }

type regInput struct {
	op regOp
	id string // the client's instance id (acquire, release)
}

// regOutput is what an operation answered: ok (or, for a read, the owner,
// "" when free); unknown when the write's outcome is unknown.
type regOutput struct {
	ok, unknown bool
	owner       string
}

// regModel: the state is the owner's instance id, "" when free. An op of
// unknown outcome takes effect if it could; porcupine may place it at the
// end of the history, which is the same as its never having applied.
var regModel = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(regInput), output.(regOutput)
		switch in.op {
		case regRead:
			return out.owner == s, s
		case regAcquire:
			free := s == "" || s == in.id
			switch {
			case out.unknown && free, out.ok:
				return free, in.id
			default: // refused, or unknown and could not apply
				return !free || out.unknown, s
			}
		default:
			mine := s == in.id
			switch {
			case out.unknown && mine, out.ok:
				return mine, ""
			default:
				return !mine || out.unknown, s
			}
		}
	},
	DescribeOperationMetadata: func(info any) string { return "through " + info.(string) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		switch {
		case out.unknown:
			return fmt.Sprintf("%s(%s) -> unknown", in.op, in.id)
		case in.op == regRead:
			return fmt.Sprintf("read -> %q", out.owner)
		default:
			return fmt.Sprintf("%s(%s) -> %v", in.op, in.id, out.ok)
		}
	},
}

// regHistory records register operations from concurrent clients.
type regHistory struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// unknown ops get their Return set to the history's end in check.
	unknown []int
}

func (h *regHistory) now() int64 { return int64(time.Since(h.start)) }

func (h *regHistory) add(client int, node string, in regInput, call int64, out regOutput) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out.unknown {
		h.unknown = append(h.unknown, len(h.ops))
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: h.now(), Metadata: node})
}

// do runs one register operation of client through n and records it,
// unless it certainly did nothing and told nothing.
func (h *regHistory) do(t *testing.T, n *Node, client int, op regOp) outcome {
	in := regInput{op: op, id: fmt.Sprintf("reg-c%d", client)}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	call := h.now()
	var err error
	var out regOutput
	switch op {
	case regRead:
		var l *api.InstanceList
		if l, err = n.LinAPI.Instances(ctx, "default"); err == nil {
			var owners []string
			for _, in := range l.Items {
				if in.Service == regService && in.IP == regIP {
					owners = append(owners, in.ID)
				}
			}
			if len(owners) > 1 {
				t.Errorf("%s: %s has %d owners %v", n.Name, regIP, len(owners), owners)
			}
			if len(owners) == 1 {
				out.owner = owners[0]
			}
		}
	case regAcquire:
		_, err = n.API.RegisterInstance(ctx, api.RegisterInstanceRequest{ID: in.id, Service: regService, Node: "reg", IP: regIP, Ready: true})
	case regRelease:
		_, err = n.API.DeregisterInstance(ctx, in.id)
	}
	oc := classify(err)
	var ae *api.APIError
	switch {
	case oc == outcomeUnknown && op == regRead:
		return oc // a read that answered nothing says nothing
	case oc == outcomeUnknown:
		out.unknown = true
	case oc == outcomeNotApplied:
		return oc
	case oc == outcomeRefused && errors.As(err, &ae):
		refusedByOwner := op == regAcquire && ae.Status == http.StatusConflict && strings.Contains(ae.Msg, "already registered to instance")
		notMine := op == regRelease && ae.Status == http.StatusNotFound
		if !refusedByOwner && !notMine {
			// Such as "the cluster state kept changing": nothing applied,
			// and nothing learnt about the owner.
			return outcomeNotApplied
		}
	case oc == outcomeOK:
		out.ok = true
	}
	h.add(client, n.Name, in, call, out)
	return oc
}

// check runs porcupine on the history; on a violation it writes the
// visualization to a file and names it.
func (h *regHistory) check(t *testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	end := h.now()
	for _, i := range h.unknown {
		h.ops[i].Return = end
	}
	res, info := porcupine.CheckOperationsVerbose(regModel, h.ops, 60*time.Second)
	t.Logf("register: %d operations (%d of unknown outcome), porcupine: %s", len(h.ops), len(h.unknown), res)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Errorf("porcupine could not decide linearizability of %d register operations within 60s", len(h.ops))
	default:
		where := "not written"
		if f, err := os.CreateTemp("", "rune-register-*.html"); err == nil {
			porcupine.Visualize(regModel, info, f)
			f.Close()
			where = f.Name()
		}
		t.Errorf("the register's history is not linearizable; porcupine's visualization: %s", where)
		if f, err := os.CreateTemp("", "rune-register-*.txt"); err == nil {
			ops := slices.Clone(h.ops)
			slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
			for _, op := range ops {
				fmt.Fprintf(f, "%12.6f %12.6f c%d %s %s\n", float64(op.Call)/1e9, float64(op.Return)/1e9, op.ClientId, op.Metadata, regModel.DescribeOperation(op.Input, op.Output))
			}
			f.Close()
			t.Logf("the history by call time: %s", f.Name())
		}
	}
}

// TestRegisterModel: the model rejects a read of a released owner and a
// second owner, and accepts an acquire of unknown outcome either way.
func TestRegisterModel(t *testing.T) {
	op := func(call, ret int64, o regOp, id string, out regOutput) porcupine.Operation {
		return porcupine.Operation{Input: regInput{op: o, id: id}, Call: call, Output: out, Return: ret}
	}
	ok, unknown := regOutput{ok: true}, regOutput{unknown: true}
	for _, c := range []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"acquire, release, read free", []porcupine.Operation{
			op(0, 1, regAcquire, "a", ok), op(2, 3, regRelease, "a", ok), op(4, 5, regRead, "", regOutput{}),
		}, porcupine.Ok},
		{"a read after the release sees the old owner", []porcupine.Operation{
			op(0, 1, regAcquire, "a", ok), op(2, 3, regRelease, "a", ok), op(4, 5, regRead, "", regOutput{owner: "a"}),
		}, porcupine.Illegal},
		{"two owners", []porcupine.Operation{
			op(0, 1, regAcquire, "a", ok), op(2, 3, regAcquire, "b", ok),
		}, porcupine.Illegal},
		{"refused while free", []porcupine.Operation{
			op(0, 1, regAcquire, "a", regOutput{}),
		}, porcupine.Illegal},
		{"unknown acquire that applied", []porcupine.Operation{
			op(0, 100, regAcquire, "a", unknown), op(2, 3, regRead, "", regOutput{owner: "a"}),
		}, porcupine.Ok},
		{"unknown acquire that did not", []porcupine.Operation{
			op(0, 100, regAcquire, "a", unknown), op(2, 3, regAcquire, "b", ok), op(4, 5, regRead, "", regOutput{owner: "b"}),
		}, porcupine.Ok},
	} {
		if got := porcupine.CheckOperationsTimeout(regModel, c.history, time.Second); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
