#!/usr/bin/env bash
# Data plane benchmarks, side by side in one run (docs/benchmarks.md, "Data plane"):
#   - wrk HTTP keep-alive and new connections per second: through a VIP (nftables
#     redirect + runed's proxy) vs the same backend direct vs HAProxy (TCP mode);
#   - bulk TCP throughput through each;
#   - 10,000 idle connections held through the VIP: memory and fds per connection;
#   - nftables programming: 10,000 services x 3 endpoints, then one change.
# Everything runs inside a network namespace this script creates and deletes:
# traffic stays on that namespace's loopback and the host's ruleset is untouched.
# Needs root. DURATION (default 10s) sets each wrk/bulk run.
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
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/" ./bench/proxy/backend ./bench/proxy/vipproxy ./bench/proxy/loadgen
ip netns add "$NS"
X=(ip netns exec "$NS")
"${X[@]}" ip link set lo up

# Backend: HTTP on :8080, a streaming source on :9000.
"${X[@]}" "$WORK/backend" -http 127.0.0.1:8080 -source 127.0.0.1:9000 &
PIDS+=($!)

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
	bind 127.0.0.1:8081
	server s1 127.0.0.1:8080
listen bulk
	bind 127.0.0.1:9001
	server s1 127.0.0.1:9000
CFG
"${X[@]}" haproxy -db -f "$WORK/haproxy.cfg" &
PIDS+=($!)

# runed's data plane: VIP 10.96.0.10 ports 80 and 9000 → the backend.
mkfifo "$WORK/vip.in"
"${X[@]}" "$WORK/vipproxy" -map 10.96.0.10:80=127.0.0.1:8080 -map 10.96.0.10:9000=127.0.0.1:9000 <"$WORK/vip.in" >"$WORK/vip.out" &
VIPPID=$!
PIDS+=($VIPPID)
exec 3>"$WORK/vip.in"
until grep -q ready "$WORK/vip.out"; do sleep 0.1; done
sleep 0.5

declare -A HTTP=([direct]=127.0.0.1:8080 [vip]=10.96.0.10:80 [haproxy]=127.0.0.1:8081)
declare -A BULK=([direct]=127.0.0.1:9000 [vip]=10.96.0.10:9000 [haproxy]=127.0.0.1:9001)
ORDER=(direct vip haproxy)

rps() { "${X[@]}" wrk "$@" | awk '/Requests\/sec/ {print $2}'; }

echo "== wrk -t1 -c50 -d$DURATION, keep-alive (req/s)"
for t in "${ORDER[@]}"; do printf '%-8s %s\n' "$t" "$(rps -t1 -c50 -d"$DURATION" "http://${HTTP[$t]}/")"; done
echo "== wrk -t1 -c50 -d$DURATION, Connection: close (new connections/s)"
for t in "${ORDER[@]}"; do printf '%-8s %s\n' "$t" "$(rps -t1 -c50 -d"$DURATION" -H 'Connection: close' "http://${HTTP[$t]}/")"; done
echo "== bulk, one connection for $DURATION"
for t in "${ORDER[@]}"; do printf '%-8s %s\n' "$t" "$("${X[@]}" "$WORK/loadgen" bulk -addr "${BULK[$t]}" -duration "$DURATION")"; done

echo "== $IDLE idle connections through the VIP (fd limit $(ulimit -n))"
sleep 2 # let connections from the runs above finish
rss() { awk '/VmRSS/ {print $2}' "/proc/$VIPPID/status"; }
fds() { ls "/proc/$VIPPID/fd" | wc -l; }
tcpmem() { "${X[@]}" awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "mem") print $(i+1)}' /proc/net/sockstat; }
rss0=$(rss) fd0=$(fds) mem0=$(tcpmem)
mkfifo "$WORK/idle.in"
"${X[@]}" "$WORK/loadgen" idle -addr 10.96.0.10:80 -n "$IDLE" <"$WORK/idle.in" >"$WORK/idle.out" &
IDLEPID=$!
PIDS+=($IDLEPID)
exec 4>"$WORK/idle.in"
until grep -q held "$WORK/idle.out"; do sleep 0.2; done
sleep 2
rss1=$(rss) fd1=$(fds) mem1=$(tcpmem)
echo "held: $(cat "$WORK/idle.out")"
echo "proxy RSS: ${rss0} kB -> ${rss1} kB = $(((rss1 - rss0) * 1024 / IDLE)) bytes per connection"
echo "proxy fds: ${fd0} -> ${fd1} = $(((fd1 - fd0) / IDLE)) per connection"
echo "kernel TCP buffer pages (namespace, all sockets): ${mem0} -> ${mem1}"
exec 4>&-
wait "$IDLEPID"

exec 3>&-
wait "$VIPPID"

echo "== nftables programming (Go benchmarks, in a namespace of their own)"
go test -run '^$' -bench 'NFT|ProxyUpdate' -benchtime 20x ./bench/proxy/ | grep -E '^Benchmark'
