#!/usr/bin/env bash
# DNS benchmarks (docs/benchmarks.md, "DNS"): runed (its rune block with the
# UDP fast path, and the same block with `fastpath off`) vs stock CoreDNS of
# the same version serving the same names with `hosts`, and dnsmasq, dnsperf
# on the same machine, loopback only. Run from anywhere as root (or any user
# with apt-get already done):  bench/dns/run.sh
#
# The machine is shared and noisy, so servers alternate in short rounds and
# the summary gives each one's median QPS.
#
# Env: DURATION (dnsperf seconds per run, default 10), CLIENTS (default 10),
# ROUNDS (alternating rounds, default 5), BIG (default 100000;
# 0 skips the big-cluster runs), CHURN (changes per second cast while runed
# is measured again, as in a rolling deploy; default 1000, 0 skips). dnsmasq (dnsmasq-base) serves the same hosts
# file as the reference to beat.
set -euo pipefail

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-10}
ROUNDS=${ROUNDS:-5}
BIG=${BIG:-100000}
CHURN=${CHURN:-1000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d -t rune-dnsbench-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	rm -rf "$W"
}
trap cleanup EXIT

if ! command -v dnsperf >/dev/null || ! command -v dnsmasq >/dev/null; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf dnsmasq-base
fi

cd "$ROOT"
go build -o "$W/runed" ./cmd/runed
go build -o "$W/rune" ./cmd/rune
go build -o "$W/coredns" ./bench/dns/stockcoredns
go build -o "$W/dnsbench" ./bench/dns/dnsbench

# Both servers get the same extras (metrics and errors), only their answer
# plugin differs. runed's block is the rune block of its default Corefile;
# one runed serves it twice, on $2 with the fast path and on $2+3 without
# (`fastpath off`: every query through CoreDNS's server and plugin chain).
runed_corefile() { # data dir, port, cluster CIDR
	for fp in on off; do
		local port=$2
		[ $fp = on ] || port=$(($2 + 3))
		cat <<EOC
rune:$port $3:$port {
	bind 127.0.0.1
	rune {
		data_dir $1
		cluster_cidr $3
		fastpath $fp
	}
	runegate
	prometheus 127.0.0.1:9253
	errors
}
EOC
	done
}
cat >"$W/Corefile.hosts" <<EOC
rune:5302 {
	bind 127.0.0.1
	hosts $W/hosts1k
	prometheus 127.0.0.1:9254
	errors
}
EOC

start_runed() { # data dir, port, cluster CIDR
	runed_corefile "$1" "$2" "$3" >"$W/Corefile.runed"
	"$W/runed" -conf "$W/Corefile.runed" >>"$W/runed.log" 2>&1 &
	RUNED=$!
	PIDS+=("$RUNED")
	for _ in $(seq 300); do
		[ -S "$1/runed.sock" ] && dig +short +time=1 +tries=1 @127.0.0.1 -p "$2" rune. SOA >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "runed did not come up; log:" >&2; cat "$W/runed.log" >&2; exit 1
}
stop_runed() { kill "$RUNED"; wait "$RUNED" 2>/dev/null || true; }

cputicks() { awk '{print $14 + $15}' /proc/"$1"/stat; } # utime + stime
perf() { # label (server, then the round), port, query file, server pid
	echo "== $1"
	local t0
	t0=$(cputicks "$4")
	dnsperf -s 127.0.0.1 -p "$2" -d "$3" -l "$DURATION" -c "$CLIENTS" -T 1 -q 200 >"$W/perf.out"
	grep -E 'Queries sent|Queries completed|Queries lost|Response codes|Queries per second|Average Latency' "$W/perf.out"
	# Server CPU per answered query: unlike QPS, barely moved by whatever
	# else the shared machine runs meanwhile.
	awk -v s="${1% (round*}" -v ticks=$(($(cputicks "$4") - t0)) -v hz="$(getconf CLK_TCK)" '
		/Queries completed/ { done = $3 }
		/Queries per second/ { qps = $4 }
		END { printf "  Server CPU per query: %.1f us\n", ticks / hz * 1e6 / done
			printf "%s\t%s\t%.2f\n", s, qps, ticks / hz * 1e6 / done >> "'"$W/qps"'" }' "$W/perf.out"
}
median() { # per server measured since the last call: median QPS and CPU per query
	for col in 2 3; do
		sort -t$'\t' -k1,1 -k${col},${col}n "$W/qps" | awk -F'\t' -v col=$col '
			{ v[$1, ++n[$1]] = $col; if (!($1 in seen)) { seen[$1]; order[++k] = $1 } }
			END { for (i = 1; i <= k; i++) { s = order[i]; c = n[s]
				m = (c % 2) ? v[s, (c + 1) / 2] : (v[s, c / 2] + v[s, c / 2 + 1]) / 2
				printf "median %s, %s: %.1f over %d rounds\n", col == 2 ? "QPS" : "server CPU us/query", s, m, c
				if (col == 2) printf "%s\t%.1f\n", s, m >> "'"$W/medians"'" } }'
	done
	: >"$W/qps"
}
ratio() { # label, server a, server b: median QPS of a over b's
	awk -F'\t' -v a="$2" -v b="$3" -v l="$1" '$1 == a { x = $2 } $1 == b { y = $2 }
		END { if (x && y) printf "ratio %s: %.2f\n", l, x / y }' "$W/medians"
}
rss() { echo "RSS of $1: $(awk '/VmRSS/ {print $2, $3}' /proc/"$2"/status)"; }

echo "### 1,000 services: runed vs stock CoreDNS $("$W/coredns" -version | head -1) hosts"
start_runed "$W/data1k" 5301 10.96.0.0/16
"$W/dnsbench" seed -api "unix://$W/data1k/runed.sock" -n 1000 -hosts "$W/hosts1k" -queries "$W/q1k"
"$W/coredns" -conf "$W/Corefile.hosts" >"$W/coredns.log" 2>&1 &
COREDNS=$!
PIDS+=("$COREDNS")
dnsmasq -k -C /dev/null --port=5303 --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
		--addn-hosts="$W/hosts1k" --user=root --pid-file= >"$W/dnsmasq.log" 2>&1 &
DNSMASQ=$!
PIDS+=("$DNSMASQ")
sleep 1
for r in $(seq "$ROUNDS"); do
	perf "runed, 1,000 services (round $r)" 5301 "$W/q1k" "$RUNED"
	perf "runed fastpath off, 1,000 services (round $r)" 5304 "$W/q1k" "$RUNED"
	perf "CoreDNS hosts, 1,000 names (round $r)" 5302 "$W/q1k" "$COREDNS"
	perf "dnsmasq, 1,000 names (round $r)" 5303 "$W/q1k" "$DNSMASQ"
done
median
ratio "runed / dnsmasq, 1,000 names" "runed, 1,000 services" "dnsmasq, 1,000 names"
ratio "runed / CoreDNS hosts, 1,000 names" "runed, 1,000 services" "CoreDNS hosts, 1,000 names"
ratio "runed fastpath off / CoreDNS hosts, 1,000 names" "runed fastpath off, 1,000 services" "CoreDNS hosts, 1,000 names"
rss "runed (1,000 services)" "$RUNED"
rss "CoreDNS hosts (1,000 names)" "$COREDNS"
kill "$COREDNS" "$DNSMASQ"

if [ "$CHURN" -gt 0 ]; then
	echo "### 1,000 services, runed alone and while $CHURN changes/s are cast (other services)"
	for r in $(seq "$ROUNDS"); do
		perf "runed, 1,000 services, no changes (round $r)" 5301 "$W/q1k" "$RUNED"
		"$W/dnsbench" churn -api "unix://$W/data1k/runed.sock" -rate "$CHURN" -duration "$((DURATION + 1))s" &
		CHURNER=$!
		PIDS+=("$CHURNER")
		perf "runed, 1,000 services, $CHURN changes/s (round $r)" 5301 "$W/q1k" "$RUNED"
		wait "$CHURNER"
	done
	median
	ratio "runed while changing / runed alone" "runed, 1,000 services, $CHURN changes/s" "runed, 1,000 services, no changes"
fi

echo "### cast -> resolvable"
"$W/dnsbench" castlat -api "unix://$W/data1k/runed.sock" -dns 127.0.0.1:5301 -n 300
stop_runed

[ "$BIG" -gt 0 ] || exit 0
echo "### $BIG services"
# A /16 holds 65,534 VIPs: the big cluster gets a /12.
start_runed "$W/databig" 5301 10.96.0.0/12
"$W/dnsbench" seed -api "unix://$W/databig/runed.sock" -n "$BIG" -hosts "$W/hostsbig" -queries "$W/qbig"
for r in $(seq "$ROUNDS"); do
	perf "runed, $BIG services (round $r)" 5301 "$W/qbig" "$RUNED"
	perf "runed fastpath off, $BIG services (round $r)" 5304 "$W/qbig" "$RUNED"
done
median
ratio "runed $BIG / 1,000 services" "runed, $BIG services" "runed, 1,000 services"
rss "runed ($BIG services)" "$RUNED"
stop_runed

echo "### cold start with $BIG services in the store"
for _ in 1 2 3; do
	runed_corefile "$W/databig" 5301 10.96.0.0/12 >"$W/Corefile.runed"
	"$W/dnsbench" coldstart -dns 127.0.0.1:5301 -name "svc$((BIG - 1)).default.rune" -- "$W/runed" -conf "$W/Corefile.runed"
done
