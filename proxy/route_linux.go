package proxy

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// loopbackIfindex: the kernel gives lo index 1 in every network namespace.
const loopbackIfindex = 1

// ensureRoute installs (or keeps) "<cidr> dev lo src 127.0.0.1". Host
// processes need a route to connect() to a VIP at all; without a default
// route they would get "network unreachable" before nftables could redirect
// them. It is a unicast route, not a local one: the VIPs stay off every
// interface, so nothing answers on them except through the redirect. The
// source is pinned because a link-scope route via lo would otherwise pick no
// source at all (0.0.0.0) on a node whose only address is loopback, and the
// redirected connection would have nowhere to answer.
func ensureRoute(cidr netip.Prefix, netns int) error {
	return routeOp(unix.RTM_NEWROUTE, netlink.Create|netlink.Replace, cidr, netns)
}

func removeRoute(cidr netip.Prefix, netns int) error {
	err := routeOp(unix.RTM_DELROUTE, 0, cidr, netns)
	if err != nil && isNotExist(err) {
		return nil
	}
	return err
}

func routeOp(typ netlink.HeaderType, flags netlink.HeaderFlags, cidr netip.Prefix, netns int) error {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: netns})
	if err != nil {
		return fmt.Errorf("route %s dev lo: open rtnetlink: %w", cidr, err)
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	dst := cidr.Masked().Addr().As4()
	ae.Bytes(unix.RTA_DST, dst[:])
	ae.Uint32(unix.RTA_OIF, loopbackIfindex)
	if typ == unix.RTM_NEWROUTE {
		ae.Bytes(unix.RTA_PREFSRC, []byte{127, 0, 0, 1})
	}
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type; flags u32.
	rtm := []byte{unix.AF_INET, byte(cidr.Bits()), 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_STATIC, unix.RT_SCOPE_LINK, unix.RTN_UNICAST, 0, 0, 0, 0}
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Acknowledge | flags},
		Data:   append(rtm, attrs...),
	})
	if err != nil {
		return fmt.Errorf("route %s dev lo: %w", cidr, err)
	}
	return nil
}

func isNotExist(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}
