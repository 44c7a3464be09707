package corefile

// Directives is runed's plugin order, installed as dnsserver.Directives.
// As in CoreDNS's plugin.cfg, the order is the order of the plugin chain a
// query walks (and of setup). It is CoreDNS's own order, trimmed to the
// plugins operators of a node resolver use, with ours placed:
//
//   - runegate before cache, so nothing (not even a cached answer) leaves for a
//     .rune name while the data path is not ready;
//   - rune where CoreDNS puts kubernetes: after cache and hosts, so an
//     operator may choose to cache or override cluster names, and before
//     forward, so .rune never leaks upstream;
//   - the data-path subsystems right after rune: they answer no queries and
//     only register the readiness checks runegate waits on, and they attach
//     to the node runtime the rune block opens, so their setup must come
//     after its. Among them netpolicy comes first, then ingress, then
//     dataplane: dataplane and ingress refuse a Corefile without netpolicy,
//     and the dev-mode data plane leaves the ingress's ports to it, which
//     they learn from the directives set up before them
//     (plugin/pkg/datapath). Startup follows the same order.
var Directives = []string{
	"root",
	"metadata",
	"cancel",
	"timeouts",
	"multisocket",
	"reload",
	"nsid",
	"bufsize",
	"bind",
	"debug",
	"ready",
	"health",
	"pprof",
	"prometheus",
	"errors",
	"log",
	"dnstap",
	"local",
	"any",
	"chaos",
	"loadbalance",
	"rewrite",
	"acl",
	"runegate",
	"cache",
	"header",
	"minimal",
	"template",
	"transfer",
	"hosts",
	"rune",
	"netpolicy",
	"ingress",
	"dataplane",
	"file",
	"loop",
	"forward",
	"whoami",
}
