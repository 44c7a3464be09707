//go:build !linux

package proxy

import (
	"errors"
	"runtime"
)

func newInterceptor(NFTConfig) (Interceptor, error) {
	return nil, errors.New("VIP interception needs nftables, which " + runtime.GOOS + " lacks; run with --dev-mode")
}

func checkForwarding() error { return nil } // newInterceptor already refuses

// NFTConfig exists on every platform so configuration code compiles.
type NFTConfig struct {
	Table, GuardTable string
	NetNS             int
}
