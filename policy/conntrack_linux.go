package policy

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ctnetlink message types and attributes (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctMsgGet    = 1
	ctMsgDelete = 2

	ctaTupleOrig = 1
	ctaZone      = 18
	ctaTupleIP   = 1
	ctaIPv4Src   = 1
	ctaIPv4Dst   = 2
)

// forgetFlows deletes the conntrack entries of network namespace netns (0:
// the current one) whose original source or destination is in addrs, and
// returns how many it deleted.
//
// The forward chain accepts packets of established flows before any policy
// check, so without this a flow an instance opened would outlive its
// identity: an address released and registered again would carry the old
// owner's open flows, and the new owner could use them. With the entries
// gone, the next packet is a new flow and is judged by the new identity.
func forgetFlows(netns int, addrs map[netip.Addr]bool) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return 0, fmt.Errorf("conntrack: open netlink: %w", err)
	}
	defer c.Close()
	family := []byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0} // nfgenmsg
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: ctType(ctMsgGet), Flags: netlink.Request | netlink.Dump},
		Data:   family,
	})
	if err != nil {
		return 0, fmt.Errorf("conntrack: list flows: %w", err)
	}
	deleted := 0
	var errs []error
	for _, m := range msgs {
		if len(m.Data) < len(family) {
			continue
		}
		orig, zone, src, dst, ok := parseFlow(m.Data[len(family):])
		if !ok || (!addrs[src] && !addrs[dst]) {
			continue
		}
		ae := netlink.NewAttributeEncoder()
		ae.Bytes(unix.NLA_F_NESTED|ctaTupleOrig, orig)
		if zone != nil {
			ae.Bytes(ctaZone, zone)
		}
		attrs, err := ae.Encode()
		if err != nil {
			return deleted, err
		}
		_, err = c.Execute(netlink.Message{
			Header: netlink.Header{Type: ctType(ctMsgDelete), Flags: netlink.Request | netlink.Acknowledge},
			Data:   append(append([]byte{}, family...), attrs...),
		})
		switch {
		case err == nil:
			deleted++
		case !errors.Is(err, unix.ENOENT): // ENOENT: it ended meanwhile
			errs = append(errs, fmt.Errorf("conntrack: delete flow %s → %s: %w", src, dst, err))
		}
	}
	return deleted, errors.Join(errs...)
}

func ctType(msg int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | msg)
}

// parseFlow reads a conntrack entry's original tuple (raw, to name the entry
// in a delete), its zone (raw, nil when absent) and the tuple's addresses.
func parseFlow(b []byte) (orig, zone []byte, src, dst netip.Addr, ok bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, nil, src, dst, false
	}
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleOrig:
			orig = ad.Bytes()
			ad.Nested(func(t *netlink.AttributeDecoder) error {
				for t.Next() {
					if t.Type() != ctaTupleIP {
						continue
					}
					t.Nested(func(ip *netlink.AttributeDecoder) error {
						for ip.Next() {
							a, _ := netip.AddrFromSlice(ip.Bytes())
							switch ip.Type() {
							case ctaIPv4Src:
								src = a
							case ctaIPv4Dst:
								dst = a
							}
						}
						return nil
					})
				}
				return nil
			})
		case ctaZone:
			zone = ad.Bytes()
		}
	}
	return orig, zone, src, dst, ad.Err() == nil && orig != nil
}
