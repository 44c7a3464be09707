package runegate

// Ready implements CoreDNS's ready.Readiness, so the ready plugin's /ready
// answers 503 exactly while the gate holds .rune answers back. It always
// runs the checks: /ready is polled, not on the answer path.
func (g *Gate) Ready() bool {
	ok, _ := g.check()
	return ok
}
