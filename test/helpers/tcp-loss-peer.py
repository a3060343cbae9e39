#!/usr/bin/env python3
"""The kernel's ends of the loss-recovery integration test, run in a namespace.

  sink HOST PORT        listen, print "listening", accept one connection, read it to EOF
                        and print "RESULT <bytes> <seconds from first byte to EOF> <sha256>"
                        and the kernel's `ss -ti` line for it
  send HOST PORT NBYTES [CC]
                        connect (with congestion control CC, set by TCP_CONGESTION) and send
                        NBYTES of the test pattern (bytes 0..255 repeated), then close
"""
import hashlib
import socket
import subprocess
import sys
import time

BLOCK = bytes(i & 0xff for i in range(65536))


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == 'sink':
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, port))
        ls.listen(1)
        print('listening', flush=True)
        s, _ = ls.accept()
        h = hashlib.sha256()
        n = 0
        t0 = None
        ss = ''
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            if t0 is None:
                t0 = time.monotonic()
            n += len(d)
            h.update(d)
        t1 = time.monotonic()
        l, r = s.getsockname(), s.getpeername()
        ss = subprocess.run(['ss', '-tiHn', 'src', f'{l[0]}:{l[1]}', 'dst', f'{r[0]}:{r[1]}'], capture_output=True, text=True).stdout
        print(f'RESULT {n} {t1 - (t0 or t1):.6f} {h.hexdigest()}', flush=True)
        print('SS ' + ' '.join(ss.split()), flush=True)
        s.close()
    elif mode == 'send':
        total = int(sys.argv[4])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if len(sys.argv) > 5:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, sys.argv[5].encode())
        s.connect((host, port))
        left = total
        while left > 0:
            k = min(left, len(BLOCK))
            s.sendall(BLOCK[:k])
            left -= k
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()
    else:
        sys.exit(f'unknown mode {mode}')


if __name__ == '__main__':
    main()
