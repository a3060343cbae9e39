#!/usr/bin/env python3
"""The kernel's side of the ECN and Fast Open tests, run in the peer's namespace.

  client HOST PORT NBYTES          connect, send NBYTES, print `ss -tio` of the connection,
                                   shut down writing, read the answer to EOF and print it
  tfo-client HOST PORT TEXT        send TEXT by sendto(MSG_FASTOPEN) (in the SYN when the kernel
                                   holds a cookie for HOST), read the answer to the server's FIN,
                                   then print `ss -tio` of the connection and the answer
  server HOST PORT NBYTES QLEN     listen (TCP_FASTOPEN=QLEN when QLEN > 0), accept one
                                   connection, read NBYTES, print `ss -tio` of it, answer
                                   `got N` and close
The listening server prints "listening" once it accepts connections.
"""
import socket
import subprocess
import sys


def ss_of(sock):
    l = sock.getsockname()
    r = sock.getpeername()
    out = subprocess.run(
        # state all: a Fast Open child is accepted in SYN-RECV, which ss leaves out by default.
        ['ss', '-tioHn', 'state', 'all', 'src', f'{l[0]}:{l[1]}', 'dst', f'{r[0]}:{r[1]}'],
        capture_output=True, text=True).stdout
    return ' '.join(out.split())


def read_all(sock):
    data = b''
    while True:
        d = sock.recv(65536)
        if not d:
            return data
        data += d


def main():
    mode = sys.argv[1]
    if mode in ('client', 'tfo-client'):
        host, port = sys.argv[2], int(sys.argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if mode == 'client':
            s.settimeout(10)
            s.connect((host, port))
            s.sendall(b'x' * int(sys.argv[4]))
        else:
            # Blocking: a socket with a timeout is non-blocking inside, and MSG_FASTOPEN
            # would answer EINPROGRESS.
            s.sendto(sys.argv[4].encode(), socket.MSG_FASTOPEN, (host, port))
            s.settimeout(10)
        if mode == 'client':
            # Look before shutting down: the server answers the FIN at once with its own,
            # and the socket is a TIME-WAIT record (no tcp_info) by the time ss runs.
            info = ss_of(s)
            s.shutdown(socket.SHUT_WR)
            answer = read_all(s)
        else:
            # The server answers and closes: read to its FIN, then look (CLOSE-WAIT keeps tcp_info).
            answer = read_all(s)
            info = ss_of(s)
        print('SS', info)
        print('ANSWER', answer.decode(errors='replace'))
        s.close()
    elif mode == 'server':
        host, port, n, qlen = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if qlen > 0:
            ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, qlen)
        ls.bind((host, port))
        ls.listen(16)
        print('listening', flush=True)
        ls.settimeout(20)
        c, _ = ls.accept()
        c.settimeout(10)
        got = b''
        while len(got) < n:
            d = c.recv(65536)
            if not d:
                break
            got += d
        print('SS', ss_of(c), flush=True)
        c.sendall(f'got {len(got)}'.encode())
        c.close()
        ls.close()
    else:
        sys.exit(f'unknown mode {mode}')


main()
