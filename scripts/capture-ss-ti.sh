#!/usr/bin/env bash
# Captures the kernel's `ss -tin` for a live CUBIC transfer (iperf3 -C cubic between two
# namespaces over a veth pair, 2% of the data dropped by nft's numgen so that
# recovery's fields show) into test/fixtures/ss/kernel-ti-cubic.txt: the sender's
# and the receiver's connection, as ss 6.1 prints them. test/unit/ss-info.test.ts
# reads each line into tcp_info's fields and prints it back with the stack's
# formatter, which must give the same bytes. Needs root; uses the namespaces
# tscv-cap-a and tscv-cap-b only, removed at the end (also on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
A=tscv-cap-a
B=tscv-cap-b
OUT=test/fixtures/ss/kernel-ti-cubic.txt
. scripts/netns-pair.sh
netns_pair "$A" "$B" tscvcap0 tscvcap1 10.233.99.1/24 10.233.99.2/24
ip netns exec "$B" nft add table inet tscvcap
ip netns exec "$B" nft add chain inet tscvcap in '{ type filter hook input priority 0; }'
ip netns exec "$B" nft add rule inet tscvcap in tcp dport 5201 meta length gt 1000 numgen random mod 100 '<' 2 drop
ip netns exec "$B" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
SRV=$!
sleep 0.5
ip netns exec "$A" iperf3 -c 10.233.99.2 -p 5201 -t 3 -C cubic >/dev/null 2>&1 &
CLI=$!
sleep 2
# The info lines (they start with a tab) of the CUBIC data connection on each side;
# trailing padding, which depends on the terminal layout, is cut.
SND=$(ip netns exec "$A" ss -tin | grep -P '^\t.* cubic .*bytes_sent' | head -1 | sed 's/ *$//')
RCV=$(ip netns exec "$B" ss -tin | grep -P '^\t.* cubic .*bytes_received' | head -1 | sed 's/ *$//')
wait "$CLI" || true
{
  echo "# $(ss -V), kernel $(uname -r); scripts/capture-ss-ti.sh: the sender's, then the receiver's tcp_info line"
  printf '%s\n' "$SND" "$RCV"
} >"$OUT"
echo "wrote $OUT"
cat "$OUT"
