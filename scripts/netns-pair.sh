# Sourced by the capture and oracle scripts: two namespaces joined by a veth pair.
#   netns_pair NS_A NS_B DEV_A DEV_B ADDR_A ADDR_B   (addresses with their /prefix)
# removes namespaces of those names first, then makes both with the pair and lo up,
# and sets an EXIT trap that kills $SRV (if the caller started one) and removes them.
netns_pair_cleanup() {
  [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null || true
  ip netns del "$NETNS_PAIR_A" 2>/dev/null || true
  ip netns del "$NETNS_PAIR_B" 2>/dev/null || true
}
netns_pair() {
  NETNS_PAIR_A=$1
  NETNS_PAIR_B=$2
  trap netns_pair_cleanup EXIT
  netns_pair_cleanup
  ip netns add "$1"
  ip netns add "$2"
  ip link add "$3" netns "$1" type veth peer name "$4" netns "$2"
  ip -n "$1" addr add "$5" dev "$3"
  ip -n "$2" addr add "$6" dev "$4"
  ip -n "$1" link set "$3" up
  ip -n "$2" link set "$4" up
  ip -n "$1" link set lo up
  ip -n "$2" link set lo up
}
