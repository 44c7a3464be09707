package dataplane

// Ready implements CoreDNS's ready.Readiness: ready once interception (or,
// in dev mode, the loopback listeners) is in place for the View's loaded
// state. The same check is registered with readiness.Default for runegate.
func (h *Handler) Ready() bool {
	dp := h.dp.Load()
	if dp == nil {
		return false
	}
	ok, _ := dp.Ready()
	return ok
}
