package ingress

// Ready implements CoreDNS's ready.Readiness with the check the ingress also
// registers with readiness.Default for runegate: both listeners bound.
func (h *Handler) Ready() bool {
	ing := h.ing.Load()
	if ing == nil {
		return false
	}
	ok, _ := ing.Ready()
	return ok
}
