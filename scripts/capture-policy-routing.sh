#!/bin/sh
# Regenerates test/fixtures/SET/expected.txt from the kernel, for SET one of
# iproute2-policy and iproute2-local (default: all of them): runs each command
# of SET/commands.txt in order in a fresh network namespace with two veth links
# e0 and e1, addressed as the file's `# host:` line says, and stores what
# iproute2 prints. IPv6 is off (its routes would show in `table all`) and lo is
# left down (no 127/8 routes), as on the stack. Needs root and iproute2.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
sets=${*:-iproute2-policy iproute2-local}
ns="tsrg-policy-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
run() { ip netns exec "$ns" "$@"; }
for set in $sets; do
  dir="$here/test/fixtures/$set"
  # A fresh namespace for each set.
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  run sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  run sysctl -qw net.ipv6.conf.default.disable_ipv6=1
  run ip link add e0 type veth peer name p0
  run ip link add e1 type veth peer name p1
  for d in p0 p1 e0 e1; do run ip link set "$d" up; done
  # `# host: e0 A/LEN e1 B/LEN`
  set -- $(sed -n 's/^# host: //p' "$dir/commands.txt")
  while [ $# -ge 2 ]; do
    run ip addr add "$2" dev "$1"
    shift 2
  done
  out="$dir/expected.txt"
  : > "$out"
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    printf '$ %s\n' "$line" >> "$out"
    if run sh -c "$line" >> "$out" 2>&1; then :; else printf '(exit %s)\n' "$?" >> "$out"; fi
  done < "$dir/commands.txt"
done
