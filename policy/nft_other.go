//go:build !linux

package policy

import "errors"

// NFTConfig names what the kernel enforcer owns (Linux only).
type NFTConfig struct {
	Table string
	NetNS int
}

// NFT is the nftables enforcer; elsewhere policy is enforced by the proxy alone.
type NFT struct{}

// NewNFT fails: nftables exists on Linux only.
func NewNFT(NFTConfig) (*NFT, error) {
	return nil, errors.New("nftables policy enforcement needs Linux; run with dev mode to enforce in the proxy only")
}

func (*NFT) Sync(*Tables, bool) error     { return errors.ErrUnsupported }
func (*NFT) Drops() ([]KernelDrop, error) { return nil, errors.ErrUnsupported }
func (*NFT) Close() error                 { return nil }
