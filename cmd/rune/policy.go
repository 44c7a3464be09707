package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
)

var policyKind = kind{
	plural: "policies", singular: "policy", aliases: []string{"policy", "netpol"},
	header: []string{"SERVICE", "INGRESS", "EGRESS", "RULES"},
	list: func(ctx context.Context, c *api.Client, ns string) ([]item, error) {
		list, err := c.Policies(ctx, ns)
		if err != nil {
			return nil, err
		}
		items := make([]item, 0, len(list.Items))
		for _, it := range list.Items {
			p := &it.Policy
			rules := append(ruleSummaries("in", it.Namespace, p.Ingress, true), ruleSummaries("eg", it.Namespace, p.Egress, false)...)
			if len(rules) == 0 {
				rules = []string{"<none>"}
			}
			items = append(items, item{
				ns: it.Namespace, name: it.Service,
				row: []string{it.Service,
					direction(p.HasIngress || p.Ingress != nil, len(p.Ingress)),
					direction(p.HasEgress || p.Egress != nil, len(p.Egress)),
					strings.Join(rules, "; ")},
				doc: policyItemDoc{Namespace: it.Namespace, Service: it.Service, Policy: newPolicyDoc(p)},
			})
		}
		return items, nil
	},
}

// direction summarizes one direction: no block allows everything; a block
// denies everything its rules do not allow.
func direction(present bool, rules int) string {
	switch {
	case !present:
		return "<none>"
	case rules == 0:
		return "deny all"
	case rules == 1:
		return "1 rule"
	}
	return fmt.Sprintf("%d rules", rules)
}

// ruleSummaries renders rules as "in[0] from web,worker.jobs,10.0.0.0/8
// ports http"; a peer in the policy's own namespace goes without it.
func ruleSummaries(prefix, ns string, rules []cluster.PolicyRule, ingress bool) []string {
	out := make([]string, 0, len(rules))
	for i, r := range rules {
		peers, word := r.From, "from"
		if !ingress {
			peers, word = r.To, "to"
		}
		names := make([]string, 0, len(peers))
		for _, p := range peers {
			switch {
			case p.CIDR != "":
				names = append(names, p.CIDR)
			case p.Namespace != "" && p.Namespace != ns:
				names = append(names, p.Service+"."+p.Namespace)
			default:
				names = append(names, p.Service)
			}
		}
		s := fmt.Sprintf("%s[%d] %s %s", prefix, i, word, strings.Join(names, ","))
		if len(names) == 0 {
			s = fmt.Sprintf("%s[%d] %s nobody", prefix, i, word)
		}
		if len(r.Ports) > 0 {
			ports := make([]string, len(r.Ports))
			for j, p := range r.Ports {
				ports[j] = p.String()
			}
			s += " ports " + strings.Join(ports, ",")
		}
		out = append(out, s)
	}
	return out
}

// inNamespace qualifies a bare service name with ns; SERVICE.NAMESPACE and
// IP addresses stay as they are (a service name has no dots).
func inNamespace(peer, ns string) string {
	if strings.Contains(peer, ".") || strings.Contains(peer, ":") {
		return peer
	}
	return peer + "." + ns
}

// errDenied makes `rune policy check` exit 1 for a denied connection, after
// the verdict is printed, so scripts can branch on the exit status.
var errDenied = errors.New("the connection would be denied")

func newPolicy(g *globals) *cobra.Command {
	pol := group("policy", "Inspect network policy", "command")
	var from, to, proto, output, ns string
	check := &cobra.Command{
		Use:   "check --from SERVICE.NAMESPACE|IP --to SERVICE.NAMESPACE[:PORT]",
		Short: "Ask how this node would decide a new connection, and which rule decides it",
		Long: `Ask runed how its node's network policy decides a new connection from --from to
--to, and which rule (or default) decides it: the source's egress policy first, then the
destination's ingress policy, as the data plane proxy judges a connection to a VIP.

--from is a service (SERVICE.NAMESPACE, or SERVICE in namespace default), standing for one of
its instances on any node, or an IP address (which has a service identity if it is an instance
of any node, and then its service's egress policy applies as its own node enforces it; otherwise
only CIDR rules can match it). --to is the destination service,
with its port by name or number after a colon; the port may be left out if the service has one.
The verdict ignores the View's staleness (see rune status).

Exit status: 0 if the connection is allowed, 1 if it is denied or the check failed (stderr says
which). Needs the netpolicy directive in runed's Corefile.`,
		Example: `  rune policy check --from web.default --to api.default:8080
  allowed: rule 0 of default/api ingress (from service web.default on http 8080/tcp)

  rune policy check --from 10.0.0.7 --to api:http
  denied: default deny of default/api ingress (no rule matches from 10.0.0.7 on http 8080/tcp)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, port, _ := strings.Cut(to, ":")
			if from == "" || svc == "" {
				return errors.New("policy check needs --from and --to (e.g. --from web.default --to api.default:8080)")
			}
			if cmd.Flags().Changed("namespace") {
				from, svc = inNamespace(from, ns), inNamespace(svc, ns)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.CheckPolicy(cmd.Context(), api.PolicyCheckRequest{From: from, To: svc, Port: api.PortSpec(port), Protocol: cluster.Protocol(strings.ToLower(proto))})
			if err != nil {
				return err
			}
			if output == "table" {
				verdict := "denied"
				if res.Allowed {
					verdict = "allowed"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", verdict, res.Explanation)
			} else if err := printStructured(cmd.OutOrStdout(), output, res); err != nil {
				return err
			}
			if !res.Allowed {
				return errDenied
			}
			return nil
		},
	}
	check.Flags().StringVar(&from, "from", "", "source: SERVICE.NAMESPACE, SERVICE (namespace -n, default default) or an IP address")
	g.namespaceFlag(check, &ns)
	check.Flags().StringVar(&to, "to", "", "destination: SERVICE.NAMESPACE[:PORT], the port by name or number")
	check.Flags().StringVar(&proto, "protocol", "", "tcp or udp, for a port number declared with both (default: the port's own, else tcp)")
	addOutputFlag(check, &output)
	pol.AddCommand(check)
	return pol
}
