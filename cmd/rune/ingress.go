package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
)

var ingressKind = kind{
	plural: "ingresses", singular: "ingress", aliases: []string{"ingress", "ing"},
	header: []string{"SERVICE", "HOST", "TLS", "CERT", "EXPIRES", "EDGES", "REASON"},
	wide:   []string{"ISSUER", "SERIAL", "ORDERING"},
	list: func(ctx context.Context, c *api.Client, ns string) ([]item, error) {
		list, err := c.Ingresses(ctx, ns)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		items := make([]item, 0, len(list.Items))
		for _, r := range list.Items {
			reason := r.Error
			if reason == "" && r.Ordering != "" && r.Cert == "pending" {
				reason = "being ordered by edge node " + r.Ordering
			}
			items = append(items, item{
				ns: r.Namespace, name: r.Service,
				row:  []string{r.Service, r.Host, r.TLS, orDash(r.Cert), r.Expires(now), orDash(strings.Join(r.Edges, ",")), orDash(reason)},
				wide: []string{orDash(r.Issuer), orDash(r.Serial), orDash(r.Ordering)},
				doc:  r,
			})
		}
		return items, nil
	},
}

var secretKind = kind{
	plural: "secrets", singular: "secret", aliases: []string{"secret"},
	header: []string{"NAME", "TYPE", "HOSTS", "EXPIRES"},
	wide:   []string{"ERROR"},
	list: func(ctx context.Context, c *api.Client, ns string) ([]item, error) {
		list, err := c.Secrets(ctx, ns)
		if err != nil {
			return nil, err
		}
		items := make([]item, 0, len(list.Items))
		for _, s := range list.Items {
			expires := "-"
			if !s.NotAfter.IsZero() {
				expires = s.NotAfter.UTC().Format(time.DateOnly)
			}
			items = append(items, item{
				ns: s.Namespace, name: s.Name,
				row:  []string{s.Name, s.Type, orNone(strings.Join(s.Hosts, ",")), expires},
				wide: []string{orNone(s.Error)},
				doc:  s,
			})
		}
		return items, nil
	},
}

func newSecret(g *globals) *cobra.Command {
	secret := group("secret", "Manage secrets (TLS certificates for manual ingress TLS)", "command")
	tls := group("tls", "TLS certificate secrets", "command")
	var ns, certFile, keyFile string
	create := &cobra.Command{
		Use:   "create NAME --cert FILE --key FILE",
		Short: "Upload a certificate and key for services with `tls: {mode: manual, secret: NAME}`",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cert, err := os.ReadFile(certFile)
			if err != nil {
				return err
			}
			key, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			action, err := c.CreateTLSSecret(cmd.Context(), api.TLSSecretRequest{Namespace: ns, Name: args[0], Cert: string(cert), Key: string(key)})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret/%s (%s) %s\n", args[0], ns, action)
			return nil
		},
	}
	g.namespaceFlag(create, &ns)
	create.Flags().StringVar(&certFile, "cert", "", "PEM certificate chain, leaf first")
	create.Flags().StringVar(&keyFile, "key", "", "PEM private key")
	_ = create.MarkFlagRequired("cert")
	_ = create.MarkFlagRequired("key")
	tls.AddCommand(create)
	secret.AddCommand(tls)
	return secret
}
