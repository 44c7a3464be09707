package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
)

// newCluster is `rune cluster join-token`: a token another runed joins the
// cluster with (runed --cluster-addr ... --join MEMBER --join-token TOKEN).
func newCluster(g *globals) *cobra.Command {
	cl := group("cluster", "Manage the Raft cluster the node belongs to", "command")
	var ttl = api.DefaultJoinTokenTTL
	tok := &cobra.Command{
		Use:   "join-token",
		Short: "Create a join token and print it (only it, on one line)",
		Long: "Create a join token: runed --cluster-addr IP:PORT --join MEMBER_ADDR --join-token TOKEN joins the cluster with it until it expires.\n" +
			"The token names the cluster CA's SHA-256 fingerprint and holds a random secret; the cluster keeps only the secret's hash.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl <= 0 {
				return fmt.Errorf("--ttl %v: want a positive duration such as 30m or 24h", ttl)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.CreateJoinToken(cmd.Context(), ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.Token)
			return nil
		},
	}
	tok.Flags().DurationVar(&ttl, "ttl", ttl, "how long the token admits nodes")
	cl.AddCommand(tok)
	return cl
}

// newNode is `rune node remove NAME`.
func newNode(g *globals) *cobra.Command {
	n := group("node", "Manage the cluster's nodes (list them with rune get nodes)", "command")
	n.AddCommand(&cobra.Command{
		Use:               "remove NAME",
		Short:             "Remove a node from the Raft cluster (refused for the last voter)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeNames(nodeKind, func() string { return "" }, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RemoveNode(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node/%s removed\n", args[0])
			return nil
		},
	})
	return n
}
