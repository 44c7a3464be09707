#!/usr/bin/env bash
# Ingress benchmark (docs/benchmarks.md, "Ingress"), side by side in one run:
# wrk through runed's ingress vs Caddy (reverse_proxy) vs nginx (proxy_pass
# with upstream keep-alive) vs the backend direct, over HTTP and HTTPS, all
# against the same loopback backend answering "ok".
# Everything runs inside a network namespace this script creates and deletes,
# so traffic stays on that namespace's loopback. Needs root.
# DURATION (default 10s), THREADS (1), CONNS (50) tune each wrk run;
# EDGE_ARGS adds flags to the edge (e.g. "-cpuprofile /tmp/edge.prof").
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
THREADS=${THREADS:-1}
CONNS=${CONNS:-50}
HOST=bench.local

for pkg in wrk caddy nginx; do
	command -v "$pkg" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${pkg/nginx/nginx-light}" >/dev/null; }
done

NS=runeingress-$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK" "/etc/netns/$NS"
}
trap cleanup EXIT

go build -o "$WORK/" ./bench/proxy/backend ./bench/ingress/edge
ip netns add "$NS"
X=(ip netns exec "$NS")
"${X[@]}" ip link set lo up
# `ip netns exec` bind-mounts this over /etc/hosts, so wrk's URLs (and SNI)
# can name the exposed host.
mkdir -p "/etc/netns/$NS" && echo "127.0.0.1 $HOST plain.$HOST" >"/etc/netns/$NS/hosts"

# Every address of the namespace's lo: the edge's two routes use 127.0.0.1 and .2.
"${X[@]}" "$WORK/backend" -http :8080 -source 127.0.0.1:9000 &
PIDS+=($!)
"${X[@]}" "$WORK/edge" -data-dir "$WORK/log" -host "$HOST" -backend 127.0.0.1:8080 \
	-http 127.0.0.1:8081 -https 127.0.0.1:8443 -cert-out "$WORK/cert.pem" ${EDGE_ARGS:-} &
PIDS+=($!)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=$HOST" \
	-addext "subjectAltName=DNS:$HOST" -keyout "$WORK/other.key" -out "$WORK/other.pem" 2>/dev/null

cat >"$WORK/Caddyfile" <<CFG
{
	admin off
	auto_https off
	storage file_system $WORK/caddy
}
http://$HOST:8082 {
	reverse_proxy 127.0.0.1:8080
}
https://$HOST:8444 {
	tls $WORK/other.pem $WORK/other.key
	reverse_proxy 127.0.0.1:8080
}
CFG
"${X[@]}" env HOME="$WORK" XDG_DATA_HOME="$WORK" XDG_CONFIG_HOME="$WORK" caddy run --config "$WORK/Caddyfile" --adapter caddyfile >"$WORK/caddy.log" 2>&1 &
PIDS+=($!)

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<CFG
worker_processes $(nproc);
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx;
	proxy_temp_path $WORK/nginx;
	fastcgi_temp_path $WORK/nginx;
	uwsgi_temp_path $WORK/nginx;
	scgi_temp_path $WORK/nginx;
	upstream backend {
		server 127.0.0.1:8080;
		keepalive 64;
	}
	server {
		listen 127.0.0.1:8083;
		listen 127.0.0.1:8445 ssl;
		ssl_certificate $WORK/other.pem;
		ssl_certificate_key $WORK/other.key;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$remote_addr;
		}
	}
}
CFG
"${X[@]}" nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

wait_http() { # URL: until it answers 200
	for _ in $(seq 100); do
		# 200 exactly: a redirect would make the figures measure redirects.
		[ "$("${X[@]}" curl -ks -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	exit 1
}
for u in http://127.0.0.1:8080/ "http://plain.$HOST:8081/" "https://$HOST:8443/" "http://$HOST:8082/" "https://$HOST:8444/" "http://$HOST:8083/" "https://$HOST:8445/"; do
	wait_http "$u"
done

run() { # name URL
	local out errors
	out=$("${X[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$2")
	errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | paste -sd';' || true)
	printf '%-16s %12s req/s  p50 %8s  p99 %8s  errors %s\n' "$1" \
		"$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
		"$(awk '$1 == "50%" {print $2}' <<<"$out")" \
		"$(awk '$1 == "99%" {print $2}' <<<"$out")" \
		"${errors:-none}"
}
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) CPUs, backend answers \"ok\""
run "direct"         http://127.0.0.1:8080/
run "runed ingress"  "http://plain.$HOST:8081/"  # $HOST itself redirects to HTTPS
run "caddy"          "http://$HOST:8082/"
run "nginx"          "http://$HOST:8083/"
run "runed https"    "https://$HOST:8443/"
run "caddy https"    "https://$HOST:8444/"
run "nginx https"    "https://$HOST:8445/"
