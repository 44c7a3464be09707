package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
)

// nsFlags are kubectl's -n/-A.
type nsFlags struct {
	namespace string
	all       bool
}

func (f *nsFlags) add(g *globals, cmd *cobra.Command) {
	g.namespaceFlag(cmd, &f.namespace)
	cmd.Flags().BoolVarP(&f.all, "all-namespaces", "A", false, "list across all namespaces")
}

// query is the namespace to ask the API for ("" = all).
func (f *nsFlags) query() string {
	if f.all {
		return ""
	}
	return f.namespace
}

// withNS prepends the NAMESPACE column when listing across namespaces.
func (f *nsFlags) withNS(ns string, row []string) []string {
	if !f.all {
		return row
	}
	return append([]string{ns}, row...)
}

// item is one object as a get prints it.
type item struct {
	ns, name string
	row      []string // the table's columns
	wide     []string // the columns -o wide adds
	doc      any      // what -o json|yaml prints
}

// kind is one kind of object `rune get` knows.
type kind struct {
	plural, singular string
	aliases          []string
	header, wide     []string
	// clusterScoped kinds (nodes) belong to no namespace: no -n/-A.
	clusterScoped bool
	list          func(ctx context.Context, c *api.Client, ns string) ([]item, error)
}

// kinds are what `rune get` lists, in the order help shows them.
func kinds() []kind {
	return []kind{serviceKind, endpointsKind, instanceKind, policyKind, ingressKind, secretKind, nodeKind}
}

func newGet(g *globals) *cobra.Command {
	get := group("get KIND [NAME...]", "Show services, endpoints, instances, network policies, ingresses, secrets or cluster nodes", "kind")
	for _, k := range kinds() {
		get.AddCommand(getCmd(g, k))
	}
	return get
}

func getCmd(g *globals, k kind) *cobra.Command {
	var f nsFlags
	var output string
	var linearizable bool
	cmd := &cobra.Command{
		Use:               k.plural + " [NAME...]",
		Aliases:           k.aliases,
		Short:             "List " + k.plural + ", or show the named ones",
		ValidArgsFunction: g.completeNames(k, f.query, 0),
		RunE: func(cmd *cobra.Command, names []string) error {
			if !slices.Contains(outputFormats, output) {
				return fmt.Errorf("unknown output format %q: use %s", output, strings.Join(outputFormats, ", "))
			}
			var opts []api.ClientOption
			if linearizable {
				opts = append(opts, api.LinearizableReads())
			}
			c, err := g.client(opts...)
			if err != nil {
				return err
			}
			items, err := k.list(cmd.Context(), c, f.query())
			if err != nil {
				return err
			}
			items, missing := pick(items, names, f.query())
			if len(items) == 0 && len(names) == 0 && (output == "table" || output == "wide") {
				// As kubectl: a note on stderr rather than a lone header.
				where := ""
				if !f.all && !k.clusterScoped {
					where = " in namespace " + f.namespace
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "No %s found%s.\n", k.plural, where)
				return nil
			}
			if len(items) > 0 || len(missing) == 0 {
				if err := k.print(cmd.OutOrStdout(), &f, output, items, len(names) == 1 && len(items) == 1); err != nil {
					return err
				}
			}
			var errs []error
			for _, n := range missing {
				errs = append(errs, fmt.Errorf("%s %q not found", k.singular, n))
			}
			return errors.Join(errs...)
		},
	}
	if !k.clusterScoped {
		f.add(g, cmd)
	}
	addGetOutputFlag(cmd, &output)
	cmd.Flags().BoolVar(&linearizable, "linearizable", false, "linearizable read: answer only once this node has every write the cluster acknowledged before the command (a round through the Raft leader on a follower)")
	return cmd
}

// pick keeps the items named (all of them when no names are given) and
// returns the names that matched none, as namespace/name.
func pick(items []item, names []string, ns string) (picked []item, missing []string) {
	if len(names) == 0 {
		return items, nil
	}
	for _, n := range names {
		found := false
		for _, it := range items {
			if it.name == n {
				picked, found = append(picked, it), true
			}
		}
		if !found {
			if ns == "" {
				missing = append(missing, n)
			} else {
				missing = append(missing, ns+"/"+n)
			}
		}
	}
	return picked, missing
}

// print renders items in format; single prints the one object itself rather
// than a list of it, as kubectl does for `get KIND NAME`.
func (k *kind) print(w io.Writer, f *nsFlags, format string, items []item, single bool) error {
	switch format {
	case "table", "wide":
		header := k.header
		if format == "wide" {
			header = append(slices.Clone(header), k.wide...)
		}
		rows := make([][]string, 0, len(items))
		for _, it := range items {
			row := it.row
			if format == "wide" {
				row = append(slices.Clone(row), it.wide...)
			}
			rows = append(rows, f.withNS(it.ns, row))
		}
		return table(w, f.withNS("NAMESPACE", header), rows)
	case "name":
		for _, it := range items {
			fmt.Fprintf(w, "%s/%s\n", k.singular, it.name)
		}
		return nil
	}
	if single {
		return printStructured(w, format, items[0].doc)
	}
	docs := make([]any, 0, len(items))
	for _, it := range items {
		docs = append(docs, it.doc)
	}
	return printStructured(w, format, listDoc{Items: docs})
}

// listDoc is a list as -o json|yaml prints it; `rune cast` reads it back.
type listDoc struct {
	Items []any `json:"items"`
}

// orNone is s, or <none> when it is empty, as kubectl shows it.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

var serviceKind = kind{
	plural: "services", singular: "service", aliases: []string{"service", "svc"},
	header: []string{"NAME", "VIP", "PORTS", "POLICY", "EXPOSE", "AGE"},
	wide:   []string{"TARGETS", "IMAGE"},
	list: func(ctx context.Context, c *api.Client, ns string) ([]item, error) {
		list, err := c.Services(ctx, ns)
		if err != nil {
			return nil, err
		}
		items := make([]item, 0, len(list.Items))
		for _, s := range list.Items {
			var targets []string
			for _, p := range s.Spec.Ports {
				targets = append(targets, fmt.Sprint(p.TargetPort))
			}
			items = append(items, item{
				ns: s.Spec.Namespace, name: s.Spec.Name,
				row:  []string{s.Spec.Name, s.VIP.String(), ports(s.Spec.Ports), policySummary(s.Spec.NetworkPolicy), exposeSummary(s.Spec.Expose), age(s.Created)},
				wide: []string{orNone(strings.Join(targets, ",")), orNone(s.Spec.Image)},
				doc:  newServiceDoc(s),
			})
		}
		return items, nil
	},
}

func ports(ps []cluster.Port) string {
	if len(ps) == 0 {
		return "<none>"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%d/%s", p.Port, strings.ToUpper(string(p.Protocol)))
		if p.Name != "" {
			parts[i] = p.Name + ":" + parts[i]
		}
	}
	return strings.Join(parts, ",")
}

func policySummary(p *cluster.NetworkPolicy) string {
	if p == nil || (!p.HasIngress && !p.HasEgress) {
		return "<none>"
	}
	var dirs []string
	if p.HasIngress {
		dirs = append(dirs, "ingress")
	}
	if p.HasEgress {
		dirs = append(dirs, "egress")
	}
	return strings.Join(dirs, ",")
}

func exposeSummary(e *cluster.Expose) string {
	if e == nil {
		return "<none>"
	}
	return e.Host
}

var endpointsKind = kind{
	plural: "endpoints", singular: "endpoints", aliases: []string{"endpoint", "ep"},
	header: []string{"NAME", "ENDPOINTS"},
	wide:   []string{"NODES"},
	list: func(ctx context.Context, c *api.Client, ns string) ([]item, error) {
		list, err := c.Endpoints(ctx, ns)
		if err != nil {
			return nil, err
		}
		items := make([]item, 0, len(list.Items))
		for _, e := range list.Items {
			var eps, nodes []string
			for _, a := range e.Addresses {
				for _, p := range e.Ports {
					eps = append(eps, fmt.Sprintf("%s:%d", a.IP, p.TargetPort))
				}
				if !slices.Contains(nodes, a.Node) {
					nodes = append(nodes, a.Node)
				}
			}
			shown := strings.Join(eps, ",")
			if len(eps) > 3 {
				shown = strings.Join(eps[:3], ",") + fmt.Sprintf(" + %d more...", len(eps)-3)
			}
			items = append(items, item{
				ns: e.Namespace, name: e.Service,
				row:  []string{e.Service, orNone(shown)},
				wide: []string{orNone(strings.Join(nodes, ","))},
				doc:  endpointsDoc(e),
			})
		}
		return items, nil
	},
}

var instanceKind = kind{
	plural: "instances", singular: "instance", aliases: []string{"instance", "inst"},
	header: []string{"ID", "SERVICE", "NODE", "IP", "READY", "AGE"},
	wide:   []string{"UPDATED"},
	list: func(ctx context.Context, c *api.Client, ns string) ([]item, error) {
		list, err := c.Instances(ctx, ns)
		if err != nil {
			return nil, err
		}
		items := make([]item, 0, len(list.Items))
		for _, in := range list.Items {
			items = append(items, item{
				ns: in.Namespace, name: in.ID,
				row:  []string{in.ID, in.Service, in.Node, in.IP.String(), fmt.Sprint(in.Ready), age(in.Updated)},
				wide: []string{in.Updated.Format(time.RFC3339)},
				doc:  in,
			})
		}
		return items, nil
	},
}
