package main

import (
	"context"
	"fmt"
	"time"

	"github.com/runenet/runenet/api"
)

// nodeKind lists the cluster's members as the node asked knows them: its
// own progress, and of its peers what the Raft configuration says ("-"
// where the node does not know).
var nodeKind = kind{
	plural: "nodes", singular: "node", aliases: []string{"node", "no"},
	header:        []string{"NAME", "ADDRESS", "SUBNET", "ROLE", "STATE", "APPLIED", "LAG", "LAST CONTACT", "AGE"},
	wide:          []string{"SINCE", "HEARTBEAT"},
	clusterScoped: true,
	list: func(ctx context.Context, c *api.Client, _ string) ([]item, error) {
		list, err := c.Nodes(ctx)
		if err != nil {
			return nil, err
		}
		items := make([]item, 0, len(list.Items))
		for _, n := range list.Items {
			contact, since, nodeAge, beat := "-", "-", "-", "-"
			if !n.Heartbeat.IsZero() {
				beat = age(n.Heartbeat) + " ago"
			}
			if !n.Down.IsZero() {
				beat += " (down " + age(n.Down) + ")"
			}
			if n.LastContactSeconds != nil {
				contact = (time.Duration(*n.LastContactSeconds * float64(time.Second))).Round(time.Millisecond).String()
			}
			if !n.Since.IsZero() {
				since, nodeAge = n.Since.Format(time.RFC3339), age(n.Since)
			}
			items = append(items, item{
				name: n.Name,
				row:  []string{n.Name, orDash(n.Address), orDash(n.Subnet), n.Role, orDash(n.State), known(n.Applied), known(n.Lag), contact, nodeAge},
				wide: []string{since, beat},
				doc:  n,
			})
		}
		return items, nil
	},
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// known is *n, or "-" when the node does not know it.
func known(n *uint64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}
