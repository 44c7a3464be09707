package proxy

import (
	"fmt"
	"os"
	"strings"
)

func newInterceptor(cfg NFTConfig) (Interceptor, error) { return NewNFT(cfg) }

// checkForwarding fails unless the node forwards IPv4: kernel forwarding
// DNATs containers' connections and routes them on, and without
// ip_forward the kernel would drop them silently — connections that hang
// while DNS answers. It reads the calling thread's network namespace.
func checkForwarding() error {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return fmt.Errorf("forward kernel: read net.ipv4.ip_forward: %w", err)
	}
	if strings.TrimSpace(string(b)) != "1" {
		return fmt.Errorf("forward kernel: net.ipv4.ip_forward is off, so containers' connections to VIPs would be dropped; turn it on (sysctl -w net.ipv4.ip_forward=1) or use forward proxy")
	}
	return nil
}
