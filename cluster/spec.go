package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds each spec file: the YAML parser holds the whole node tree
// in memory, and no real service spec comes anywhere near this.
const MaxFileSize = 1 << 20

// maxErrors stops ParseFiles early: past this many problems the input is
// not a spec with mistakes but something else, and listing every problem
// in a megabyte of it would only cost time and memory.
const maxErrors = 100

// SourceFile is one spec file as read from disk, an API request or stdin.
// Name only appears in error messages.
type SourceFile struct {
	Name string
	Data []byte
	// Namespace is that of the services in the file that name none
	// (default "default"); one that names another is an error.
	Namespace string
}

// FieldError is one problem in a spec file. Line and Column are 1-based and
// zero when the problem is with the file as a whole; Path is the field path
// from the document root, like service.ports[1].port.
type FieldError struct {
	File         string
	Line, Column int
	Path         string
	Msg          string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem ParseFiles found, so that an operator can fix
// them all in one pass instead of one per attempt.
type ErrorList []*FieldError

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find the individual *FieldError values.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// ParseFiles decodes and validates the services in files. Each file holds
// `service:` or `services:` documents, in YAML (several separated by ---) or
// JSON. Either every file is valid and every service is returned with its
// defaults applied, or nothing is returned and the error is an ErrorList of
// every problem found, up to a hundred.
func ParseFiles(files []SourceFile) ([]Service, error) {
	if len(files) == 0 {
		return nil, ErrorList{{Msg: "no service files given"}}
	}
	var (
		services  []located
		errs      ErrorList
		truncated bool
	)
	for _, f := range files {
		s, e, full := parseFile(f, maxErrors-len(errs))
		services = append(services, s...)
		errs = append(errs, e...)
		if full {
			truncated = true
			break
		}
	}
	first := make(map[NamespacedName]FieldError, len(services))
	exposed := map[string]*located{} // expose.host → the first service exposing it
	for i := range services {
		l := &services[i]
		if truncated {
			break
		}
		if !l.named {
			continue
		}
		key := NamespacedName{Namespace: l.svc.Namespace, Name: l.svc.Name}
		if prev, dup := first[key]; dup {
			e := l.at
			e.Msg = fmt.Sprintf("duplicate service %s, already defined at %s:%d:%d", key, prev.File, prev.Line, prev.Column)
			errs = append(errs, &e)
			truncated = len(errs) >= maxErrors
			continue
		}
		first[key] = l.at
		if l.svc.Expose == nil || l.svc.Expose.Host == "" {
			continue
		}
		// The ingress can route a host to one service only.
		if prev, dup := exposed[l.svc.Expose.Host]; dup {
			e := l.hostAt
			e.Msg = fmt.Sprintf("host %s of service %s is already exposed by service %s (%s:%d:%d); a host can route to one service only",
				quote(l.svc.Expose.Host), key, prev.svc.key(), prev.hostAt.File, prev.hostAt.Line, prev.hostAt.Column)
			errs = append(errs, &e)
			truncated = len(errs) >= maxErrors
			continue
		}
		exposed[l.svc.Expose.Host] = l
	}
	if truncated {
		errs = append(errs, &FieldError{Msg: fmt.Sprintf("too many errors; stopped after %d", len(errs))})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	out := make([]Service, len(services))
	for i, l := range services {
		out[i] = l.svc
	}
	return out, nil
}

// located is a decoded service and where it is named and its expose.host
// set, for duplicate reports.
type located struct {
	svc    Service
	at     FieldError
	hostAt FieldError
	// named is whether the name and namespace decoded; a defaulted namespace
	// standing in for a broken one would report phantom duplicates.
	named bool
}

// yamlLine recovers the position that the YAML parser only reports as text.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseFile decodes the services in f, stopping early once it has found
// budget errors and reporting whether it did.
func parseFile(f SourceFile, budget int) ([]located, ErrorList, bool) {
	if len(f.Data) > MaxFileSize {
		return nil, ErrorList{{File: f.Name, Msg: fmt.Sprintf("file is %d bytes; the limit is %d (1 MiB)", len(f.Data), MaxFileSize)}}, budget <= 1
	}
	if problem := dns1123LabelProblem(f.Namespace); f.Namespace != "" && problem != "" {
		return nil, ErrorList{{File: f.Name, Msg: fmt.Sprintf("namespace %s is not a valid DNS-1123 label: %s", quote(f.Namespace), problem)}}, budget <= 1
	}
	d := &decoder{file: f.Name, namespace: f.Namespace, budget: budget}
	var out []located
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	for !d.full() {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			e := &FieldError{File: f.Name, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				e.Line, _ = strconv.Atoi(m[1])
				e.Msg = "invalid YAML: " + m[2]
			}
			d.report(e)
			break // the parser cannot resynchronise after an error
		}
		out = append(out, d.document(&doc)...)
	}
	if len(out) == 0 && len(d.errs) == 0 {
		d.report(&FieldError{File: f.Name, Msg: `no service found; expected a "service:" or "services:" document`})
	}
	slices.SortStableFunc(d.errs, func(a, b *FieldError) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return out, d.errs, d.full()
}

// decoder walks yaml.Node trees rather than using yaml.Unmarshal so that
// every error carries a line, a column and a field path, unknown fields are
// caught at every level, and aliases are never expanded.
//
// Decoding checks shape and types; validation then checks meaning on the
// typed Service and finds its positions again through nodes.
type decoder struct {
	file      string
	namespace string // of services that name none; "" for default
	errs      ErrorList
	budget    int // how many errors to collect before giving up
	// Per document: the key and value nodes at each field path, for
	// validation to report at.
	keys, nodes map[string]*yaml.Node
	// Per document: the paths that failed to decode, and those with a
	// failure somewhere inside, so validation stays quiet about what is
	// already reported.
	failed, within map[string]bool
}

// field is a known mapping key and how to decode its value.
type field struct {
	name   string
	decode func(n *yaml.Node, path string)
}

func (d *decoder) document(doc *yaml.Node) []located {
	d.keys, d.nodes = map[string]*yaml.Node{}, map[string]*yaml.Node{}
	d.failed, d.within = map[string]bool{}, map[string]bool{}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil // an empty document, as left by a stray ---
	}
	root := doc.Content[0]
	d.nodes[""] = root
	return d.object(root, "")
}

// object decodes a document: a service, a list of services, or a list of
// documents under items (what `rune get -o yaml` prints). status is what
// runed assigned, which get prints beside the spec; cast ignores it.
func (d *decoder) object(n *yaml.Node, path string) []located {
	var out []located
	one := func(n *yaml.Node, path string) { out = append(out, d.service(n, path)) }
	if !d.expect(n, path, yaml.MappingNode, `a mapping with a "service" or "services" key`) {
		return nil
	}
	d.mapping(n, path, field{"service", one}, field{"services", d.each(one)},
		field{"items", d.each(func(n *yaml.Node, path string) { out = append(out, d.object(n, path)...) })},
		field{"status", func(*yaml.Node, string) {}})
	if d.has(join(path, "service")) && d.has(join(path, "services")) {
		d.fail(n, path, `use either "service" or "services", not both`)
	}
	return out
}

func (d *decoder) service(n *yaml.Node, path string) located {
	var s Service
	d.mapping(n, path,
		field{"name", d.str(&s.Name)},
		field{"namespace", d.str(&s.Namespace)},
		field{"image", d.str(&s.Image)},
		field{"scale", func(n *yaml.Node, path string) {
			var v int
			if d.int(n, path, &v) {
				s.Scale = &v
			}
		}},
		field{"ports", d.each(func(n *yaml.Node, path string) {
			// Append even what fails to decode, so ports[i] in a path is s.Ports[i].
			s.Ports = append(s.Ports, d.port(n, path))
		})},
		field{"networkPolicy", func(n *yaml.Node, path string) { s.NetworkPolicy = d.policy(n, path) }},
		field{"expose", func(n *yaml.Node, path string) { s.Expose = d.expose(n, path) }},
	)
	d.validate(&s, path)
	at, hostAt := d.locate(path+".name"), d.locate(path+".expose.host")
	return located{
		svc:    s,
		at:     FieldError{File: d.file, Line: at.Line, Column: at.Column, Path: path + ".name"},
		hostAt: FieldError{File: d.file, Line: hostAt.Line, Column: hostAt.Column, Path: path + ".expose.host"},
		named:  s.Name != "" && d.clean(path+".name") && d.clean(path+".namespace"),
	}
}

func (d *decoder) port(n *yaml.Node, path string) Port {
	var p Port
	d.mapping(n, path,
		field{"name", d.str(&p.Name)},
		field{"port", func(n *yaml.Node, path string) { d.int(n, path, &p.Port) }},
		field{"protocol", d.str((*string)(&p.Protocol))},
		field{"targetPort", func(n *yaml.Node, path string) { d.int(n, path, &p.TargetPort) }},
	)
	return p
}

func (d *decoder) policy(n *yaml.Node, path string) *NetworkPolicy {
	var np NetworkPolicy
	if !d.mapping(n, path,
		field{"ingress", func(n *yaml.Node, path string) { np.HasIngress, np.Ingress = true, d.rules(n, path) }},
		field{"egress", func(n *yaml.Node, path string) { np.HasEgress, np.Egress = true, d.rules(n, path) }},
	) {
		return nil
	}
	return &np
}

// rules is never nil: a present ingress or egress key means default-deny.
func (d *decoder) rules(n *yaml.Node, path string) []PolicyRule {
	rules := []PolicyRule{}
	d.each(func(n *yaml.Node, path string) {
		var r PolicyRule
		d.mapping(n, path,
			field{"from", d.each(func(n *yaml.Node, path string) { r.From = append(r.From, d.peer(n, path)) })},
			field{"to", d.each(func(n *yaml.Node, path string) { r.To = append(r.To, d.peer(n, path)) })},
			field{"ports", d.each(func(n *yaml.Node, path string) {
				var ref PortRef
				d.portRef(n, path, &ref)
				r.Ports = append(r.Ports, ref)
			})},
		)
		rules = append(rules, r)
	})(n, path)
	return rules
}

func (d *decoder) peer(n *yaml.Node, path string) Peer {
	var p Peer
	d.mapping(n, path,
		field{"service", d.str(&p.Service)},
		field{"namespace", d.str(&p.Namespace)},
		field{"cidr", d.str(&p.CIDR)},
	)
	return p
}

func (d *decoder) expose(n *yaml.Node, path string) *Expose {
	var e Expose
	if !d.mapping(n, path,
		field{"host", d.str(&e.Host)},
		field{"port", func(n *yaml.Node, path string) {
			var ref PortRef
			if d.portRef(n, path, &ref) {
				e.Port = ref.String()
			}
		}},
		field{"tls", func(n *yaml.Node, path string) {
			var t TLS
			if d.mapping(n, path,
				field{"auto", d.bool(&t.Auto)},
				field{"mode", d.str(&t.Mode)},
				field{"secret", d.str(&t.Secret)},
			) {
				e.TLS = &t
			}
		}},
	) {
		return nil
	}
	return &e
}

// mapping decodes the known fields of n, reporting unknown and repeated keys.
// A null n is an absent block and reports false, like a type error.
func (d *decoder) mapping(n *yaml.Node, path string, fields ...field) bool {
	if isNull(n) || !d.expect(n, path, yaml.MappingNode, "a mapping") {
		return false
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.expect(k, path, yaml.ScalarNode, "a field name") {
			continue
		}
		p := join(path, clip(k.Value))
		if first, dup := seen[k.Value]; dup {
			d.fail(k, p, fmt.Sprintf("duplicate field %s (first set on line %d)", quote(k.Value), first.Line))
			continue
		}
		seen[k.Value] = k
		j := slices.IndexFunc(fields, func(f field) bool { return f.name == k.Value })
		if j < 0 {
			d.fail(k, p, unknownField(k.Value, fields))
			continue
		}
		d.keys[p], d.nodes[p] = k, v
		fields[j].decode(v, p)
	}
	return true
}

// each returns a decoder for a list that hands every item to item. A null
// list is an empty one.
func (d *decoder) each(item func(n *yaml.Node, path string)) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if isNull(n) || !d.expect(n, path, yaml.SequenceNode, "a list") {
			return
		}
		for i, c := range n.Content {
			if d.full() {
				return // the rest of a long list would be wasted work
			}
			p := fmt.Sprintf("%s[%d]", path, i)
			d.nodes[p] = c
			item(c, p)
		}
	}
}

func (d *decoder) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if v, ok := d.scalar(n, path, "!!str", "a string"); ok {
			*dst = v
		}
	}
}

func (d *decoder) bool(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if _, ok := d.scalar(n, path, "!!bool", "true or false"); !ok {
			return
		}
		if err := n.Decode(dst); err != nil { // only an explicit !!bool tag on other text
			d.fail(n, path, "must be true or false, got "+describe(n))
		}
	}
}

func (d *decoder) int(n *yaml.Node, path string, dst *int) bool {
	v, ok := d.scalar(n, path, "!!int", "an integer")
	if !ok {
		return false
	}
	// YAML 1.1 reads 0100 as octal 64, which no one writing a port means.
	if digits := strings.TrimLeft(v, "+-"); len(digits) > 1 && digits[0] == '0' && '0' <= digits[1] && digits[1] <= '9' {
		d.fail(n, path, fmt.Sprintf("integer %s has a leading zero, which YAML reads as octal; write it without the zero, or as 0o%s for octal", clip(v), clip(digits[1:])))
		return false
	}
	if err := n.Decode(dst); err != nil {
		d.fail(n, path, fmt.Sprintf("integer %s is out of range", clip(n.Value)))
		return false
	}
	return true
}

// portRef decodes a port name or number; digits are a number even when
// quoted, which port names cannot be since they need a letter.
func (d *decoder) portRef(n *yaml.Node, path string, dst *PortRef) bool {
	if isNull(n) || !d.expect(n, path, yaml.ScalarNode, "a port name or number") {
		return false
	}
	switch n.ShortTag() {
	case "!!int":
		return d.int(n, path, &dst.Number)
	case "!!str":
		ref, err := parsePortRef(n.Value)
		if err != nil {
			d.fail(n, path, err.Error())
			return false
		}
		*dst = ref
		return true
	}
	d.fail(n, path, "must be a port name or number, got "+describe(n))
	return false
}

func parsePortRef(s string) (PortRef, error) {
	if s == "" {
		return PortRef{}, errors.New("must be a port name or number, got an empty string")
	}
	if strings.Trim(s, "0123456789") != "" {
		return PortRef{Name: s}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return PortRef{}, fmt.Errorf("port %s is out of range", clip(s))
	}
	return PortRef{Number: n}, nil
}

// scalar returns the text of n if it is a scalar with the given tag. Null is
// an absent value and reports false without an error.
func (d *decoder) scalar(n *yaml.Node, path, tag, want string) (string, bool) {
	if isNull(n) || !d.expect(n, path, yaml.ScalarNode, want) {
		return "", false
	}
	if n.ShortTag() != tag {
		d.fail(n, path, fmt.Sprintf("must be %s, got %s", want, describe(n)))
		return "", false
	}
	return n.Value, true
}

// expect reports whether n is of the wanted kind. Aliases are refused
// outright, so that no input can expand into more than it spells out.
func (d *decoder) expect(n *yaml.Node, path string, kind yaml.Kind, want string) bool {
	switch n.Kind {
	case kind:
		return true
	case yaml.AliasNode:
		d.fail(n, path, "YAML aliases (*"+clip(n.Value)+") are not supported")
	default:
		d.fail(n, path, fmt.Sprintf("must be %s, got %s", want, describe(n)))
	}
	return false
}

// fail records a decoding error at n.
func (d *decoder) fail(n *yaml.Node, path, msg string) {
	d.failed[path] = true
	for p := path; p != ""; {
		p = parent(p)
		d.within[p] = true
	}
	d.report(&FieldError{File: d.file, Line: n.Line, Column: n.Column, Path: path, Msg: msg})
}

func (d *decoder) report(e *FieldError) {
	if !d.full() {
		d.errs = append(d.errs, e)
	}
}

func (d *decoder) full() bool { return len(d.errs) >= d.budget }

// validate checks what decoding cannot see in a single value, and applies
// the defaults. It runs on services that failed to decode as well, so that
// one pass reports everything; invalid skips paths already reported.
func (d *decoder) validate(s *Service, path string) {
	if s.Name == "" {
		d.invalid(path+".name", "is required")
	} else {
		d.label(path+".name", s.Name)
	}
	switch {
	case s.Namespace == "" && d.namespace != "":
		s.Namespace = d.namespace
	case s.Namespace == "":
		s.Namespace = "default"
	case d.namespace != "" && s.Namespace != d.namespace:
		// As kubectl apply -n: a document may not contradict the namespace it is cast into.
		d.invalid(path+".namespace", "is %q, but the cast is into namespace %q", s.Namespace, d.namespace)
	default:
		d.label(path+".namespace", s.Namespace)
	}
	if s.Scale != nil && *s.Scale < 0 {
		d.invalid(path+".scale", "must not be negative, got %d", *s.Scale)
	}
	ports := d.validatePorts(s, path)
	// References to ports are only checked against a port list that decoded
	// cleanly; otherwise they would repeat its errors in other words.
	if !d.clean(path + ".ports") {
		ports = nil
	}
	if np := s.NetworkPolicy; np != nil {
		d.validateRules(s, ports, np.Ingress, path+".networkPolicy.ingress", true)
		d.validateRules(s, ports, np.Egress, path+".networkPolicy.egress", false)
	}
	if s.Expose != nil {
		d.validateExpose(s, ports, path+".expose")
	}
}

// portIndex maps a port reference, by name or by number, to the indexes
// of the service ports it selects: one per name, one per number and
// protocol. A nil portIndex means the ports are unknown.
type portIndex map[PortRef][]int

func (d *decoder) validatePorts(s *Service, path string) portIndex {
	idx := portIndex{}
	for i := range s.Ports {
		p := &s.Ports[i]
		pp := fmt.Sprintf("%s.ports[%d]", path, i)
		p.Protocol = Protocol(d.oneOf(pp+".protocol", string(p.Protocol), string(TCP), string(UDP)))
		if p.Protocol == "" {
			p.Protocol = TCP
		}
		if d.present(pp + ".port") {
			d.portNumber(pp+".port", p.Port)
		} else {
			d.invalid(pp+".port", "is required")
		}
		if d.present(pp + ".targetPort") {
			d.portNumber(pp+".targetPort", p.TargetPort)
		} else {
			p.TargetPort = p.Port
		}
		if p.Name != "" {
			byName := PortRef{Name: p.Name}
			if prev := idx[byName]; prev != nil {
				d.invalid(pp+".name", "duplicate port name %s (also ports[%d])", quote(p.Name), prev[0])
			} else {
				if !isPortName(p.Name) {
					d.invalid(pp+".name", "%s is not a valid port name (at most 15 lowercase letters, digits and '-', with at least one letter, no leading, trailing or double '-')%s",
						quote(p.Name), caseHint(p.Name, isPortName))
				}
				idx[byName] = []int{i}
			}
		}
		if p.Port == 0 || (p.Protocol != TCP && p.Protocol != UDP) {
			continue // already reported; indexing it would only add noise
		}
		byNumber := PortRef{Number: p.Port}
		if j := slices.IndexFunc(idx[byNumber], func(j int) bool { return s.Ports[j].Protocol == p.Protocol }); j >= 0 {
			d.invalid(pp+".port", "duplicate port %d/%s (also ports[%d])", p.Port, p.Protocol, idx[byNumber][j])
		} else {
			idx[byNumber] = append(idx[byNumber], i)
		}
	}
	return idx
}

// validateRules checks one direction of a policy. Ingress port references
// are to this service's own ports; egress ones are to ports of destinations
// this service cannot name, so only numbers make sense there.
func (d *decoder) validateRules(s *Service, ports portIndex, rules []PolicyRule, path string, ingress bool) {
	direction, key, wrongKey := "ingress", "from", "to"
	if !ingress {
		direction, key, wrongKey = "egress", "to", "from"
	}
	for i := range rules {
		r := &rules[i]
		rp := fmt.Sprintf("%s[%d]", path, i)
		peers := r.From
		if !ingress {
			peers = r.To
		}
		switch {
		case d.has(rp + "." + wrongKey):
			d.invalid(rp+"."+wrongKey, "%s rules list peers under %q, not %q", direction, key, wrongKey)
		case len(peers) == 0:
			// An empty peer list means "everyone" to some and "no one" to
			// others; make the author spell out which.
			d.invalid(rp+"."+key, "needs at least one peer (to allow everyone, use cidr: 0.0.0.0/0 and cidr: ::/0)")
		}
		for j := range peers {
			d.validatePeer(&peers[j], fmt.Sprintf("%s.%s[%d]", rp, key, j), s.Namespace)
		}
		for j, ref := range r.Ports {
			pp := fmt.Sprintf("%s.ports[%d]", rp, j)
			switch {
			case ref.Name != "" && !ingress:
				d.invalid(pp, "egress ports must be numbers; port names refer to this service's own ports, got %s", quote(ref.Name))
			case ref.Name != "":
				if ports != nil && ports[ref] == nil {
					d.invalid(pp, "no port named %s in this service (%s)", quote(ref.Name), portList(s.Ports))
				}
			default:
				if d.portNumber(pp, ref.Number) && ingress && ports != nil && ports[ref] == nil {
					d.invalid(pp, "port %d is not a port of this service (%s)", ref.Number, portList(s.Ports))
				}
			}
		}
	}
}

// validatePeer defaults a service peer's namespace to the policy owner's,
// as a bare service name is read within one's own namespace everywhere else.
func (d *decoder) validatePeer(p *Peer, path, ownNamespace string) {
	switch {
	case p.Service != "" && p.CIDR != "":
		d.invalid(path, `set either "service" or "cidr", not both`)
	case p.Service == "" && p.CIDR == "":
		d.invalid(path, `needs "service" or "cidr"`)
	}
	if p.Service != "" {
		d.label(path+".service", p.Service)
		if p.Namespace == "" {
			p.Namespace = ownNamespace
		} else {
			d.label(path+".namespace", p.Namespace)
		}
	} else if p.Namespace != "" {
		d.invalid(path+".namespace", `only applies to "service" peers`)
	}
	if p.CIDR == "" {
		return
	}
	prefix, err := netip.ParsePrefix(p.CIDR)
	switch {
	case err != nil:
		d.invalid(path+".cidr", "%s is not a CIDR prefix like 10.0.0.0/8 or fd00::/8", quote(p.CIDR))
	case prefix != prefix.Masked():
		d.invalid(path+".cidr", "%s has host bits set; did you mean %s?", quote(p.CIDR), prefix.Masked())
	default:
		p.CIDR = prefix.String()
	}
}

// validateExpose defaults the port to the service's only port and stores a
// number as its canonical text.
func (d *decoder) validateExpose(s *Service, ports portIndex, path string) {
	e := s.Expose
	wildcard := false
	if e.Host == "" {
		d.invalid(path+".host", "is required")
	} else if w, problem := hostProblem(e.Host); problem != "" {
		d.invalid(path+".host", "%s", problem)
	} else {
		wildcard = w
	}
	manual := e.TLS != nil && d.validateTLS(e.TLS, path+".tls")
	if wildcard && !manual && d.clean(path+".tls") {
		d.invalid(path+".host", "wildcard host %s needs tls mode: manual; ACME HTTP-01 cannot issue wildcard certificates", quote(e.Host))
	}
	if ports == nil {
		return
	}
	pp := path + ".port"
	if e.Port == "" {
		switch len(s.Ports) {
		case 0:
			d.invalid(pp, "the service has no ports to expose")
		case 1:
			p := s.Ports[0]
			if e.Port = p.Name; e.Port == "" {
				e.Port = strconv.Itoa(p.Port)
			}
			d.tcp(pp, p)
		default:
			d.invalid(pp, "is required when the service has more than one port (%s)", portList(s.Ports))
		}
		return
	}
	ref, err := parsePortRef(e.Port)
	if err != nil {
		d.invalid(pp, "%v", err)
		return
	}
	e.Port = ref.String()
	found := ports[ref]
	if found == nil {
		d.invalid(pp, "%s is not a port of this service (%s)", quote(e.Port), portList(s.Ports))
		return
	}
	// A number can select both a tcp and a udp port; ingress uses the tcp one.
	i := slices.IndexFunc(found, func(i int) bool { return s.Ports[i].Protocol == TCP })
	d.tcp(pp, s.Ports[found[max(i, 0)]])
}

// tcp checks that ingress, which speaks HTTP, can use p.
func (d *decoder) tcp(path string, p Port) {
	if p.Protocol != TCP {
		d.invalid(path, "port %d is %s; ingress needs a tcp port", p.Port, p.Protocol)
	}
}

// validateTLS normalises `mode: acme` and `auto: true` to both being set,
// and reports whether the certificate is managed by hand.
func (d *decoder) validateTLS(t *TLS, path string) (manual bool) {
	t.Mode = d.oneOf(path+".mode", t.Mode, "acme", "manual")
	switch {
	case t.Mode != "" && t.Mode != "acme" && t.Mode != "manual":
		return false // already reported
	case t.Mode == "manual" && t.Auto:
		d.invalid(path+".auto", "auto: true (ACME) conflicts with mode: manual")
	case t.Mode == "acme" && d.present(path+".auto") && !t.Auto:
		d.invalid(path+".auto", "auto: false conflicts with mode: acme")
	case t.Mode == "" && !t.Auto:
		d.invalid(path, "set auto: true (ACME) or mode: manual with a secret")
	}
	if t.Mode == "manual" {
		if t.Secret == "" {
			d.invalid(path+".secret", "is required with mode: manual")
		} else if !isSubdomain(t.Secret) {
			d.invalid(path+".secret", "%s is not a valid secret name (lowercase DNS-1123 subdomain)%s", quote(t.Secret), caseHint(t.Secret, isSubdomain))
		}
		return true
	}
	if t.Secret != "" {
		d.invalid(path+".secret", "is only used with mode: manual")
	}
	if t.Auto || t.Mode == "acme" {
		t.Auto, t.Mode = true, "acme"
	}
	return false
}

// oneOf lower-cases v and checks it against allowed. An empty v is left for
// the caller to default.
func (d *decoder) oneOf(path, v string, allowed ...string) string {
	lower := strings.ToLower(v)
	if v != "" && !slices.Contains(allowed, lower) {
		d.invalid(path, "must be one of %s, got %s%s", strings.Join(allowed, ", "), quote(v), hint(suggest(v, allowed)))
	}
	return lower
}

func (d *decoder) portNumber(path string, v int) bool {
	if v < 1 || v > 65535 {
		d.invalid(path, "must be between 1 and 65535, got %d", v)
		return false
	}
	return true
}

func (d *decoder) label(path, v string) {
	if problem := dns1123LabelProblem(v); problem != "" {
		d.invalid(path, "%s is not a valid DNS-1123 label: %s%s", quote(v), problem, caseHint(v, isLabel))
	}
}

// invalid records a validation error at path, unless decoding has already
// reported something at, in or around it.
func (d *decoder) invalid(path, format string, args ...any) {
	if !d.clean(path) {
		return
	}
	n := d.locate(path)
	d.report(&FieldError{File: d.file, Line: n.Line, Column: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// locate finds the node to report a problem at path at: a block's key
// rather than its first entry, and the nearest enclosing field when path
// was not written. It never fails, as the document root is under "".
func (d *decoder) locate(path string) *yaml.Node {
	for {
		if n, ok := d.nodes[path]; ok {
			if k := d.keys[path]; k != nil && (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) {
				return k
			}
			return n
		}
		path = parent(path)
	}
}

// has reports whether the field at path was written, even as null.
func (d *decoder) has(path string) bool {
	_, ok := d.nodes[path]
	return ok
}

// present reports whether the field at path was written with a value.
func (d *decoder) present(path string) bool {
	n, ok := d.nodes[path]
	return ok && !isNull(n)
}

// clean reports whether nothing at, in or around path failed to decode.
func (d *decoder) clean(path string) bool {
	if d.within[path] {
		return false
	}
	for p := path; ; p = parent(p) {
		if d.failed[p] {
			return false
		}
		if p == "" {
			return true
		}
	}
}

// portList describes the ports a reference may name, for error messages.
func portList(ports []Port) string {
	if len(ports) == 0 {
		return "it has no ports"
	}
	const limit = 8 // enough to spot the right one; a hostile list must not make every message huge
	var names []string
	for _, p := range ports[:min(len(ports), limit)] {
		name := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if p.Name != "" {
			name = p.Name + " " + name
		}
		names = append(names, name)
	}
	if len(ports) > limit {
		names = append(names, "…")
	}
	return "ports: " + strings.Join(names, ", ")
}

func isLabel(s string) bool { return dns1123LabelProblem(s) == "" }

// isPortName follows the IANA service-name rules, like Kubernetes. The
// required letter keeps names apart from numbers in port references.
func isPortName(s string) bool {
	return len(s) <= 15 && isLabel(s) && !strings.Contains(s, "--") &&
		strings.ContainsFunc(s, func(r rune) bool { return 'a' <= r && r <= 'z' })
}

func isSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if !isLabel(l) {
			return false
		}
	}
	return true
}

// hostProblem explains why h cannot be an ingress host name, or returns "".
func hostProblem(h string) (wildcard bool, problem string) {
	name, wildcard := strings.CutPrefix(h, "*.")
	switch {
	case strings.HasSuffix(h, "."):
		return wildcard, fmt.Sprintf("%s must not end with a dot%s", quote(h), hint(strings.TrimSuffix(h, ".")))
	case strings.ToLower(h) != h:
		return wildcard, fmt.Sprintf("%s must be lower case%s", quote(h), hint(strings.ToLower(h)))
	case isAddr(h):
		return wildcard, fmt.Sprintf("%s is an IP address; the host must be a DNS name", quote(h))
	case !isSubdomain(name):
		return wildcard, fmt.Sprintf(`%s is not a valid host name (DNS labels separated by dots, at most 253 characters; only a leading "*." wildcard)`, quote(h))
	case !strings.Contains(name, "."):
		return wildcard, fmt.Sprintf("%s needs at least two labels, like api.example.com", quote(h))
	}
	return wildcard, ""
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func unknownField(name string, fields []field) string {
	known := make([]string, len(fields))
	for i, f := range fields {
		known[i] = f.name
	}
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("unknown field %s%s", quote(name), hint(s))
	}
	return fmt.Sprintf("unknown field %s (known fields: %s)", quote(name), strings.Join(known, ", "))
}

// suggest returns the candidate s is most plausibly a typo of, or "". The
// allowed distance grows with the candidate's length, so that short names
// do not match everything.
func suggest(s string, candidates []string) string {
	best, bestDist := "", 0
	lower := strings.ToLower(s)
	for _, c := range candidates {
		limit := max(1, len(c)/4)
		if abs(len(lower)-len(c)) > limit {
			continue
		}
		if dist := editDistance(lower, strings.ToLower(c)); dist <= limit && (best == "" || dist < bestDist) {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance: Levenshtein plus
// swapping two adjacent characters, the commonest typo.
func editDistance(a, b string) int {
	prev2, prev, cur := make([]int, len(b)+1), make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func hint(suggestion string) string {
	if suggestion == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", quote(suggestion))
}

// caseHint suggests the lower-case spelling of v when that would be valid.
func caseHint(v string, valid func(string) bool) string {
	if lower := strings.ToLower(v); lower != v && valid(lower) {
		return hint(lower)
	}
	return ""
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what n is, for "must be X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case "!!null":
			return "null"
		case "!!str":
			return "string " + quote(n.Value)
		case "!!int":
			return "integer " + clip(n.Value)
		case "!!float":
			return "number " + clip(n.Value)
		case "!!bool":
			return "boolean " + clip(n.Value)
		default:
			return clip(tag) + " " + quote(n.Value)
		}
	}
	return "an alias"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parent strips the last field or index from path; known field names
// contain neither '.' nor '['.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// clip keeps user text in messages short: a 1 MiB field name must not turn
// into a 1 MiB error line.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func quote(s string) string { return strconv.Quote(clip(s)) }

// MarshalYAML writes a port reference the way ParseFiles reads it.
func (p PortRef) MarshalYAML() (any, error) {
	if p.Name != "" {
		return p.Name, nil
	}
	return p.Number, nil
}

// MarshalYAML keeps an empty ingress or egress list that HasIngress or
// HasEgress marks as written, as dropping it would turn deny-all into
// allow-all.
func (p NetworkPolicy) MarshalYAML() (any, error) {
	out := map[string][]PolicyRule{}
	if p.HasIngress || p.Ingress != nil {
		out["ingress"] = p.Ingress
	}
	if p.HasEgress || p.Egress != nil {
		out["egress"] = p.Egress
	}
	return out, nil
}
