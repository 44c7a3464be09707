package netpolicy

// Ready implements CoreDNS's ready.Readiness: ready once the rule tables
// reflect the loaded View and, with kernel enforcement, are installed in
// nftables. The same check is registered with readiness.Default for runegate.
func (h *Handler) Ready() bool {
	e := h.engine.Load()
	return e != nil && e.Ready()
}
