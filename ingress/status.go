package ingress

import "github.com/runenet/runenet/ingress/status"

// Status lists every exposed host of the current routes, in namespace and
// service order.
func (i *Ingress) Status() []status.Row {
	t := i.table.Load()
	rows := make([]status.Row, 0, len(t.ordered))
	for _, r := range t.ordered {
		rows = append(rows, status.Row{
			Namespace: r.service.Namespace, Service: r.service.Name, Host: r.host,
			TLS: r.tlsMode, Cert: r.state, NotAfter: r.notAfter, Error: r.certErr,
		})
	}
	return rows
}
