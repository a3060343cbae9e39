# Sends raw Ethernet frames (hex, argv[3:]) out of an interface with a packet socket,
# then prints, as JSON lines, every ICMP message that arrives for `wait` seconds
# (a raw ICMP socket: the kernel hands it reassembled datagrams and ICMP errors).
# usage: icmp-probe.py IFNAME WAIT_SECONDS HEX...
import json, select, socket, sys, time

ifname, wait = sys.argv[1], float(sys.argv[2])
rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind((ifname, 0))
for h in sys.argv[3:]:
    tx.send(bytes.fromhex(h))
end = time.time() + wait
while True:
    left = end - time.time()
    if left <= 0:
        break
    r, _, _ = select.select([rx], [], [], left)
    if not r:
        break
    d, addr = rx.recvfrom(70000)
    hl = (d[0] & 15) * 4
    icmp = d[hl:]
    msg = {"src": addr[0], "type": icmp[0], "code": icmp[1], "len": len(icmp)}
    if icmp[0] in (0, 8):
        msg["id"] = (icmp[4] << 8) | icmp[5]
        msg["seq"] = (icmp[6] << 8) | icmp[7]
        msg["data"] = icmp[8:].hex()
    else:
        msg["quote"] = icmp[8:].hex()
    print(json.dumps(msg), flush=True)
