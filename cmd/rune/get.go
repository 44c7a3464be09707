package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/cluster"
)

// nsFlags are kubectl's -n/-A.
type nsFlags struct {
	namespace string
	all       bool
}

func (f *nsFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "default", "namespace")
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

func newGet(g *globals) *cobra.Command {
	get := &cobra.Command{Use: "get", Short: "List services, endpoints, instances or network policies"}
	get.AddCommand(
		getCmd(g, "services", []string{"service", "svc"}, printServices),
		getCmd(g, "endpoints", []string{"endpoint", "ep"}, printEndpoints),
		getCmd(g, "instances", []string{"instance", "inst"}, printInstances),
		getCmd(g, "policies", []string{"policy", "netpol"}, printPolicies),
		getCmd(g, "ingresses", []string{"ingress", "ing"}, printIngresses),
	)
	return get
}

type printer func(cmd *cobra.Command, g *globals, f *nsFlags, output string) error

func getCmd(g *globals, use string, aliases []string, p printer) *cobra.Command {
	var f nsFlags
	var output string
	cmd := &cobra.Command{
		Use:     use,
		Aliases: aliases,
		Short:   "List " + use,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return p(cmd, g, &f, output) },
	}
	f.add(cmd)
	addOutputFlag(cmd, &output)
	return cmd
}

func printServices(cmd *cobra.Command, g *globals, f *nsFlags, output string) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	list, err := c.Services(cmd.Context(), f.query())
	if err != nil {
		return err
	}
	if output != "table" {
		return printStructured(cmd.OutOrStdout(), output, list)
	}
	rows := make([][]string, 0, len(list.Items))
	for _, s := range list.Items {
		rows = append(rows, f.withNS(s.Spec.Namespace, []string{s.Spec.Name, s.VIP.String(), ports(s.Spec.Ports), policySummary(s.Spec.NetworkPolicy), exposeSummary(s.Spec.Expose), age(s.Created)}))
	}
	return table(cmd.OutOrStdout(), f.withNS("NAMESPACE", []string{"NAME", "VIP", "PORTS", "POLICY", "EXPOSE", "AGE"}), rows)
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

func printEndpoints(cmd *cobra.Command, g *globals, f *nsFlags, output string) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	list, err := c.Endpoints(cmd.Context(), f.query())
	if err != nil {
		return err
	}
	if output != "table" {
		return printStructured(cmd.OutOrStdout(), output, list)
	}
	rows := make([][]string, 0, len(list.Items))
	for _, e := range list.Items {
		var eps []string
		for _, a := range e.Addresses {
			for _, p := range e.Ports {
				eps = append(eps, a.IP.String()+":"+strconv.Itoa(p.TargetPort))
			}
		}
		shown := strings.Join(eps, ",")
		switch {
		case len(eps) == 0:
			shown = "<none>"
		case len(eps) > 3:
			shown = strings.Join(eps[:3], ",") + fmt.Sprintf(" + %d more...", len(eps)-3)
		}
		rows = append(rows, f.withNS(e.Namespace, []string{e.Service, shown}))
	}
	return table(cmd.OutOrStdout(), f.withNS("NAMESPACE", []string{"NAME", "ENDPOINTS"}), rows)
}

func printInstances(cmd *cobra.Command, g *globals, f *nsFlags, output string) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	list, err := c.Instances(cmd.Context(), f.query())
	if err != nil {
		return err
	}
	if output != "table" {
		return printStructured(cmd.OutOrStdout(), output, list)
	}
	rows := make([][]string, 0, len(list.Items))
	for _, in := range list.Items {
		rows = append(rows, f.withNS(in.Namespace, []string{in.ID, in.Service, in.Node, in.IP.String(), strconv.FormatBool(in.Ready), age(in.Updated)}))
	}
	return table(cmd.OutOrStdout(), f.withNS("NAMESPACE", []string{"ID", "SERVICE", "NODE", "IP", "READY", "AGE"}), rows)
}
