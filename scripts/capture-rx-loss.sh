#!/usr/bin/env bash
# Captures the kernel sending to a receiver through the loss bench's impairment (1 % or
# more random loss of data segments by nft numgen in a kernel router, 5 ms of netem each
# way on a tapstack router), once with the kernel receiving and once with the stack
# receiving, so the receivers' ACK streams can be compared side by side:
#
#   rl-k (10.233.200.1) -veth- rl-m [nft loss] -- rla [router daemon: netem 5ms]
#     rlb -- rl-s (10.233.202.1, iperf3 -s) -- rle [stack daemon 10.233.203.2, iperf3 service]
#
# For each receiver: tcpdump on the sender's link in rl-k (headers only) and `ss -tin`
# sampled every 100 ms on the sender. Output in $OUT (default /tmp/rl-capture):
# {kernel,stack}N.pcap (sender side), {kernel,stack}N-rx.pcap (receiver side in rl-s), {kernel,stack}.ss, {kernel,stack}.json (iperf3) and a summary made
# with tshark (ACKs per data segment, SACK blocks, D-SACK, windows, delays).
# Run under the heavy lock: flock /tmp/tapstack-heavy.lock scripts/capture-rx-loss.sh [loss%] [seconds]
set -euo pipefail
LOSS=${1:-1}
SECS=${2:-6}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/rl-capture}
CLI="$ROOT/dist/cli.js"
WORK=$(mktemp -d /tmp/rl-work.XXXX)
mkdir -p "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in rl-k rl-m rl-s; do ip netns del $ns 2>/dev/null || true; done
  for l in rla rlb rle; do ip link del $l 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
for ns in rl-k rl-m rl-s; do ip netns del $ns 2>/dev/null || true; ip netns add $ns; done
ip link add rlk0 netns rl-k type veth peer name rlm0 netns rl-m
ip -n rl-k addr add 10.233.200.1/24 dev rlk0; ip -n rl-k link set rlk0 up; ip -n rl-k link set lo up
ip -n rl-k route add default via 10.233.200.2
ip -n rl-m addr add 10.233.200.2/24 dev rlm0; ip -n rl-m link set rlm0 up
ip netns exec rl-m sysctl -qw net.ipv4.ip_forward=1

daemon() { # name devs... (config on stdin)
  local name=$1; shift
  cat > "$WORK/$name.conf"
  node "$CLI" daemon -c "$WORK/$name.conf" --ctl "$WORK/$name.sock" --log-level warn &
  PIDS+=($!)
  for _ in $(seq 100); do
    local ok=1
    for d in "$@"; do ip link show "$d" >/dev/null 2>&1 || ok=0; done
    [ -S "$WORK/$name.sock" ] && [ $ok = 1 ] && return 0
    sleep 0.1
  done
  echo "daemon $name did not start" >&2; exit 1
}
daemon router rla rlb <<'EOF'
link add rla type tap
link add rlb type tap
addr add 10.233.201.2/24 dev rla
addr add 10.233.202.2/24 dev rlb
route add 10.233.203.0/24 via 10.233.202.1
route add 10.233.200.0/24 via 10.233.201.1
sysctl -w net.ipv4.ip_forward=1
tc qdisc add dev rla root netem delay 5ms
tc qdisc add dev rlb root netem delay 5ms
EOF
daemon stack rle <<'EOF'
link add rle type tap
addr add 10.233.203.2/24 dev rle
route add default via 10.233.203.1
service add iperf3 tcp :5201
EOF
ip link set rla netns rl-m; ip -n rl-m addr add 10.233.201.1/24 dev rla; ip -n rl-m link set rla up
ip -n rl-m route add default via 10.233.201.2
ip link set rlb netns rl-s; ip -n rl-s addr add 10.233.202.1/24 dev rlb; ip -n rl-s link set rlb up; ip -n rl-s link set lo up
ip -n rl-s route add default via 10.233.202.2
ip link set rle netns rl-s; ip -n rl-s addr add 10.233.203.1/24 dev rle; ip -n rl-s link set rle up
ip netns exec rl-s sysctl -qw net.ipv4.ip_forward=1
ip netns exec rl-k ethtool -K rlk0 tso off gso off gro off >/dev/null
ip netns exec rl-m ethtool -K rlm0 tso off gso off gro off >/dev/null
ip netns exec rl-m ethtool -K rla gso off gro off >/dev/null 2>&1 || true
ip netns exec rl-s ethtool -K rlb tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec rl-s iperf3 -s -p 5201 >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
ip netns exec rl-k ping -c 2 -i 0.2 10.233.203.2 >/dev/null || true
ip netns exec rl-k ping -c 5 -i 0.1 10.233.203.2 | tail -1
# Warm up the stack's daemon without loss.
ip netns exec rl-k iperf3 -c 10.233.203.2 -t 2 -C cubic >/dev/null
ip netns exec rl-m nft -f - <<EOF
table inet rlloss {
 chain lossy { type filter hook forward priority 0; ip protocol tcp meta length gt 200 numgen random mod 100 lt $LOSS counter drop; }
}
EOF

capture() { # label host receiver-side-device
  local label=$1 host=$2 rdev=$3
  ip netns exec rl-k tcpdump -i rlk0 -s 128 -U -w "$OUT/$label.pcap" "tcp port 5201" 2>/dev/null &
  local td=$!
  ip netns exec rl-s tcpdump -i "$rdev" -s 128 -U -w "$OUT/$label-rx.pcap" "tcp port 5201" 2>/dev/null &
  local tr=$!
  sleep 0.5
  ( while :; do ip netns exec rl-k ss -tin dst "$host" dport = :5201 | sed "s/^/$(date +%s.%N) /"; sleep 0.1; done ) > "$OUT/$label.ss" &
  local sp=$!
  ( while :; do node "$CLI" --ctl "$WORK/stack.sock" ss -tin | sed "s/^/$(date +%s.%N) /"; sleep 0.2; done ) > "$OUT/$label.stack-ss" 2>&1 &
  local sq=$!
  ip netns exec rl-k iperf3 -c "$host" -p 5201 -t "$SECS" -C cubic -J > "$OUT/$label.json"
  kill $sp $sq; sleep 0.5; kill $td $tr; wait $td $tr 2>/dev/null || true
  python3 -c "import json,sys; j=json.load(open('$OUT/$label.json')); print('$label', round(j['end']['sum_received']['bits_per_second']/1e6,2), 'Mb/s, retrans', j['end']['sum_sent'].get('retransmits'))"
}
for i in $(seq ${ROUNDS:-1}); do
  capture kernel$i 10.233.202.1 rlb
  capture stack$i 10.233.203.2 rle
done
ip netns exec rl-m nft list table inet rlloss | grep counter
