#!/bin/bash
# The daemon's iperf3 service on a TAP, the kernel's iperf3 client in a namespace, as
# bench/tcp.mjs sets them up, for quick runs of a few iperf3 commands.
#
#   scripts/iperf3-stack.sh [-n NS] [-d DEV] [-s SUBNET] [-m MTU] [-p PROFDIR] -- 'IPERF3 ARGS' ...
#
# Each argument after `--` is one iperf3 client run (`-c ADDR -p 5201` is added), e.g.
#   scripts/iperf3-stack.sh -- '-t 5 -R' '-t 5 -R -P 4'
# Prints each run's received Gb/s and iperf3's CPU figure for the client, the daemon's
# CPU time (clock ticks), `ip -s link` of the kernel side (frames and bytes per frame the
# stack wrote, drops) and the stack's retransmissions. -p DIR runs the daemon under
# `node --cpu-prof` (sum the profile with bench/cpuprofile-top.mjs). DIST=DIR runs
# another build of dist/ (a copy at the top of the checkout, so it finds build/Release),
# for A/B runs in one hold of the lock.
# INTERVALS=1 prints iperf3's intervals (Gb/s: sum/streams); SS=SECONDS prints both
# sides' `ss -tin` that far into each run; TRACE=MS prints `tapstack trace tcp` samples
# of the daemon's iperf3 connections every MS during each run (4 s at most).
# Needs root; run it under `flock /tmp/tapstack-heavy.lock`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=tsipf
DEV=tsipf0
SUBNET=10.233.126
MTU=1500
PROF=
DIST=${DIST:-$ROOT/dist}
while getopts n:d:s:m:p: o; do
  case $o in
    n) NS=$OPTARG ;; d) DEV=$OPTARG ;; s) SUBNET=$OPTARG ;; m) MTU=$OPTARG ;; p) PROF=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill -INT "$PID" 2>/dev/null && { for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done; }
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$DEV" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up
printf 'link add %s type tap mtu %s\naddr add %s.2/24 dev %s\nservice add iperf3 tcp :5201\n' "$DEV" "$MTU" "$SUBNET" "$DEV" > "$WORK/d.conf"
NODEARGS=()
[ -n "$PROF" ] && { mkdir -p "$PROF"; NODEARGS=(--cpu-prof --cpu-prof-dir="$PROF"); }
node "${NODEARGS[@]}" "$DIST/cli.js" daemon -c "$WORK/d.conf" --ctl "$WORK/ctl.sock" --log-level warn &
PID=$!
for _ in $(seq 100); do [ -S "$WORK/ctl.sock" ] && ip link show "$DEV" >/dev/null 2>&1 && break; sleep 0.1; done
ip link set "$DEV" netns "$NS"
ip -n "$NS" addr add "$SUBNET.1/24" dev "$DEV"
ip -n "$NS" link set "$DEV" mtu "$MTU" up
sleep 0.3
ctl() { node "$DIST/cli.js" --ctl "$WORK/ctl.sock" "$@"; }
# The daemon's user and system CPU time, in clock ticks.
cpu() { awk '{print $14, $15}' "/proc/$PID/stat"; }
link() { ip -n "$NS" -s -j link show "$DEV" | node -e 'const j=JSON.parse(require("fs").readFileSync(0));const s=j[0].stats64;console.log(s.rx.packets,s.rx.bytes,s.rx.dropped,s.tx.packets,s.tx.dropped)'; }
for a in "$@"; do
  read -r p0 b0 d0 tp0 td0 < <(link)
  c0=$(cpu)
  r0=$(ctl nstat -z | awk '/TcpRetransSegs/{print $2}')
  if [ -n "${SS:-}" ]; then
    (sleep "$SS"; echo "--- stack ss -tin"; ctl ss -tin; echo "--- kernel ss -tin"; ip netns exec "$NS" ss -tin) > "$WORK/ss.txt" 2>&1 &
    SSPID=$!
  fi
  if [ -n "${TRACE:-}" ]; then
    ctl trace tcp sport = :5201 --interval "$TRACE" --duration 4 --csv "$WORK/trace.csv" > /dev/null 2>&1 &
    TRPID=$!
  fi
  out=$(ip netns exec "$NS" iperf3 -c "$SUBNET.2" -p 5201 -J $a || true)
  read -r p1 b1 d1 tp1 td1 < <(link)
  c1=$(cpu)
  r1=$(ctl nstat -z | awk '/TcpRetransSegs/{print $2}')
  gbps=$(printf '%s' "$out" | node -e 'const j=JSON.parse(require("fs").readFileSync(0));if(j.error){console.log("error:"+j.error)}else{const c=j.end.cpu_utilization_percent;console.log((j.end.sum_received.bits_per_second/1e9).toFixed(2)+" Gb/s, client cpu "+c.host_total.toFixed(0)+"% (sys "+c.host_system.toFixed(0)+"%)")}' 2>/dev/null || echo parse-error)
  [ -n "${INTERVALS:-}" ] && printf '%s' "$out" | node -e 'const j=JSON.parse(require("fs").readFileSync(0));console.log((j.intervals||[]).map(i=>i.sum.end.toFixed(1)+":"+(i.sum.bits_per_second/1e9).toFixed(1)+"/"+i.streams.map(s=>(s.bits_per_second/1e9).toFixed(1)).join(",")).join("\n"))' || true
  [ -n "${SS:-}" ] && { wait "$SSPID"; cat "$WORK/ss.txt"; }
  [ -n "${TRACE:-}" ] && { wait "$TRPID" || true; cat "$WORK/trace.csv"; }
  fr=$((p1 - p0)); by=$((b1 - b0))
  read -r u0 s0 <<<"$c0"; read -r u1 s1 <<<"$c1"
  echo "iperf3 $a: $gbps; daemon cpu ticks user $((u1 - u0)) sys $((s1 - s0)); kernel rx frames $fr bytes/frame $((fr > 0 ? by / fr : 0)) rx dropped $((d1 - d0)); kernel tx frames $((tp1 - tp0)) tx dropped $((td1 - td0)); stack retrans $((r1 - r0))"
done
