#!/usr/bin/env bash
# Installs the Debian packages the test suite drives, when missing. Only as
# root with apt-get; elsewhere it says what is missing and the privileged
# tests skip (or fail under RUNE_E2E=1).
set -euo pipefail
need=()
command -v ip  >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v dig >/dev/null || need+=(dnsutils)
# The ingress's h2spec test runs it in a mount namespace of its own.
command -v unshare >/dev/null || need+=(util-linux)
command -v mount >/dev/null || need+=(mount)
# promtool checks deploy/prometheus/ (Debian ships it only with the server).
command -v promtool >/dev/null || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
	echo "missing test tools: ${need[*]} (install them, or run as root on Debian to have make do it)" >&2
	exit 0
fi
echo "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Only promtool is wanted: do not leave a Prometheus server running.
if [[ " ${need[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
	systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
