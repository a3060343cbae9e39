#!/usr/bin/env bash
# The kernel's TIME_WAIT accounting under the load of test/integration/many-conns.test.ts:
# `ab -n N -c 50` (HTTP/1.0, the server closes first) from one namespace against a
# kernel HTTP/1.0 server in another with net.ipv4.tcp_max_tw_buckets=100; after each
# of ROUNDS runs it prints the server's TcpExtTW and TcpExtTCPTimeWaitOverflow deltas
# and `ss -s`'s timewait. With the client's ports reused within the 60 s (a second
# round, or RANGE="40000 42999"), TcpExtTW goes past the cap: each SYN reusing a
# record's 4-tuple ends it and frees its slot for a later connection, counted again.
# Needs root, ab and python3; uses the namespaces flora-a and flora-b and 10.233.210.0/24
# only, removed at the end (also on failure).
#   scripts/timewait-oracle.sh                       one round, the default port range
#   ROUNDS=3 scripts/timewait-oracle.sh              rounds within the 60 s
#   RANGE="40000 42999" scripts/timewait-oracle.sh   a client range that wraps in one round
set -euo pipefail
N=${N:-3000}
ROUNDS=${ROUNDS:-1}
RANGE=${RANGE:-}
A=flora-a
B=flora-b
. "$(dirname "$0")/netns-pair.sh"
netns_pair "$A" "$B" floraa0 florab0 10.233.210.1/24 10.233.210.2/24
ip netns exec "$B" sysctl -q -w net.ipv4.tcp_max_tw_buckets=100
if [ -n "$RANGE" ]; then ip netns exec "$A" sysctl -q -w net.ipv4.ip_local_port_range="$RANGE"; fi
ip netns exec "$B" python3 -c '
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        b = b"not found\n"
        self.send_response(404)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024
S(("10.233.210.2", 80), H).serve_forever()
' &
SRV=$!
for _ in $(seq 1 50); do ip netns exec "$B" ss -Htln 'sport = :80' | grep -q . && break; sleep 0.1; done
ip netns exec "$B" nstat -n
for r in $(seq 1 "$ROUNDS"); do
  out=$(ip netns exec "$A" ab -q -n "$N" -c 50 http://10.233.210.2/nothing)
  grep -E '^(Complete|Failed) requests' <<<"$out"
  sleep 1
  echo "round $r: $(ip netns exec "$B" nstat -z TcpPassiveOpens TcpExtTW TcpExtTCPTimeWaitOverflow | awk 'NR>1 {printf "%s %s  ", $1, $2}')"
  ip netns exec "$B" ss -s | grep '^TCP:'
done
