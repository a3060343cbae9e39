#!/bin/sh
# Regenerates test/fixtures/nft/*.out: each *.nft loaded into the kernel's nftables in a
# fresh namespace of its own, then listed (plain, -s, -t, -a). Needs root and nft.
# NFT_FIXTURE_NS names the namespaces (default tsnn-nftfix); fib-errors.txt's lines
# are run against fib-errors.setup as nat-errors.txt's are.
set -e
dir=$(dirname "$0")/../test/fixtures/nft
nsname=${NFT_FIXTURE_NS:-tsnn-nftfix}
for f in "$dir"/*.nft; do
  b=${f%.nft}
  ns=$nsname-$$
  ip netns add "$ns"
  trap 'ip netns del "$ns"' EXIT
  ip netns exec "$ns" nft -f "$f"
  ip netns exec "$ns" nft list ruleset > "$b.out"
  ip netns exec "$ns" nft -s list ruleset > "$b.s.out"
  ip netns exec "$ns" nft -t list ruleset > "$b.t.out"
  ip netns exec "$ns" nft -a list ruleset > "$b.a.out"
  ip netns exec "$ns" nft -j list ruleset > "$b.j.out"
  ip netns exec "$ns" nft -n list ruleset > "$b.n.out"
  ip netns exec "$ns" nft -y list ruleset > "$b.y.out"
  ip netns exec "$ns" nft -p list ruleset > "$b.p.out"
  ip netns del "$ns"
  trap - EXIT
done
# A sequence of command lines, one nft run each, then the listing with handles.
ns=$nsname-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
while IFS= read -r line; do
  set -f
  ip netns exec "$ns" nft $line || echo "failed: $line" >&2
  set +f
done < "$dir/commands.txt"
ip netns exec "$ns" nft -a list ruleset > "$dir/commands.a.out"
ip netns del "$ns"
trap - EXIT

# Errors: each line of NAME-errors.txt run against NAME-errors.setup loaded in a fresh
# namespace; what nft printed and its exit code.
for name in nat fib; do
out="$dir/$name-errors.out"
: > "$out"
while IFS= read -r line; do
  ns=$nsname-$$
  ip netns add "$ns"
  trap 'ip netns del "$ns"' EXIT
  ip netns exec "$ns" nft -f "$dir/$name-errors.setup"
  printf '$ nft %s\n' "$line" >> "$out"
  set -f
  if ip netns exec "$ns" nft $line >> "$out" 2>&1; then :; else printf '(exit %s)\n' "$?" >> "$out"; fi
  set +f
  ip netns del "$ns"
  trap - EXIT
done < "$dir/$name-errors.txt"
done
