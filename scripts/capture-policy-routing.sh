#!/bin/sh
# Regenerates test/fixtures/iproute2-policy/*.txt from the kernel: runs each
# command of commands.txt in a fresh network namespace with two veth links
# and stores what iproute2 prints. Needs root and iproute2.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dir="$here/test/fixtures/iproute2-policy"
ns="tapstack-policy-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
run() { ip netns exec "$ns" "$@"; }
run ip link add e0 type veth peer name p0
run ip link add e1 type veth peer name p1
run ip link set p0 up
run ip link set p1 up
run ip link set e0 up
run ip link set e1 up
run ip addr add 10.0.0.2/24 dev e0
run ip addr add 10.1.0.2/16 dev e1
out="$dir/expected.txt"
: > "$out"
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  # shellcheck disable=SC2086
  printf '$ %s\n' "$line" >> "$out"
  if run sh -c "$line" >> "$out" 2>&1; then :; else printf '(exit %s)\n' "$?" >> "$out"; fi
done < "$dir/commands.txt"
