package dockersrc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// NetworkName is the bridge network runed keeps on the node's container
// subnet: containers started with `docker run --network rune` get
// addresses the other nodes route to this node.
const NetworkName = "rune"

// gatewayModeOption makes Docker 28 and later let traffic from other hosts
// reach the network's containers directly (routed, not only published
// ports) while still masquerading what leaves for the outside; older
// daemons ignore it (see docs/cluster-network.md for what they need).
const gatewayModeOption = "com.docker.network.bridge.gateway_mode_ipv4"

// network is the part of GET /networks/{id} the source reads.
type network struct {
	Name   string
	Driver string
	IPAM   struct {
		Config []struct{ Subnet, Gateway string }
	}
}

func (n *network) subnets() []string {
	var out []string
	for _, c := range n.IPAM.Config {
		out = append(out, c.Subnet)
	}
	return out
}

// ensureNetwork creates the bridge network name on subnet (gateway: its
// first address), or adopts one that already exists on exactly that
// subnet; one on another subnet, or not a bridge, is an error saying what
// to do, and is left as it is.
func (s *Source) ensureNetwork(ctx context.Context, name string, subnet netip.Prefix) error {
	existing, err := s.eng.network(ctx, name)
	switch {
	case errors.Is(err, errNotFound):
		err = s.eng.createNetwork(ctx, name, subnet)
		if !errors.Is(err, errConflict) {
			if err == nil {
				s.log.Info("created the docker network for this node's subnet", "network", name, "subnet", subnet)
			}
			return err
		}
		// Created meanwhile (another runed on this Engine?): judge that one.
		if existing, err = s.eng.network(ctx, name); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if existing.Driver != "bridge" || len(existing.IPAM.Config) != 1 || existing.IPAM.Config[0].Subnet != subnet.String() {
		return fmt.Errorf("docker network %q exists with driver %s and subnets %v, but this node's container subnet is %s: "+
			"remove it (docker network rm %s, once its containers are stopped) so runed creates it, or start runed with --node-subnet %s if that subnet is this node's",
			name, existing.Driver, existing.subnets(), subnet, name, strings.Join(existing.subnets(), ","))
	}
	return nil
}

var errConflict = errors.New("conflict")

func (e *engine) network(ctx context.Context, name string) (*network, error) {
	var n network
	if err := e.getJSON(ctx, "/networks/"+url.PathEscape(name), nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// createNetwork is POST /networks/create of a bridge on subnet; errConflict
// when the name is taken.
func (e *engine) createNetwork(ctx context.Context, name string, subnet netip.Prefix) error {
	type ipamConfig struct{ Subnet, Gateway string }
	body, _ := json.Marshal(map[string]any{
		"Name":           name,
		"Driver":         "bridge",
		"CheckDuplicate": true,
		"IPAM":           map[string]any{"Driver": "default", "Config": []ipamConfig{{Subnet: subnet.String(), Gateway: subnet.Addr().Next().String()}}},
		"Options":        map[string]string{gatewayModeOption: "nat-unprotected"},
		"Labels":         map[string]string{"rune.subnet": subnet.String()},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/networks/create", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("docker engine: creating network %s: %w", name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK:
		return nil
	case http.StatusConflict:
		return errConflict
	}
	return fmt.Errorf("docker engine: creating network %s on %s: %s: %s", name, subnet, resp.Status, strings.TrimSpace(string(msg)))
}
