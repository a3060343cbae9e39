"""Sends UDP datagrams at a steady rate, for shaping tests.

  udp-pace.py HOST PORT SIZE BITS_PER_SECOND SECONDS

SIZE is the UDP payload. The rate counts payload bits. Datagrams due are sent
from the elapsed time, so a late wakeup sends what it owes and the average stays
exact. Prints "sent N" at the end.
"""
import socket
import sys
import time


def main():
    host, port, size, bps, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b'\x5a' * size
    per_sec = bps / (size * 8)
    t0 = time.monotonic()
    sent = 0
    while True:
        now = time.monotonic() - t0
        if now >= secs:
            break
        due = int(now * per_sec) + 1
        while sent < due:
            try:
                s.sendto(payload, (host, port))
            except OSError:
                pass  # a full qdisc or an ICMP error from an earlier datagram: go on
            sent += 1
        time.sleep(min(0.001, max(0.0, (due / per_sec) - (time.monotonic() - t0))))
    print(f'sent {sent}')


main()
