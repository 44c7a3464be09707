package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
)

func newPortForward(g *globals) *cobra.Command {
	var ns, address string
	cmd := &cobra.Command{
		Use:   "port-forward SERVICE [LOCAL:]PORT",
		Short: "Forward a loopback port to a service port until interrupted (dev mode: for service ports that clash)",
		Long: `Opens a listener on a loopback address of the node runed runs on and forwards
each connection to PORT of SERVICE, balanced across its ready endpoints like
traffic to its VIP. LOCAL defaults to PORT; 0 picks a free port. The forward
lasts until this command is interrupted.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			local, port, err := parseForwardPorts(args[1])
			if err != nil {
				return err
			}
			addr, err := netip.ParseAddr(address)
			if err != nil || !addr.IsLoopback() {
				return fmt.Errorf("--address %q: must be a loopback address", address)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			// A connection the service's policy refuses is reset; say why.
			denied := func(d api.PortForwardDenial) { fmt.Fprintln(cmd.ErrOrStderr(), "rune: "+d.String()) }
			bound, err := c.PortForward(cmd.Context(), api.PortForwardRequest{Namespace: ns, Service: args[0], Port: port, Local: netip.AddrPortFrom(addr, local)}, denied)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Forwarding from %s -> %s/%s:%d\n", bound, ns, args[0], port)
			<-cmd.Context().Done()
			return nil
		},
	}
	g.namespaceFlag(cmd, &ns)
	cmd.ValidArgsFunction = g.completeNames(serviceKind, func() string { return ns }, 1)
	cmd.Flags().StringVar(&address, "address", "127.0.0.1", "loopback address to listen on")
	return cmd
}

// parseForwardPorts reads "PORT" or "LOCAL:PORT".
func parseForwardPorts(s string) (local, port uint16, err error) {
	l, p, found := strings.Cut(s, ":")
	if !found {
		p = l
	}
	pn, err := strconv.ParseUint(p, 10, 16)
	if err != nil || pn == 0 {
		return 0, 0, fmt.Errorf("port %q: want PORT or LOCAL:PORT with ports 1-65535 (LOCAL may be 0)", s)
	}
	ln := pn
	if found {
		if ln, err = strconv.ParseUint(l, 10, 16); err != nil {
			return 0, 0, fmt.Errorf("local port %q: want 0-65535", l)
		}
	}
	return uint16(ln), uint16(pn), nil
}
