#!/usr/bin/python3
"""UDP_SEGMENT sender and a checking receiver for the UDP GSO tests.

  udp-gso.py send DST PORT TOTAL GSO [ECHO_TIMEOUT]
      one sendmsg of TOTAL bytes with UDP_SEGMENT = GSO (the kernel builds one
      super-packet); with ECHO_TIMEOUT, then checks the datagrams that come back
  udp-gso.py recv PORT COUNT TIMEOUT TOTAL GSO
      receives until COUNT datagrams or TIMEOUT seconds, then checks them

Every GSO-sized piece k of the write is self-describing: a 4-byte index, then
bytes (k * 131 + i) & 0xff, so a receiver checks each datagram on its own.
The check prints one JSON line: count, bad (wrong length or content),
distinct indices, and the senders' addresses.
"""
import json, socket, struct, sys, time

SOL_UDP = 17
UDP_SEGMENT = 103

def piece(k, n):
    return struct.pack('!I', k) + bytes(((k * 131 + i) & 0xff) for i in range(4, n))

def payload(total, gso):
    return b''.join(piece(k, min(gso, total - k * gso)) for k in range((total + gso - 1) // gso))

def check(sock, total, gso, count, timeout):
    want = (total + gso - 1) // gso
    got, bad, seen, peers = 0, 0, set(), set()
    end = time.time() + timeout
    while got < count and time.time() < end:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            d, a = sock.recvfrom(65536)
        except socket.timeout:
            break
        got += 1
        peers.add(f'{a[0]}:{a[1]}')
        k = struct.unpack('!I', d[:4])[0] if len(d) >= 4 else -1
        n = min(gso, total - k * gso) if 0 <= k < want else -1
        if n != len(d) or d != piece(k, n):
            bad += 1
        else:
            seen.add(k)
    print(json.dumps({'count': got, 'bad': bad, 'distinct': len(seen), 'peers': sorted(peers)}))

if sys.argv[1] == 'send':
    dst, port, total, gso = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(SOL_UDP, UDP_SEGMENT, gso)
    s.connect((dst, port))
    s.send(payload(total, gso))
    if len(sys.argv) > 6:
        check(s, total, gso, (total + gso - 1) // gso, float(sys.argv[6]))
else:
    port, count, timeout, total, gso = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind(('0.0.0.0', port))
    print('ready', flush=True)
    check(s, total, gso, count, timeout)
