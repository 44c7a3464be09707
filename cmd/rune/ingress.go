package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/ingress/status"
)

func printIngresses(cmd *cobra.Command, g *globals, f *nsFlags, output string) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	list, err := c.Ingresses(cmd.Context(), f.query())
	if err != nil {
		return err
	}
	if output != "table" {
		return printStructured(cmd.OutOrStdout(), output, list)
	}
	return status.WriteTable(cmd.OutOrStdout(), list.Items, time.Now())
}

func newSecret(g *globals) *cobra.Command {
	secret := &cobra.Command{Use: "secret", Short: "Manage secrets (TLS certificates for manual ingress TLS)"}
	tls := &cobra.Command{Use: "tls", Short: "TLS certificate secrets"}
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
			if err := c.CreateTLSSecret(cmd.Context(), api.TLSSecretRequest{Namespace: ns, Name: args[0], Cert: string(cert), Key: string(key)}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret/%s (%s) created\n", args[0], ns)
			return nil
		},
	}
	create.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace")
	create.Flags().StringVar(&certFile, "cert", "", "PEM certificate chain, leaf first")
	create.Flags().StringVar(&keyFile, "key", "", "PEM private key")
	_ = create.MarkFlagRequired("cert")
	_ = create.MarkFlagRequired("key")
	tls.AddCommand(create)
	secret.AddCommand(tls)
	return secret
}
