#!/bin/sh
# Regenerates test/fixtures/tc-htb/expected.txt from the kernel: runs each
# command of test/fixtures/tc-htb/commands.txt in order in a fresh network
# namespace (tstch-capture) holding a TAP device e0 as the stack's (one tx
# queue, so `refcnt 2`; no carrier, so nothing is sent behind the commands'
# back), and stores what tc prints (stdout and stderr) with `(exit N)` after
# a failing command. Needs root, iproute2 and a kernel with sch_htb and
# cls_u32.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dir="$here/test/fixtures/tc-htb"
ns="tstch-capture"
ip netns del "$ns" 2>/dev/null || true
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
run() { ip netns exec "$ns" "$@"; }
run ip tuntap add dev e0 mode tap
run ip link set e0 up
out="$dir/expected.txt"
: > "$out"
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  printf '$ %s\n' "$line" >> "$out"
  if run sh -c "$line" >> "$out" 2>&1; then :; else printf '(exit %s)\n' "$?" >> "$out"; fi
done < "$dir/commands.txt"
printf '# tc %s, kernel %s; from commands.txt by scripts/capture-tc-htb.sh\n' "$(tc -V | sed 's/^tc utility, //')" "$(uname -r)" > "$out.tmp"
cat "$out" >> "$out.tmp"
mv "$out.tmp" "$out"
