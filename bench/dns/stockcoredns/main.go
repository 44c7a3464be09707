// Command stockcoredns is CoreDNS exactly as released (the version in go.mod,
// every plugin of its plugin.cfg), built from the module cache: the baseline
// runed is benchmarked against.
package main

import (
	_ "github.com/coredns/coredns/core/plugin"
	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
