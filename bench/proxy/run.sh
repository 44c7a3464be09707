#!/usr/bin/env bash
# Data plane benchmarks, side by side in one run (docs/benchmarks.md, "Data plane"):
#   - wrk HTTP keep-alive and new connections per second from a "container"
#     namespace, routed through a node namespace to a backend namespace: the
#     backend direct vs HAProxy (TCP mode) on the node vs a VIP in proxy mode
#     (nftables redirect + runed's proxy) vs a VIP in kernel mode (nftables DNAT);
#   - bulk TCP throughput through each;
#   - idle connections held through the VIP in each mode: memory, fds and
#     conntrack entries per connection;
#   - nftables programming: 10,000 services x 3 endpoints, then one change.
# Everything runs inside network namespaces this script creates and deletes:
# traffic stays between them and the host's ruleset is untouched.
# Needs root. DURATION (default 10s) sets each wrk/bulk run; VIP_ARGS adds
# flags to the proxy-mode vipproxy (VIP_ARGS="-cpuprofile FILE" profiles it).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}

for pkg in wrk haproxy; do
	command -v "$pkg" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null; }
done
# 10,000 proxied connections need 20,000 sockets in the proxy; where the hard
# fd limit cannot be raised (containers), hold as many as it allows.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
IDLE=$(( ($(ulimit -n) - 500) / 2 )) # headroom: listeners, pooled splice pipes
IDLE=$(( IDLE < 10000 ? IDLE : 10000 ))

NS=runebench-$$
NODE=$NS-node CTR=$NS-ctr BE=$NS-be
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for ns in "$NODE" "$CTR" "$BE"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/" ./bench/proxy/backend ./bench/proxy/vipproxy ./bench/proxy/loadgen
# A node routing between a "container" (the client) and a backend, as in
# production: ctr 10.0.0.2 -- 10.0.0.1 node 10.1.0.1 -- 10.1.0.2 backend.
for ns in "$NODE" "$CTR" "$BE"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add rbn0 netns "$NODE" type veth peer name rbc0 netns "$CTR"
ip link add rbn1 netns "$NODE" type veth peer name rbb0 netns "$BE"
ip -n "$NODE" addr add 10.0.0.1/24 dev rbn0
ip -n "$NODE" addr add 10.1.0.1/24 dev rbn1
ip -n "$CTR" addr add 10.0.0.2/24 dev rbc0
ip -n "$BE" addr add 10.1.0.2/24 dev rbb0
for l in "$NODE rbn0" "$NODE rbn1" "$CTR rbc0" "$BE rbb0"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$CTR" route add default via 10.0.0.1
ip -n "$BE" route add default via 10.1.0.1
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
XN=(ip netns exec "$NODE") XC=(ip netns exec "$CTR") XB=(ip netns exec "$BE")

# Backends: HTTP answering "ok" and a streaming source, one pair of ports
# per target, so that no target's connections meet the TIME_WAITs another
# target's left behind on the backend (its server closes first).
declare -A HTTP BULK
i=0
for t in direct haproxy vip vip-kernel; do
	"${XB[@]}" "$WORK/backend" -http 10.1.0.2:$((8080 + i)) -source 10.1.0.2:$((9000 + i)) &
	PIDS+=($!)
	HTTP[$t]=10.1.0.2:$((8080 + i)) BULK[$t]=10.1.0.2:$((9000 + i))
	i=$((i + 1))
done

cat >"$WORK/haproxy.cfg" <<CFG
global
	maxconn 5000 # within the fd limit of a container
	nbthread $(nproc)
defaults
	mode tcp
	timeout connect 5s
	timeout client 1m
	timeout server 1m
listen http
	bind 10.0.0.1:8081
	server s1 ${HTTP[haproxy]}
listen bulk
	bind 10.0.0.1:9001
	server s1 ${BULK[haproxy]}
CFG
"${XN[@]}" haproxy -db -f "$WORK/haproxy.cfg" &
PIDS+=($!)

# runed's data plane on the node: VIP 10.96.0.10 ports 80 and 9000 → the
# backend, in proxy mode (nftables redirect + the L4 proxy) or kernel mode
# (nftables DNAT). One at a time: both own table ip rune.
VIPPID=
start_vip() { # TARGET [vipproxy flags]
	local t=$1
	shift
	mkfifo "$WORK/vip.in"
	"${XN[@]}" "$WORK/vipproxy" "$@" -map "10.96.0.10:80=${HTTP[$t]}" -map "10.96.0.10:9000=${BULK[$t]}" <"$WORK/vip.in" >"$WORK/vip.out" &
	VIPPID=$!
	PIDS+=($VIPPID)
	exec 3>"$WORK/vip.in"
	until grep -q ready "$WORK/vip.out" 2>/dev/null; do sleep 0.1; done
	sleep 0.5
}
stop_vip() {
	exec 3>&-
	wait "$VIPPID" || true
	rm -f "$WORK/vip.in" "$WORK/vip.out"
}


rps() { "${XC[@]}" wrk "$@" | awk '/Requests\/sec/ {print $2}'; }
# run TARGET HTTP BULK: every load against one target, from the container.
run() {
	printf '%-11s keep-alive %s req/s\n' "$1" "$(rps -t1 -c50 -d"$DURATION" "http://$2/")"
	printf '%-11s close      %s conn/s\n' "$1" "$(rps -t1 -c50 -d"$DURATION" -H 'Connection: close' "http://$2/")"
	printf '%-11s bulk       %s\n' "$1" "$("${XC[@]}" "$WORK/loadgen" bulk -addr "$3" -duration "$DURATION")"
}

rss() { awk '/VmRSS/ {print $2}' "/proc/$VIPPID/status"; }
fds() { ls "/proc/$VIPPID/fd" | wc -l; }
# Established connections the node tracks from the container to the VIP.
conntrack() { "${XN[@]}" grep -c 'ESTABLISHED src=10.0.0.2 dst=10.96.0.10 sport=[0-9]* dport=80 ' /proc/net/nf_conntrack || true; }
# idle N: hold N idle connections through the VIP, report what they cost
# the proxy process and the node's connection tracking.
idle() {
	local n=$1
	sleep 2 # let connections from the runs above finish
	local rss0 fd0 ct0 rss1 fd1 ct1
	rss0=$(rss) fd0=$(fds) ct0=$(conntrack)
	mkfifo "$WORK/idle.in"
	"${XC[@]}" "$WORK/loadgen" idle -addr 10.96.0.10:80 -n "$n" <"$WORK/idle.in" >"$WORK/idle.out" &
	local pid=$!
	PIDS+=($pid)
	exec 4>"$WORK/idle.in"
	until grep -q held "$WORK/idle.out"; do sleep 0.2; done
	sleep 2
	rss1=$(rss) fd1=$(fds) ct1=$(conntrack)
	echo "held: $(cat "$WORK/idle.out")"
	echo "proxy RSS: ${rss0} kB -> ${rss1} kB = $(((rss1 - rss0) * 1024 / n)) bytes per connection"
	echo "proxy fds: ${fd0} -> ${fd1} = $(awk -v d=$((fd1 - fd0)) -v n="$n" 'BEGIN {printf "%.2f", d / n}') per connection"
	echo "node conntrack entries, established to the VIP: ${ct0} -> ${ct1} ($(awk '/^nf_conntrack / {print $4}' /proc/slabinfo) bytes each)"
	exec 4>&-
	wait "$pid"
	rm -f "$WORK/idle.in" "$WORK/idle.out"
}

echo "== wrk -t1 -c50 -d$DURATION from the container; bulk: one connection for $DURATION"
# runed's tables are in place for every target, as on a node running it:
# loading nftables' nat turns on connection tracking for all traffic
# through the node, which costs every path something per packet.
start_vip vip ${VIP_ARGS:-}
run direct "${HTTP[direct]}" "${BULK[direct]}"
run haproxy 10.0.0.1:8081 10.0.0.1:9001
run vip 10.96.0.10:80 10.96.0.10:9000
echo "== $IDLE idle connections through the VIP, proxy mode (fd limit $(ulimit -n))"
idle "$IDLE"
stop_vip
start_vip vip-kernel -kernel
run vip-kernel 10.96.0.10:80 10.96.0.10:9000
echo "== 10000 idle connections through the VIP, kernel mode"
idle 10000
stop_vip

echo "== nftables programming (Go benchmarks, in a namespace of their own)"
go test -run '^$' -bench 'NFT|ProxyUpdate' -benchtime 20x ./bench/proxy/ | grep -E '^Benchmark'
