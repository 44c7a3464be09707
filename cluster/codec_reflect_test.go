package cluster

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// filler sets every field of a value, recursively, to a non-zero value
// distinct from every other field's, so a field the codec forgets shows up
// as a lost value. Leaf number bump (if >= 0) gets a different value than it
// otherwise would, to check that changing any one field is seen.
type filler struct {
	t     *testing.T
	leaf  int
	bump  int
	paths []string
}

func fillAll(t *testing.T, v any, bump int) *filler {
	f := &filler{t: t, bump: bump}
	f.fill(reflect.ValueOf(v).Elem(), reflect.TypeOf(v).Elem().Name())
	return f
}

func (f *filler) next(path string) (int, bool) {
	f.leaf++
	f.paths = append(f.paths, path)
	return f.leaf, f.leaf-1 == f.bump
}

func (f *filler) fill(v reflect.Value, path string) {
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		n, bumped := f.next(path)
		ts := time.Unix(int64(n)*3600, int64(n)).UTC()
		if bumped {
			ts = ts.Add(time.Second)
		}
		v.Set(reflect.ValueOf(ts))
		return
	case reflect.TypeFor[netip.Addr]():
		n, bumped := f.next(path)
		a := netip.AddrFrom4([4]byte{10, byte(n), 0, 1})
		if bumped {
			a = a.Next()
		}
		v.Set(reflect.ValueOf(a))
		return
	case reflect.TypeFor[netip.Prefix]():
		n, bumped := f.next(path)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n), 0, 0}), 16)
		if bumped {
			p = netip.PrefixFrom(p.Addr(), 20)
		}
		v.Set(reflect.ValueOf(p))
		return
	}
	switch v.Kind() {
	case reflect.String:
		n, bumped := f.next(path)
		s := fmt.Sprintf("v%d", n)
		if bumped {
			s += "x"
		}
		v.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, bumped := f.next(path)
		if bumped {
			n += 1000
		}
		v.SetInt(int64(n))
	case reflect.Bool:
		_, bumped := f.next(path)
		v.SetBool(!bumped)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			f.fill(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			sf := v.Type().Field(i)
			if !sf.IsExported() {
				f.t.Fatalf("%s.%s is unexported: the round-trip test cannot set it; teach it how", path, sf.Name)
			}
			f.fill(v.Field(i), path+"."+sf.Name)
		}
	default:
		f.t.Fatalf("%s: the round-trip test has no value for kind %s; teach it one", path, v.Kind())
	}
}

type codec interface {
	encode() []byte
	decode([]byte) error
}

// Every field of every stored record survives encode+decode. The codec is
// positional and hand-written, so a field added to a type without codec
// support fails here rather than vanishing from the store.
func TestCodecRoundTripsEveryField(t *testing.T) {
	for _, newRecord := range []func() codec{
		func() codec { return &ServiceRecord{} },
		func() codec { return &NetworkPolicy{} },
		func() codec { return &Instance{} },
		func() codec { return &Endpoints{} },
		func() codec { return &VIPAllocation{} },
		func() codec { return &ClusterNetwork{} },
		func() codec { return &ContainerNetwork{} },
		func() codec { return &Node{} },
	} {
		in, out := newRecord(), newRecord()
		f := fillAll(t, in, -1)
		name := reflect.TypeOf(in).Elem().Name()
		if err := out.decode(in.encode()); err != nil {
			t.Fatalf("%s: decoding its own encoding: %v", name, err)
		}
		if reflect.DeepEqual(in, out) {
			continue
		}
		// Name the lost fields.
		for leaf, path := range f.paths {
			bumped := newRecord()
			fillAll(t, bumped, leaf)
			back := newRecord()
			if err := back.decode(bumped.encode()); err != nil || reflect.DeepEqual(back, out) {
				t.Errorf("the codec loses %s", path)
			}
		}
		t.Fatalf("%s does not round-trip:\n in  %+v\n out %+v", name, in, out)
	}
}

// specEqual, which decides "unchanged" for a cast, sees a change of any
// single field of a Service.
func TestSpecEqualSeesEveryField(t *testing.T) {
	var base Service
	f := fillAll(t, &base, -1)
	for leaf, path := range f.paths {
		var changed Service
		fillAll(t, &changed, leaf)
		if specEqual(&base, &changed) {
			t.Errorf("specEqual misses a change of %s", path)
		}
	}
}
