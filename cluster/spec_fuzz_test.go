package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParseFiles checks that no input panics, that every failure is an
// ErrorList of located problems, and that what ParseFiles accepts is
// complete: written back out through the types and parsed again, it comes
// back unchanged, so defaults are idempotent and nothing validated depends
// on how the input happened to be spelled.
func FuzzParseFiles(f *testing.F) {
	examples, err := filepath.Glob(filepath.Join("testdata", "spec", "*"))
	if err != nil || len(examples) == 0 {
		f.Fatalf("no examples in testdata/spec: %v", err)
	}
	for _, name := range examples {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range malformedSpecs {
		f.Add([]byte(tc.input))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		svcs, err := ParseFiles([]SourceFile{{Name: "fuzz.yaml", Data: data}})
		if err != nil {
			var list ErrorList
			if svcs != nil || !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("got services %v and error %T %v; want no services and a non-empty ErrorList", svcs, err, err)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Msg == "" || e.Line < 0 || e.Column < 0 {
					t.Fatalf("malformed error %#v", e)
				}
			}
			return
		}
		if len(svcs) == 0 {
			t.Fatal("no error and no services")
		}
		out, err := yaml.Marshal(struct {
			Services []Service `yaml:"services"`
		}{svcs})
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		again, err := ParseFiles([]SourceFile{{Name: "again.yaml", Data: out}})
		if err != nil {
			t.Fatalf("re-encoded services do not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, svcs) {
			t.Fatalf("round trip changed the services\nfirst  %s\nsecond %s\nvia\n%s", asJSON(svcs), asJSON(again), out)
		}
	})
}
