// Command rune is the operator's CLI for runed. It talks to runed's API only.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/corefile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		// The reason on one line; a spec with several problems lists one per line after it.
		fmt.Fprintln(os.Stderr, "rune: "+strings.TrimSpace(explain(err).Error()))
		os.Exit(1)
	}
}

// explain adds to an unreachable runed where rune looks for one.
func explain(err error) error {
	var ue *api.UnreachableError
	if !errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("%w\nis runed running? Without --api or RUNE_API, rune uses the first socket that exists of %s (production) and %s (dev mode)",
		err, socketIn(corefile.DefaultDataDir), socketIn(corefile.DevDataDir()))
}

type globals struct {
	api   string
	token string
	ca    string
}

func (g *globals) client(extra ...api.ClientOption) (*api.Client, error) {
	opts := extra
	if g.ca != "" {
		opts = append(opts, api.WithCA(g.ca))
	}
	return api.NewClient(g.api, g.token, opts...)
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "rune",
		Short:         "Operate the Rune networking layer (services, VIPs, endpoints) through runed's API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.api, "api", envOr("RUNE_API", defaultAPI()), "runed API address: unix:///path/runed.sock, tcp://host:port or https://host:port (env RUNE_API)")
	root.PersistentFlags().StringVar(&g.token, "token", os.Getenv("RUNE_TOKEN"), "bearer token for a TCP API (env RUNE_TOKEN)")
	root.PersistentFlags().StringVar(&g.ca, "ca", os.Getenv("RUNE_CA"), "PEM file of the certificate (or its CA) runed's TLS API serves; talks TLS to a tcp:// address (env RUNE_CA)")
	root.AddCommand(newCompletion(), newCast(g), newGet(g), newDelete(g), newInstance(g), newStatus(g), newDebug(g), newPolicy(g), newSecret(g), newPortForward(g), newCluster(g), newNode(g), newVersion())
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// defaultAPI finds runed's socket where runed puts it by default: the
// production data dir, else the dev-mode one.
func defaultAPI() string {
	for _, dir := range []string{corefile.DefaultDataDir, corefile.DevDataDir()} {
		if _, err := os.Stat(socketIn(dir)); err == nil {
			return "unix://" + socketIn(dir)
		}
	}
	return "unix://" + socketIn(corefile.DefaultDataDir)
}

func socketIn(dir string) string { return filepath.Join(dir, "runed.sock") }
