package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readSpec(t *testing.T, name string) SourceFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "spec", name))
	if err != nil {
		t.Fatal(err)
	}
	return SourceFile{Name: name, Data: data}
}

func inline(name, data string) SourceFile { return SourceFile{Name: name, Data: []byte(data)} }

func httpPort(n int) Port { return Port{Name: "http", Port: n, Protocol: TCP, TargetPort: n} }

func TestSpecValid(t *testing.T) {
	tests := []struct {
		name  string
		files []SourceFile
		want  []Service
	}{{
		name:  "spec network policy example",
		files: []SourceFile{readSpec(t, "policy.yaml")},
		want: []Service{{
			Name: "api", Namespace: "default", Image: "ghcr.io/example/api:1.4.0",
			Ports: []Port{httpPort(8080)},
			NetworkPolicy: &NetworkPolicy{HasIngress: true, Ingress: []PolicyRule{{
				From: []Peer{
					{Service: "web", Namespace: "default"},
					{Service: "worker", Namespace: "jobs"},
					{CIDR: "10.0.0.0/8"},
				},
				Ports: []PortRef{{Name: "http"}},
			}}},
		}},
	}, {
		name:  "spec ingress example with auto TLS",
		files: []SourceFile{readSpec(t, "ingress.yaml")},
		want: []Service{{
			Name: "api", Namespace: "default", Image: "ghcr.io/example/api:1.4.0", Scale: new(2),
			Ports:  []Port{httpPort(8080)},
			Expose: &Expose{Host: "api.example.com", Port: "http", TLS: &TLS{Auto: true, Mode: "acme"}},
		}},
	}, {
		name:  "services list with protocols and target ports",
		files: []SourceFile{readSpec(t, "services.yaml")},
		want: []Service{{
			Name: "web", Namespace: "shop",
			Ports: []Port{{Port: 80, Protocol: TCP, TargetPort: 8080}},
		}, {
			Name: "dns", Namespace: "infra", Scale: new(0),
			Ports: []Port{
				{Name: "dns", Port: 53, Protocol: UDP, TargetPort: 53},
				{Name: "dns-tcp", Port: 53, Protocol: TCP, TargetPort: 53},
			},
		}},
	}, {
		name:  "multi-document file with empty documents",
		files: []SourceFile{readSpec(t, "multi.yaml")},
		want: []Service{
			{Name: "one", Namespace: "default"},
			{Name: "two", Namespace: "default"},
			{Name: "three", Namespace: "ops"},
		},
	}, {
		name:  "JSON with deny-all ingress, egress and acme mode",
		files: []SourceFile{readSpec(t, "service.json")},
		want: []Service{{
			Name: "api", Namespace: "prod",
			Ports: []Port{{Name: "http", Port: 8080, Protocol: TCP, TargetPort: 80}},
			NetworkPolicy: &NetworkPolicy{
				HasIngress: true, Ingress: []PolicyRule{},
				HasEgress: true, Egress: []PolicyRule{{
					To:    []Peer{{CIDR: "192.168.0.0/16"}},
					Ports: []PortRef{{Number: 443}, {Number: 5432}},
				}},
			},
			Expose: &Expose{Host: "api.example.com", Port: "http", TLS: &TLS{Auto: true, Mode: "acme"}},
		}},
	}, {
		name:  "every peer kind and a wildcard host with manual TLS",
		files: []SourceFile{readSpec(t, "manual-tls.yaml")},
		want: []Service{{
			Name: "portal", Namespace: "edge",
			Ports: []Port{
				{Name: "https", Port: 8443, Protocol: TCP, TargetPort: 8443},
				{Name: "metrics", Port: 9090, Protocol: TCP, TargetPort: 9090},
			},
			NetworkPolicy: &NetworkPolicy{
				HasIngress: true, Ingress: []PolicyRule{{
					From:  []Peer{{Service: "prometheus", Namespace: "monitoring"}},
					Ports: []PortRef{{Name: "metrics"}},
				}, {
					From:  []Peer{{CIDR: "0.0.0.0/0"}, {CIDR: "::/0"}},
					Ports: []PortRef{{Number: 8443}},
				}},
				HasEgress: true, Egress: []PolicyRule{{
					To: []Peer{{Service: "db", Namespace: "edge"}, {CIDR: "fd00::/8"}},
				}},
			},
			Expose: &Expose{Host: "*.example.com", Port: "https", TLS: &TLS{Mode: "manual", Secret: "wildcard-example-com"}},
		}},
	}, {
		name:  "defaults: name only",
		files: []SourceFile{inline("min.yaml", "service:\n  name: api\n")},
		want:  []Service{{Name: "api", Namespace: "default"}},
	}, {
		name:  "normalised values",
		files: []SourceFile{readSpec(t, "normalised.yaml")},
		want: []Service{{
			Name: "api", Namespace: "default",
			Ports: []Port{{Port: 8080, Protocol: TCP, TargetPort: 8080}},
			NetworkPolicy: &NetworkPolicy{
				HasIngress: true, Ingress: []PolicyRule{{From: []Peer{{CIDR: "2001:db8::/32"}}, Ports: []PortRef{{Number: 8080}}}},
				HasEgress: true, Egress: []PolicyRule{},
			},
			Expose: &Expose{Host: "api.example.com", Port: "8080", TLS: &TLS{Auto: true, Mode: "acme"}},
		}},
	}, {
		name:  "expose defaults to an unnamed only port; empty policy block",
		files: []SourceFile{readSpec(t, "defaults.yaml")},
		want: []Service{{
			Name: "api", Namespace: "default",
			Ports:         []Port{{Port: 80, Protocol: TCP, TargetPort: 80}},
			NetworkPolicy: &NetworkPolicy{},
			Expose:        &Expose{Host: "api.example.com", Port: "80"},
		}},
	}, {
		name: "several files keep their order; same name in two namespaces",
		files: []SourceFile{
			inline("a.yaml", "service: {name: api, namespace: a}"),
			inline("b.json", `{"services": [{"name": "api", "namespace": "b"}]}`),
		},
		want: []Service{{Name: "api", Namespace: "a"}, {Name: "api", Namespace: "b"}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFiles(tc.files)
			if err != nil {
				t.Fatalf("ParseFiles: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %s\nwant %s", asJSON(got), asJSON(tc.want))
			}
		})
	}
}

func asJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// malformedSpecs each hold exactly one problem; the fuzz test seeds from them.
var malformedSpecs = []struct {
	name  string
	input string
	line  int // 0: the file as a whole
	path  string
	msg   string
}{
	{"typo with suggestion", `service:
  name: api
  ports:
    - name: http
      port: 8080
  # policy below
  netwrokPolicy:
    ingress: []
`, 7, "service.netwrokPolicy", `unknown field "netwrokPolicy" (did you mean "networkPolicy"?)`},
	{"top-level typo", "servce:\n  name: api\n", 1, "servce", `(did you mean "service"?)`},
	{"unknown field lists known ones", "service:\n  name: api\n  color: blue\n", 3, "service.color", `unknown field "color" (known fields: name, namespace, image,`},
	{"case-only typo", "service:\n  name: api\n  ports:\n    - port: 80\n      TargetPort: 8080\n", 5, "service.ports[0].TargetPort", `did you mean "targetPort"`},
	{"port is text", "service:\n  name: api\n  ports:\n    - port: abc\n", 4, "service.ports[0].port", `must be an integer, got string "abc"`},
	{"port is a float", "service:\n  name: api\n  ports:\n    - port: 80.5\n", 4, "service.ports[0].port", "must be an integer, got number 80.5"},
	{"port with a leading zero", "service:\n  name: api\n  ports:\n    - port: 0100\n", 4, "service.ports[0].port", "leading zero, which YAML reads as octal"},
	{"port overflows int", "service:\n  name: api\n  ports:\n    - port: 9223372036854775808\n", 4, "service.ports[0].port", "out of range"},
	{"ports is a mapping", "service:\n  name: api\n  ports:\n    http: 8080\n", 4, "service.ports", "must be a list, got a mapping"},
	{"service is a list", "service:\n  - name: api\n", 2, "service", "must be a mapping, got a list"},
	{"document is a list", "- service:\n    name: api\n", 1, "", `must be a mapping with a "service" or "services" key, got a list`},
	{"services item is a string", "services:\n  - name: a\n  - b\n", 3, "services[1]", `must be a mapping, got string "b"`},
	{"service and services", "service:\n  name: a\nservices:\n  - name: b\n", 1, "", `use either "service" or "services"`},
	{"missing name", "service:\n  image: nginx\n", 1, "service.name", "is required"},
	{"empty name", "service:\n  name: \"\"\n", 2, "service.name", "is required"},
	{"upper-case name", "service:\n  name: API\n", 2, "service.name", `"API" is not a valid DNS-1123 label`},
	{"underscore in namespace", "service:\n  name: api\n  namespace: my_ns\n", 3, "service.namespace", "not a valid DNS-1123 label"},
	{"namespace too long", "service:\n  name: api\n  namespace: " + strings.Repeat("n", 64) + "\n", 3, "service.namespace", "at most 63 characters"},
	{"name is a number", "service:\n  name: 42\n", 2, "service.name", "must be a string, got integer 42"},
	{"duplicate key", "service:\n  name: a\n  name: b\n", 3, "service.name", `duplicate field "name" (first set on line 2)`},
	{"port zero", "service:\n  name: api\n  ports:\n    - port: 0\n", 4, "service.ports[0].port", "must be between 1 and 65535, got 0"},
	{"port too big", "service:\n  name: api\n  ports:\n    - port: 70000\n", 4, "service.ports[0].port", "must be between 1 and 65535, got 70000"},
	{"target port zero", "service:\n  name: api\n  ports:\n    - port: 80\n      targetPort: 0\n", 5, "service.ports[0].targetPort", "must be between 1 and 65535"},
	{"port missing", "service:\n  name: api\n  ports:\n    - name: http\n", 4, "service.ports[0].port", "is required"},
	{"unknown protocol", "service:\n  name: api\n  ports:\n    - port: 80\n      protocol: sctp\n", 5, "service.ports[0].protocol", `must be one of tcp, udp, got "sctp"`},
	{"protocol typo", "service:\n  name: api\n  ports:\n    - port: 80\n      protocol: tpc\n", 5, "service.ports[0].protocol", `(did you mean "tcp"?)`},
	{"port name too long", "service:\n  name: api\n  ports:\n    - name: averyverylongname\n      port: 80\n", 4, "service.ports[0].name", "not a valid port name"},
	{"port name without letters", "service:\n  name: api\n  ports:\n    - name: \"8080\"\n      port: 80\n", 4, "service.ports[0].name", "at least one letter"},
	{"duplicate port name", "service:\n  name: api\n  ports:\n    - {name: http, port: 80}\n    - {name: http, port: 81}\n", 5, "service.ports[1].name", "duplicate port name \"http\" (also ports[0])"},
	{"duplicate port and protocol", "service:\n  name: api\n  ports:\n    - port: 80\n    - port: 80\n      protocol: TCP\n", 5, "service.ports[1].port", "duplicate port 80/tcp (also ports[0])"},
	{"scale negative", "service:\n  name: api\n  scale: -1\n", 3, "service.scale", "must not be negative"},
	{"scale is text", "service:\n  name: api\n  scale: two\n", 3, "service.scale", "must be an integer"},
	{"to in an ingress rule", `service:
  name: api
  networkPolicy:
    ingress:
      - to:
          - service: web
`, 5, "service.networkPolicy.ingress[0].to", `ingress rules list peers under "from", not "to"`},
	{"from in an egress rule", `service:
  name: api
  networkPolicy:
    egress:
      - from: [{service: web}]
`, 5, "service.networkPolicy.egress[0].from", `egress rules list peers under "to", not "from"`},
	{"rule without peers", `service:
  name: api
  ports: [{name: http, port: 80}]
  networkPolicy:
    ingress:
      - ports: [http]
`, 6, "service.networkPolicy.ingress[0].from", "needs at least one peer"},
	{"ingress is a mapping", "service:\n  name: api\n  networkPolicy:\n    ingress:\n      from: []\n", 5, "service.networkPolicy.ingress", "must be a list, got a mapping"},
	{"peer with service and cidr", `service:
  name: api
  networkPolicy:
    ingress:
      - from:
          - service: web
            cidr: 10.0.0.0/8
`, 6, "service.networkPolicy.ingress[0].from[0]", `set either "service" or "cidr", not both`},
	{"empty peer", "service:\n  name: api\n  networkPolicy:\n    ingress:\n      - from:\n          - {}\n", 6, "ingress[0].from[0]", `needs "service" or "cidr"`},
	{"namespace on a cidr peer", `service:
  name: api
  networkPolicy:
    egress:
      - to:
          - cidr: 10.0.0.0/8
            namespace: jobs
`, 7, "service.networkPolicy.egress[0].to[0].namespace", `only applies to "service" peers`},
	{"peer service not a label", "service:\n  name: api\n  networkPolicy:\n    ingress:\n      - from: [{service: Web}]\n", 5, "ingress[0].from[0].service", `(did you mean "web"?)`},
	{"cidr host bits", `services:
  - name: a
  - name: b
    networkPolicy:
      ingress:
        - from:
            - service: a
            - cidr: 10.1.2.3/8
`, 8, "services[1].networkPolicy.ingress[0].from[1].cidr", `"10.1.2.3/8" has host bits set; did you mean 10.0.0.0/8?`},
	{"cidr unparsable", "service:\n  name: api\n  networkPolicy:\n    ingress:\n      - from: [{cidr: 10.0.0.0/33}]\n", 5, "from[0].cidr", "is not a CIDR prefix"},
	{"ingress port name unknown", `service:
  name: api
  ports: [{name: http, port: 80}]
  networkPolicy:
    ingress:
      - from: [{service: web}]
        ports: [https]
`, 7, "service.networkPolicy.ingress[0].ports[0]", `no port named "https" in this service (ports: http 80/tcp)`},
	{"ingress port number not ours", `service:
  name: api
  ports: [{name: http, port: 80}]
  networkPolicy:
    ingress:
      - from: [{service: web}]
        ports:
          - 80
          - 9090
`, 9, "ingress[0].ports[1]", "port 9090 is not a port of this service"},
	{"egress port name", `service:
  name: api
  ports: [{name: http, port: 80}]
  networkPolicy:
    egress:
      - to: [{service: db}]
        ports: [http]
`, 7, "service.networkPolicy.egress[0].ports[0]", "egress ports must be numbers"},
	{"egress port out of range", "service:\n  name: api\n  networkPolicy:\n    egress:\n      - to: [{service: db}]\n        ports: [\"70000\"]\n", 6, "egress[0].ports[0]", "must be between 1 and 65535, got 70000"},
	{"port ref empty", "service:\n  name: api\n  networkPolicy:\n    egress:\n      - to: [{service: db}]\n        ports: [\"\"]\n", 6, "egress[0].ports[0]", "got an empty string"},
	{"port ref boolean", "service:\n  name: api\n  networkPolicy:\n    egress:\n      - to: [{service: db}]\n        ports: [true]\n", 6, "egress[0].ports[0]", "must be a port name or number, got boolean true"},
	{"expose without host", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    port: 80\n", 4, "service.expose.host", "is required"},
	{"host upper case", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: API.example.com\n", 5, "service.expose.host", `must be lower case (did you mean "api.example.com"?)`},
	{"host single label", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: localhost\n", 5, "service.expose.host", "needs at least two labels"},
	{"host trailing dot", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: api.example.com.\n", 5, "service.expose.host", `must not end with a dot (did you mean "api.example.com"?)`},
	{"host is an IP", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: 192.0.2.1\n", 5, "service.expose.host", "is an IP address"},
	{"wildcard host with ACME", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: \"*.example.com\"\n    tls: {auto: true}\n", 5, "service.expose.host", "needs tls mode: manual"},
	{"expose port unknown", "service:\n  name: api\n  ports: [{name: http, port: 80}]\n  expose:\n    host: api.example.com\n    port: web\n", 6, "service.expose.port", `"web" is not a port of this service (ports: http 80/tcp)`},
	{"expose port ambiguous", "service:\n  name: api\n  ports: [{port: 80}, {port: 81}]\n  expose:\n    host: api.example.com\n", 4, "service.expose.port", "is required when the service has more than one port"},
	{"expose without ports", "service:\n  name: api\n  expose:\n    host: api.example.com\n", 3, "service.expose.port", "the service has no ports to expose"},
	{"expose a udp port", "service:\n  name: api\n  ports: [{name: dns, port: 53, protocol: udp}]\n  expose:\n    host: api.example.com\n    port: dns\n", 6, "service.expose.port", "ingress needs a tcp port"},
	{"tls auto and manual", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: api.example.com\n    tls:\n      auto: true\n      mode: manual\n      secret: cert\n", 7, "service.expose.tls.auto", "conflicts with mode: manual"},
	{"tls manual without secret", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: api.example.com\n    tls:\n      mode: manual\n", 6, "service.expose.tls.secret", "is required with mode: manual"},
	{"tls enables nothing", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: api.example.com\n    tls:\n      auto: false\n", 6, "service.expose.tls", "set auto: true (ACME) or mode: manual"},
	{"tls mode typo", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: api.example.com\n    tls:\n      mode: manul\n      secret: cert\n", 7, "service.expose.tls.mode", `(did you mean "manual"?)`},
	{"tls auto is text", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: api.example.com\n    tls:\n      auto: yes\n", 7, "service.expose.tls.auto", `must be true or false, got string "yes"`},
	{"secret with ACME", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: api.example.com\n    tls:\n      auto: true\n      secret: cert\n", 8, "service.expose.tls.secret", "is only used with mode: manual"},
	{"secret not a subdomain", "service:\n  name: api\n  ports: [{port: 80}]\n  expose:\n    host: api.example.com\n    tls:\n      mode: manual\n      secret: My_Cert\n", 8, "service.expose.tls.secret", "not a valid secret name"},
	{"alias", "service:\n  name: &n api\n  namespace: *n\n", 3, "service.namespace", "YAML aliases (*n) are not supported"},
	{"non-string key", "service:\n  name: api\n  ? [a, b]\n  : c\n", 3, "service", "must be a field name, got a list"},
	{"bad indentation", "service:\n  name: api\n   image: nginx\n", 3, "", "invalid YAML"},
	{"nested mapping in a plain value", "service:\n  name: api\n  image: x: y\n", 3, "", "invalid YAML: mapping values are not allowed"},
	{"unterminated quote", "service:\n  name: api\n  image: 'x\n\n", 3, "", "invalid YAML: found unexpected end of stream"},
	{"error in a later document", "service:\n  name: a\n---\nservice:\n  name: b\n  portz: []\n", 6, "service.portz", `(did you mean "ports"?)`},
	{"JSON wrong type", `{
  "service": {
    "name": "api",
    "ports": [
      {"port": 80},
      {"port": "81"}
    ]
  }
}`, 6, "service.ports[1].port", `must be an integer, got string "81"`},
	{"JSON typo", "{\n  \"service\": {\n    \"name\": \"api\",\n    \"imgae\": \"nginx\"\n  }\n}\n", 4, "service.imgae", `(did you mean "image"?)`},
	{"empty file", "", 0, "", "no service found"},
	{"comments only", "# nothing here\n---\n", 0, "", "no service found"},
	{"empty services list", "services: []\n", 0, "", "no service found"},
}

func TestSpecMalformed(t *testing.T) {
	for _, tc := range malformedSpecs {
		t.Run(tc.name, func(t *testing.T) {
			svcs, err := ParseFiles([]SourceFile{inline("bad.yaml", tc.input)})
			if svcs != nil {
				t.Errorf("got services %v along with the error", svcs)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("got %T %v, want an ErrorList", err, err)
			}
			if len(list) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(list), err)
			}
			e := list[0]
			if e.File != "bad.yaml" || e.Line != tc.line || !strings.Contains(e.Path, tc.path) || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got  %s\nwant bad.yaml:%d: path containing %q, message containing %q", e, tc.line, tc.path, tc.msg)
			}
		})
	}
}

func TestSpecFieldErrorFormat(t *testing.T) {
	_, err := ParseFiles([]SourceFile{inline("api.yaml", malformedSpecs[0].input)})
	const want = `api.yaml:7:3: service.netwrokPolicy: unknown field "netwrokPolicy" (did you mean "networkPolicy"?)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Column != 3 {
		t.Errorf("errors.As found %+v, want the FieldError at column 3", fe)
	}
}

func TestSpecReportsEveryProblem(t *testing.T) {
	input := `services:
  - name: Bad
    ports:
      - port: 0
  - name: ok
    scale: -2
    expose: {host: localhost}
`
	_, err := ParseFiles([]SourceFile{inline("many.yaml", input)})
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`many.yaml:2:11: services[0].name: "Bad" is not a valid DNS-1123 label`,
		`many.yaml:4:15: services[0].ports[0].port: must be between 1 and 65535, got 0`,
		`many.yaml:6:12: services[1].scale: must not be negative, got -2`,
		`many.yaml:7:5: services[1].expose.port: the service has no ports to expose`,
		`many.yaml:7:20: services[1].expose.host: "localhost" needs at least two labels`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("error %d:\ngot  %s\nwant %s…", i, lines[i], want[i])
		}
	}
}

func TestSpecAcrossFiles(t *testing.T) {
	good := inline("good.yaml", "service:\n  name: api\n")
	tests := []struct {
		name  string
		files []SourceFile
		want  []string // the exact errors
	}{{
		name:  "one bad file among good ones",
		files: []SourceFile{good, inline("bad.yaml", "service:\n  name: web\n  prots: []\n"), inline("other.yaml", "service: {name: db}")},
		want:  []string{`bad.yaml:3:3: service.prots: unknown field "prots" (did you mean "ports"?)`},
	}, {
		name:  "duplicate across files",
		files: []SourceFile{good, inline("again.yaml", "service: {name: web}\n---\nservice:\n  namespace: default\n  name: api\n")},
		want:  []string{"again.yaml:5:9: service.name: duplicate service default/api, already defined at good.yaml:2:9"},
	}, {
		name:  "no phantom duplicate from a broken namespace",
		files: []SourceFile{good, inline("ns.yaml", "service:\n  name: api\n  namespace: [x]\n")},
		want:  []string{"ns.yaml:3:14: service.namespace: must be a string, got a list"},
	}, {
		name:  "duplicate within a list",
		files: []SourceFile{inline("list.yaml", "services:\n  - name: api\n    namespace: x\n  - {namespace: x, name: api}\n")},
		want:  []string{"list.yaml:4:26: services[1].name: duplicate service x/api, already defined at list.yaml:2:11"},
	}, {
		name:  "empty file among good ones",
		files: []SourceFile{good, inline("empty.yaml", "\n")},
		want:  []string{`empty.yaml: no service found; expected a "service:" or "services:" document`},
	}, {
		name:  "no files",
		files: nil,
		want:  []string{"no service files given"},
	}, {
		name:  "file too large",
		files: []SourceFile{good, {Name: "huge.yaml", Data: make([]byte, MaxFileSize+1)}},
		want:  []string{"huge.yaml: file is 1048577 bytes; the limit is 1048576 (1 MiB)"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svcs, err := ParseFiles(tc.files)
			if svcs != nil {
				t.Errorf("got services %v along with the error", svcs)
			}
			if err == nil || err.Error() != strings.Join(tc.want, "\n") {
				t.Errorf("got  %v\nwant %s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// A file's namespace (rune cast -n) is that of the services naming none and
// must agree with those naming one; items and status, what rune get prints
// around services, are read back as the services they hold.
func TestSpecFileNamespaceAndGetOutput(t *testing.T) {
	svcs, err := ParseFiles([]SourceFile{
		{Name: "a.yaml", Data: []byte("service: {name: api}\n---\nservice: {name: db, namespace: staging}\n"), Namespace: "staging"},
		{Name: "got.yaml", Data: []byte("items:\n  - service: {name: web}\n    status: {vip: 10.96.0.7}\n  - services: [{name: job, namespace: batch}]\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range svcs {
		got = append(got, s.Namespace+"/"+s.Name)
	}
	if strings.Join(got, " ") != "staging/api staging/db default/web batch/job" {
		t.Errorf("services %v", got)
	}
	for _, tc := range []struct {
		file SourceFile
		want string
	}{
		{SourceFile{Name: "b.yaml", Data: []byte("service:\n  name: db\n  namespace: prod\n"), Namespace: "staging"}, `b.yaml:3:14: service.namespace: is "prod", but the cast is into namespace "staging"`},
		{SourceFile{Name: "c.yaml", Data: []byte("service: {name: db}\n"), Namespace: "Bad"}, `c.yaml: namespace "Bad" is not a valid DNS-1123 label: `},
		{SourceFile{Name: "d.yaml", Data: []byte("items:\n  - {status: {vip: 10.96.0.7}}\n")}, `d.yaml: no service found`},
		{SourceFile{Name: "e.yaml", Data: []byte("items:\n  - servce: {name: x}\n")}, `e.yaml:2:5: items[0].servce: unknown field "servce" (did you mean "service"?)`},
	} {
		if _, err := ParseFiles([]SourceFile{tc.file}); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.file.Name, err, tc.want)
		}
	}
}

// TestSpecHostileInput checks that inputs built to exhaust memory or
// stack fail fast with an error instead.
func TestSpecHostileInput(t *testing.T) {
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for c := 'b'; c <= 'j'; c++ {
		prev := string(c - 1)
		laughs += string(c) + ": &" + string(c) + " [*" + strings.Repeat(prev+", *", 9) + prev + "]\n"
	}
	manyPortRefs := func() string {
		var b strings.Builder
		b.WriteString("service:\n  name: api\n  ports:\n")
		for i := 1; i <= 20000; i++ {
			fmt.Fprintf(&b, "    - port: %d\n", i)
		}
		b.WriteString("  networkPolicy:\n    ingress:\n      - from: [{service: web}]\n        ports: [")
		b.WriteString(strings.Repeat("x, ", 20000))
		b.WriteString("x]\n")
		return b.String()
	}()
	tests := []struct {
		name, input, msg string
	}{
		{"billion laughs", laughs + "service:\n  name: api\n  ports: *j\n", "aliases"},
		{"deep nesting", "service: " + strings.Repeat("[", 100000), "invalid YAML"},
		{"long unknown key", "service:\n  ? " + strings.Repeat("k", 1<<19) + "\n  : 1\n  name: api\n", "unknown field"},
		{"long value", "service:\n  name: " + strings.Repeat("N", 1<<19) + "\n", "not a valid DNS-1123 label"},
		{"many bad port references", manyPortRefs, "no port named"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFiles([]SourceFile{inline("hostile.yaml", tc.input)})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %.300v, want an error containing %q", err, tc.msg)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if len(line) > 512 {
					t.Fatalf("error line is %d bytes; user text should be clipped: %.300s…", len(line), line)
				}
			}
		})
	}
}

func TestSpecStopsAfterTooManyErrors(t *testing.T) {
	input := "services: [" + strings.Repeat("{}, ", 250000) + "{}]"
	_, err := ParseFiles([]SourceFile{inline("many.yaml", input), inline("never-read.yaml", "")})
	var list ErrorList
	if !errors.As(err, &list) || len(list) != maxErrors+1 {
		t.Fatalf("got %d errors, want %d and a summary", len(list), maxErrors)
	}
	if got, want := list[0].Error(), "many.yaml:1:12: services[0].name: is required"; got != want {
		t.Errorf("first error %q, want %q", got, want)
	}
	if got, want := list[maxErrors].Error(), "too many errors; stopped after 100"; got != want {
		t.Errorf("last error %q, want %q", got, want)
	}
}
