#!/bin/sh
# Regenerates test/fixtures/nft/*.out: each *.nft loaded into the kernel's nftables in a
# namespace of its own, then listed (plain, -s, -t). Needs root and nft.
set -e
dir=$(dirname "$0")/../test/fixtures/nft
ns=tapstack-nftfix-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
for f in "$dir"/*.nft; do
  b=${f%.nft}
  ip netns exec "$ns" nft flush ruleset
  ip netns exec "$ns" nft -f "$f"
  ip netns exec "$ns" nft list ruleset > "$b.out"
  ip netns exec "$ns" nft -s list ruleset > "$b.s.out"
  ip netns exec "$ns" nft -t list ruleset > "$b.t.out"
done
