package rune

// Ready implements CoreDNS's ready.Readiness: the plugin is ready once its
// View has loaded the log and while it keeps within the stale budget. In a
// stock CoreDNS (no runegate, no node runtime) this is all /ready has to go on.
func (r *Rune) Ready() bool {
	v := r.view.Load()
	return v != nil && v.Loaded() && !v.Stale()
}
