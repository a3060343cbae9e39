#!/usr/bin/env bash
# Regenerates test/fixtures/conntrack/expected.txt from the real conntrack(8)
# (conntrack-tools) over the kernel's connection tracking: namespaces tsck-a
# (10.231.61.2) and tsck-b (10.231.62.2) on either side of a kernel router
# tsck-r (10.231.61.1, 10.231.62.1) whose nft ruleset tracks connections,
# masquerades tcp/5006 and udp/5007 and forwards 10.231.61.1:8080 to
# 10.231.62.2:80 (dnat). Flows: TCP established (5001, ct mark 42), TCP
# SYN_SENT unreplied (5002, dropped by tsck-b), TCP TIME_WAIT (5003), UDP
# replied (5004) and unreplied (5005), an ICMP echo (id 4660), TCP and UDP
# through masquerade, TCP through dnat. Source ports are fixed (400xx) so the
# tuples are the same on every run.
#
# Each case is recorded as:
#   $ conntrack ARGS        (the command)
#   lines                   (its stdout)
#   ! line                  (its stderr)
#   (exit N)                (its exit code, when not 0)
# Needs root, iproute2, nftables, conntrack, socat, python3. Run it under
# flock /tmp/tapstack-heavy.lock.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dir="$here/test/fixtures/conntrack"
out="$dir/expected.txt"
mkdir -p "$dir"
A=tsck-a R=tsck-r B=tsck-b
tmp=$(mktemp -d /tmp/tsck-capture.XXXXXX)

cleanup() {
  for ns in $A $B $R; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
cleanup
tmp=$(mktemp -d /tmp/tsck-capture.XXXXXX)

for ns in $A $R $B; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add tsck-a0 netns $A type veth peer name tsck-ra netns $R
ip link add tsck-b0 netns $B type veth peer name tsck-rb netns $R
ip -n $A addr add 10.231.61.2/24 dev tsck-a0
ip -n $R addr add 10.231.61.1/24 dev tsck-ra
ip -n $R addr add 10.231.62.1/24 dev tsck-rb
ip -n $B addr add 10.231.62.2/24 dev tsck-b0
for l in "$A tsck-a0" "$R tsck-ra" "$R tsck-rb" "$B tsck-b0"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n $A route add default via 10.231.61.1
ip -n $B route add default via 10.231.62.1
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1

ip netns exec $R nft -f - <<'EOF'
table ip filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    tcp dport 5001 ct mark set 42
    ct state established,related accept
    ct state new accept
  }
}
table ip nat {
  chain prerouting {
    type nat hook prerouting priority -100;
    ip daddr 10.231.61.1 tcp dport 8080 dnat to 10.231.62.2:80
  }
  chain postrouting {
    type nat hook postrouting priority 100;
    ip daddr 10.231.62.0/24 tcp dport 5006 masquerade
    ip daddr 10.231.62.0/24 udp dport 5007 masquerade
  }
}
EOF
# tsck-b: no answer at all on tcp/5002 and udp/5005 (SYN_SENT and UDP stay unreplied).
ip netns exec $B nft -f - <<'EOF'
table ip filter {
  chain input {
    type filter hook input priority 0;
    tcp dport 5002 drop
    udp dport 5005 drop
  }
}
EOF

# Servers in tsck-b.
for p in 5001 5006 80; do ip netns exec $B socat TCP-LISTEN:$p,reuseaddr,fork SYSTEM:'sleep 60' >/dev/null 2>&1 & done
ip netns exec $B socat TCP-LISTEN:5003,reuseaddr SYSTEM:'cat' >/dev/null 2>&1 &
udp_echo() { ip netns exec $B python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', $1))
s.settimeout(10)
while True:
    d, a = s.recvfrom(100)
    s.sendto(d, a)
" >/dev/null 2>&1 & }
udp_echo 5004
udp_echo 5007
udp_echo 5010
sleep 0.5

# udp_send SPORT DST DPORT: one datagram, waits up to 1 s for an answer.
udp_send() { ip netns exec $A python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', $1))
s.settimeout(1)
s.sendto(b'x', ('$2', $3))
try: s.recv(100)
except OSError: pass
"; }
# tcp_hold SPORT DST DPORT: a connection that stays open.
tcp_hold() { ip netns exec $A socat -T 60 SYSTEM:'sleep 60' TCP:$2:$3,sourceport=$1,reuseaddr >/dev/null 2>&1 & }

tcp_hold 40001 10.231.62.2 5001
ip netns exec $A socat -T 3 /dev/null TCP:10.231.62.2:5002,sourceport=40002,connect-timeout=1 >/dev/null 2>&1 || true
echo hi | ip netns exec $A socat - TCP:10.231.62.2:5003,sourceport=40003 >/dev/null
udp_send 40004 10.231.62.2 5004
udp_send 40005 10.231.62.2 5005
ip netns exec $A python3 -c "
import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
m = struct.pack('!BBHHH', 8, 0, 0, 4660, 1) + b'tapstack'
m = m[:2] + struct.pack('!H', csum(m)) + m[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
s.sendto(m, ('10.231.62.2', 0))
s.recv(200)
"
tcp_hold 40006 10.231.62.2 5006
udp_send 40007 10.231.62.2 5007
tcp_hold 40008 10.231.61.1 8080
sleep 1

: > "$out"
# run CASE-NAME ARGS...: conntrack ARGS in tsck-r, recorded.
run() {
  printf '$ conntrack %s\n' "$*" >> "$out"
  if ip netns exec $R conntrack "$@" > "$tmp/o" 2> "$tmp/e"; then code=0; else code=$?; fi
  cat "$tmp/o" >> "$out"
  sed 's/^/! /' "$tmp/e" >> "$out"
  [ "$code" = 0 ] || printf '(exit %s)\n' "$code" >> "$out"
}
section() { printf '## %s\n' "$1" >> "$out"; }

section 'listing'
run -L
run --dump
run -L conntrack
run -L -o extended
run -L -o id
run -L -o extended,id
run -L -o timestamp
run -L -f ipv4
run -L -o xml
run -L -o xml,id -p icmp
run -L -o xml,extended -p udp
run -L -o xml -p tcp --state SYN_SENT
run -L -o xml -p tcp --dport 9
run -G -p tcp -s 10.231.61.2 -d 10.231.62.2 --sport 40001 --dport 5001 -o xml
section 'filters'
run -L -p tcp
run -L -p udp
run -L -p icmp
run -L -p 6
run -L -s 10.231.61.2
run -L --src 10.231.61.2 -p udp
run -L --orig-src 10.231.61.2 -p tcp --dport 5001
run -L -d 10.231.61.1
run -L --dst 10.231.62.2 -p udp
run -L -r 10.231.62.2 -p tcp
run -L --reply-src 10.231.62.2 -p icmp
run -L -q 10.231.62.1
run -L --reply-dst 10.231.61.2 -p udp
run -L -s 10.231.61.0/24 -p udp
run -L -d 10.231.62.0/24 -p tcp
run -L -p tcp --sport 40001
run -L -p tcp --orig-port-src 40003
run -L -p tcp --dport 5002
run -L -p tcp --orig-port-dst 8080
run -L -p tcp --reply-port-src 80
run -L -p udp --reply-port-dst 40004
run -L -p tcp --state ESTABLISHED
run -L -p tcp --state SYN_SENT
run -L -p tcp --state TIME_WAIT
run -L -p tcp --state CLOSE
run -L -p icmp --icmp-type 8
run -L -p icmp --icmp-type 8 --icmp-code 0 --icmp-id 4660
run -L -p icmp --icmp-id 1
run -L -u ASSURED
run -L --status SEEN_REPLY -p udp
run -L -u UNREPLIED
run -L -u ASSURED,SEEN_REPLY -p tcp
run -L -m 42
run -L --mark 0x2a/0xff
run -L -m 0
run -L -m 0/0x2
run -L -n
run --src-nat -L
run -L -n 10.231.62.1
run -L -n 10.231.62.9
run -L -g
run -L --dst-nat 10.231.62.2
run -L -g 10.231.62.2:80
run -L -g 10.231.62.2:81
run -L -j
run -L --any-nat 10.231.62.1
run -L -p tcp -s 10.231.61.2 --state ESTABLISHED -m 42
run --dum -p udp
run -L -p tcp --sport=40001
run -Lconntrack -p icmp
run -L -p tcp --state established
run -L -u !ASSURED
run -L -u ASSURED,!SEEN_REPLY
run -L -u SEEN -p icmp
run -L -s 10.231.61.2 -d 10.231.62.2 -r 10.231.62.2 -q 10.231.61.2
run -L -s 10.231.61.2 --mask-src 255.255.0.0 -p icmp
run -L -i 1
run -L -w 0 -p icmp
run -L -f ipv6
run -L expect
run -L dying
run -L unconfirmed
run -C expect
section 'get'
run -G -p tcp -s 10.231.61.2 -d 10.231.62.2 --sport 40001 --dport 5001
run --get -p udp --src 10.231.61.2 --dst 10.231.62.2 --sport 40004 --dport 5004
run -G -p tcp -r 10.231.62.2 -q 10.231.62.1 --reply-port-src 5006 --reply-port-dst 40006
run -G -p icmp -s 10.231.61.2 -d 10.231.62.2 --icmp-type 8 --icmp-code 0 --icmp-id 4660
run -G -p tcp -s 10.231.61.2 -d 10.231.62.2 --sport 40001 --dport 5009
run -G -p udp -s 10.231.62.2 -d 10.231.61.2 --sport 5004 --dport 40004
run -G -p tcp -s 10.231.61.2 -d 10.231.62.2 --sport 40001 --dport 5001 -o extended,id
section 'count and stats'
run -C
run --counter
run -S
run --stats
section 'update'
run -U -p tcp --dport 5001 -m 7
run -L -p tcp --dport 5001
run -U -p tcp --dport 5001 -m 7
run -U -p udp --dport 5999 -m 1
run -U -s 10.231.61.2 -p udp --sport 40004 --mark 0x100
run -L -m 0x100
run -U -s 10.231.61.2 -p udp --sport 40004 -t 100
run -U -f ipv4 -p udp --sport 40004 --mark 0x101
run -U -m 3
run -U -d 10.231.61.1 -m 7
run -L -m 7
section 'delete'
run -D -p udp --dport 5005
run -L -p udp
run -D -p udp --dport 5005
run -D -s 10.231.61.2 -d 10.231.62.2 -p tcp --sport 40002 --dport 5002 -o xml
run -C

section 'events'
ev() {
  printf '$ conntrack %s\n' "$*" >> "$out"
  ip netns exec $R conntrack "$@" > "$tmp/o" 2> "$tmp/e" &
  evpid=$!
  sleep 0.5
}
ev_end() {
  sleep 0.5
  kill -INT $evpid
  if wait $evpid; then code=0; else code=$?; fi
  cat "$tmp/o" >> "$out"
  sed 's/^/! /' "$tmp/e" >> "$out"
  [ "$code" = 0 ] || printf '(exit %s)\n' "$code" >> "$out"
}
ip netns exec $B socat TCP-LISTEN:5003,reuseaddr SYSTEM:'cat' >/dev/null 2>&1 &
ev -E
udp_send 40011 10.231.62.2 5010
echo hi | ip netns exec $A socat - TCP:10.231.62.2:5003,sourceport=40012 >/dev/null || true
sleep 0.3
ip netns exec $R conntrack -D -p udp --sport 40011 >/dev/null 2>&1
ev_end
ev -E -e NEW
udp_send 40013 10.231.62.2 5010
ev_end
ev -E --event-mask DESTROY -p udp
udp_send 40014 10.231.62.2 5010
ip netns exec $R conntrack -D -p udp --sport 40014 >/dev/null 2>&1
ip netns exec $R conntrack -D -p udp --sport 40013 >/dev/null 2>&1
ev_end
ev -E -e NEW,DESTROY -o extended,id -p udp
udp_send 40015 10.231.62.2 5010
ip netns exec $R conntrack -D -p udp --sport 40015 >/dev/null 2>&1
ev_end
ev -E -o xml -p udp
udp_send 40018 10.231.62.2 5010
ip netns exec $R conntrack -D -p udp --sport 40018 >/dev/null 2>&1
ev_end

section 'flush'
run -F
run -L
run -C
run --flush
run -F conntrack
run -D -p tcp
section 'accounting'
ip netns exec $R sysctl -qw net.netfilter.nf_conntrack_acct=1
udp_send 40016 10.231.62.2 5010
run -L -p udp --sport 40016
run -L -p udp --sport 40016 -o extended
run -L -p udp --sport 40016 -o xml
ip netns exec $R sysctl -qw net.netfilter.nf_conntrack_acct=0
section 'timestamps'
ip netns exec $R sysctl -qw net.netfilter.nf_conntrack_timestamp=1
udp_send 40017 10.231.62.2 5010
sleep 1.2
run -L -p udp --sport 40017
run -L -p udp --sport 40017 -o ktimestamp
run -L -p udp --sport 40017 -o xml
run -D -p udp --sport 40017
printf '$ conntrack -E -o ktimestamp -p udp\n' >> "$out"
ip netns exec $R conntrack -E -o ktimestamp -p udp > "$tmp/o" 2> "$tmp/e" &
evpid=$!
sleep 0.5
udp_send 40019 10.231.62.2 5010
sleep 1.2
ip netns exec $R conntrack -D -p udp --sport 40019 >/dev/null 2>&1
ev_end
ip netns exec $R sysctl -qw net.netfilter.nf_conntrack_timestamp=0

section 'errors'
run -L -D
run -L -F
run -X
run -L --sport 1
run --sport 1 -p tcp -L
run -L -p foo
run -L -p tcp --state FOO
run -L -s 10.231.61
run -L -s 10.231.61.2/33
run -L -r 10.231.62.0/24
run -L -s
run -L -o foo
run -L -o xml,foo
run -L -u FOO
run -L -m
run -L -t 10
run -L -n -j
run -L foo
run -F -p tcp
run -F -s 10.231.61.2
run -C -p tcp
run -S -p tcp
run -E -t 5
run -E -e FOO
run -G
run -G -p tcp
run -G -p tcp -s 10.231.61.2
run -G -p tcp -s 10.231.61.2 -d 10.231.62.2
run -G -p tcp -s 10.231.61.2 -d 10.231.62.2 --sport 40001
run -G -p tcp -s 10.231.61.2 -d 10.231.62.2 --sport 40001 --dport 5001 -m 1
run -G -p icmp -s 10.231.61.2 -d 10.231.62.2 --icmp-type 8
run -D -t 5
run -U -p tcp --dport 5001
run -L -p udp --state ESTABLISHED
run -L -p udp --icmp-type 8
run -L -f ipv5
run -L -f ipv6 -s 10.231.61.2
run -L --orig
run -L -z -p tcp
run -L --mask-src 255.255.0.0
run -L -r 10.231.62.2 --sport 1
run -G -p tcp -s 10.231.61.2/24 -d 10.231.62.2 --sport 1 --dport 2
run -L -n 10.231.62.1/24
run -L -g 10.231.62.2:
run -L -g 10.231.62.2:x
run -U expect
run -L -o xml,save
run -V
