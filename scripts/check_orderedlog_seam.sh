#!/usr/bin/env bash
# Enforces the OrderedLog seam (DESIGN.md, "Data flow"): only the backends
# below orderedlog/ may touch a storage or consensus library (Badger, bolt,
# Raft) — not the rest of the repo and not the interface package
# orderedlog/ itself — and the protected key prefixes are spelled out only in
# orderedlog/ and cluster/keys.go, the one place that builds keys for
# everyone else, so every write to them has to go through Propose.
#
# Usage: check_orderedlog_seam.sh [repo-root]
# Default root: the git toplevel of this script, else the script's parent dir.
# Exit 0 when clean, 1 with one "file:line: problem" per violation, 2 on misuse.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ $# -gt 1 ]]; then
	echo "usage: $0 [repo-root]" >&2
	exit 2
fi
root=${1:-$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || dirname "$script_dir")}
if [[ ! -d $root ]]; then
	echo "check_orderedlog_seam: $root is not a directory" >&2
	exit 2
fi
cd "$root"

# Go files, relative to root, minus what the go tool ignores too (vendor,
# testdata, dot and underscore directories).
mapfile -d '' all < <(find . \( -type d \( -name vendor -o -name testdata -o -name '.?*' -o -name '_*' \) -prune \) \
	-o -type f -name '*.go' -print0 | sort -z)
outside=() # every Go file outside orderedlog/
literal=() # ... and not a test or cluster/keys.go
iface=()   # the interface package: orderedlog/*.go
for f in "${all[@]}"; do
	f=${f#./}
	case $f in
	orderedlog/*/*) continue ;;
	orderedlog/*)
		iface+=("$f")
		continue
		;;
	esac
	outside+=("$f")
	case $f in *_test.go | cluster/keys.go) continue ;; esac
	literal+=("$f")
done

violations=0
report() { # grep -n output ("file:line:text") and the problem
	while IFS=: read -r file line _; do
		echo "$file:$line: $1" >&2
		violations=$((violations + 1))
	done
}

# An import line (single or in a block, with or without a name) of a library
# only a backend may use: Badger, bolt (both module paths) and hashicorp/raft
# with its stores (raft-boltdb, ...).
backend_libs='^[[:space:]]*(import[[:space:]]+)?([A-Za-z_.][A-Za-z0-9_]*[[:space:]]+)?"(github\.com/dgraph-io/badger|go\.etcd\.io/bbolt|github\.com/boltdb/bolt|github\.com/hashicorp/raft)'
if ((${#outside[@]} > 0)); then
	report "imports a storage or consensus library (Badger, bolt, Raft); only the backends below orderedlog/ may (use orderedlog.Log instead)" \
		< <(grep -HnE "$backend_libs" -- "${outside[@]}" || true)
fi
if ((${#iface[@]} > 0)); then
	report "the interface package imports a storage or consensus library; that belongs in a backend below orderedlog/" \
		< <(grep -HnE "$backend_libs" -- "${iface[@]}" || true)
fi
# A string literal starting with a protected prefix means a key built by
# hand. Whole-line comments are skipped.
if ((${#literal[@]} > 0)); then
	report "protected key prefix in a string literal; build keys with cluster/keys.go and write them through orderedlog Propose" \
		< <(grep -HnE "[\"\`](network|endpoints|local_instances|policy|nodes)/" -- "${literal[@]}" |
			grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
fi

if ((violations > 0)); then
	echo "check_orderedlog_seam: $violations violation(s) of the OrderedLog seam" >&2
	exit 1
fi
echo "check_orderedlog_seam: ok (${#all[@]} Go files)"
