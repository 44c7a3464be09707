package main

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
)

func newInstance(g *globals) *cobra.Command {
	inst := group("instance", "Report instances as an orchestrator does: register, ready, unready, deregister", "command")
	var req api.RegisterInstanceRequest
	var ip string
	register := &cobra.Command{
		Use:   "register ID --service NAME --ip IP --node NODE",
		Short: "Record a started instance of a service",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := netip.ParseAddr(ip)
			if err != nil {
				return fmt.Errorf("--ip %q: not an IP address", ip)
			}
			req.ID, req.IP = args[0], addr
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.RegisterInstance(cmd.Context(), req); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "instance/%s registered (%s/%s, ready=%t)\n", req.ID, req.Namespace, req.Service, req.Ready)
			return nil
		},
	}
	register.Flags().StringVar(&req.Service, "service", "", "service the instance belongs to")
	g.namespaceFlag(register, &req.Namespace)
	register.Flags().StringVar(&ip, "ip", "", "the instance's IP address")
	register.Flags().StringVar(&req.Node, "node", "", "node the instance runs on")
	register.Flags().BoolVar(&req.Ready, "ready", true, "whether it passes its health checks")
	for _, f := range []string{"service", "ip", "node"} {
		_ = register.MarkFlagRequired(f)
	}
	_ = register.RegisterFlagCompletionFunc("service", g.completeNames(serviceKind, func() string { return req.Namespace }, 0))

	inst.AddCommand(register,
		instanceOp(g, "ready", "Mark an instance healthy: it joins its service's endpoints", func(c *api.Client, cmd *cobra.Command, id string) error {
			_, err := c.SetInstanceReady(cmd.Context(), id, true)
			return err
		}),
		instanceOp(g, "unready", "Mark an instance unhealthy: it leaves its service's endpoints", func(c *api.Client, cmd *cobra.Command, id string) error {
			_, err := c.SetInstanceReady(cmd.Context(), id, false)
			return err
		}),
		instanceOp(g, "deregister", "Remove a stopped instance", func(c *api.Client, cmd *cobra.Command, id string) error {
			_, err := c.DeregisterInstance(cmd.Context(), id)
			return err
		}),
	)
	return inst
}

// instanceOp is a command on one instance by ID. Instance IDs are unique
// across namespaces, so -n is a check rather than a scope: given, the
// instance must be in that namespace.
func instanceOp(g *globals, verb, short string, do func(*api.Client, *cobra.Command, string) error) *cobra.Command {
	past := map[string]string{"ready": "ready", "unready": "unready", "deregister": "deregistered"}[verb]
	var ns string
	cmd := &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("namespace") {
				list, err := c.Instances(cmd.Context(), ns)
				if err != nil {
					return err
				}
				if !slices.ContainsFunc(list.Items, func(in cluster.Instance) bool { return in.ID == args[0] }) {
					return cluster.NotFound("instance", cluster.NamespacedName{Namespace: ns, Name: args[0]})
				}
			}
			if err := do(c, cmd, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "instance/%s %s\n", args[0], past)
			return nil
		},
	}
	g.namespaceFlag(cmd, &ns)
	cmd.ValidArgsFunction = g.completeNames(instanceKind, func() string {
		if cmd.Flags().Changed("namespace") {
			return ns
		}
		return ""
	}, 1)
	return cmd
}

func newDelete(g *globals) *cobra.Command {
	del := group("delete KIND NAME...", "Delete services or secrets", "kind")
	var ns string
	svc := &cobra.Command{
		Use:               "service NAME...",
		Aliases:           []string{"services", "svc"},
		Short:             "Delete services; their VIPs are held for a while in case they come back",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: g.completeNames(serviceKind, func() string { return ns }, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, name := range args {
				if _, err := c.DeleteService(cmd.Context(), ns, name); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "service/%s (%s) deleted\n", name, ns)
			}
			return nil
		},
	}
	g.namespaceFlag(svc, &ns)
	var secretNS string
	secret := &cobra.Command{
		Use:               "secret NAME...",
		Aliases:           []string{"secrets"},
		Short:             "Delete secrets; a service that names one serves no certificate for it after",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: g.completeNames(secretKind, func() string { return secretNS }, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := c.DeleteSecret(cmd.Context(), secretNS, name); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "secret/%s (%s) deleted\n", name, secretNS)
			}
			return nil
		},
	}
	g.namespaceFlag(secret, &secretNS)
	del.AddCommand(svc, secret)
	return del
}
