#!/usr/bin/env bash
# Cross-node benchmark (docs/benchmarks.md, "Across nodes"), in one run:
# HTTP req/s from a container on node n2 to a server container on node n1,
# through the service VIP (n2 in proxy mode, then restarted in kernel mode)
# and to the container's address directly (routed via n1), each with
# keep-alive and with a new connection per request.
# It is BenchmarkCrossNode in test/cluster, on that package's harness: real
# runed processes (a two-node Raft cluster) in network namespaces the test
# creates and deletes, the Go load client and server in container
# namespaces on the nodes' subnets. Needs root.
# BENCHTIME (default 3s) per way, COUNT (1) repetitions.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go test ./test/cluster -run '^$' -bench 'BenchmarkCrossNode' \
	-benchtime "${BENCHTIME:-3s}" -count "${COUNT:-1}" -timeout 20m
