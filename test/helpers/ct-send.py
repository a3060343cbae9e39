# Sends hand-made IPv4 datagrams from both ends of a router, in order, for
# connection-tracking tests: TCP segments with chosen flags, sequence and
# acknowledgement numbers, UDP datagrams, ICMP echo and errors quoting another
# datagram, and datagrams of any other protocol. Run inside namespace a; the
# sockets of namespace b are opened by entering it.
#
# usage: ct-send.py < REQUEST_JSON
#   {"b": namespace of side b, "gap": seconds between datagrams,
#    "packets": [PACKET...]}
# PACKET: {"side": "a"|"b", "src", "dst", "proto": "tcp"|"udp"|"udplite"|"sctp"|"icmp"|NUMBER,
#   tcp: "sport", "dport", "flags" ("SA", "FA", "R", ...), "seq", "ack", "win", "data": bytes,
#        "opts": {"mss": N, "wscale": N, "sackok": true, "sack": [[LEFT, RIGHT]...]}
#   udp, udplite: "sport", "dport", "data" ("cscov": UDP-Lite's checksum coverage, 0 = all;
#        "csproto": the protocol number in the checksum's pseudo-header)
#   icmp: "type", "code", "id", "seqno", or "quote": PACKET (an error quoting it)
#   sctp: "sport", "dport", "vtag", "chunks": [{"type", "flags", "tag" (INIT, INIT ACK), "hex": value}]
#   other: "data", or "hex": the bytes after the IP header}
#   any: "badsum": true (a wrong TCP/UDP/ICMP checksum)
#
#   ct-send.py flood COUNT DST SRC   COUNT UDP datagrams from SRC to DST, each a new
#                                   flow (source ports 10000-59999, destination ports 7000 up)
import ctypes, json, socket, struct, sys, time
from array import array

CLONE_NEWNET = 0x40000000
FLAGS = "FSRPAUEC"


def csum(data):
    if len(data) % 2:
        data += b"\0"
    a = array("H", data)
    if sys.byteorder == "little":
        a.byteswap()
    s = sum(a)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def flags_num(f):
    n = 0
    for ch in f:
        n |= 1 << FLAGS.index(ch)
    return n


CRC32C = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    CRC32C.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    for x in data:
        c = CRC32C[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def sctp_chunk(ch):
    if ch["type"] in (1, 2):
        # INIT, INIT ACK: Initiate Tag, a_rwnd, streams, initial TSN.
        value = struct.pack("!IIHHI", ch.get("tag", 0), 65536, 10, 10, 1)
    else:
        value = bytes.fromhex(ch.get("hex", ""))
    c = struct.pack("!BBH", ch["type"], ch.get("flags", 0), 4 + len(value)) + value
    return c + b"\0" * (-len(c) % 4)


def tcp_options(o):
    b = b""
    if "mss" in o:
        b += struct.pack("!BBH", 2, 4, o["mss"])
    if "wscale" in o:
        b += struct.pack("!BBB", 3, 3, o["wscale"]) + b"\1"
    if o.get("sackok"):
        b += b"\1\1\4\2"
    if "sack" in o:
        b += b"\1\1" + struct.pack("!BB", 5, 2 + 8 * len(o["sack"])) + b"".join(struct.pack("!II", l & 0xFFFFFFFF, r & 0xFFFFFFFF) for l, r in o["sack"])
    while len(b) % 4:
        b += b"\0"
    return b


def build(p):
    src, dst = socket.inet_aton(p["src"]), socket.inet_aton(p["dst"])
    proto = p["proto"]
    data = b"x" * p.get("data", 0)
    bad = 0x5555 if p.get("badsum") else 0
    if proto == "tcp":
        num = 6
        opts = tcp_options(p.get("opts", {}))
        l4 = struct.pack("!HHIIBBHHH", p["sport"], p["dport"], p.get("seq", 0) & 0xFFFFFFFF, p.get("ack", 0) & 0xFFFFFFFF, (5 + len(opts) // 4) << 4, flags_num(p.get("flags", "S")), p.get("win", 64240), 0, 0) + opts + data
        pseudo = src + dst + struct.pack("!BBH", 0, num, len(l4))
        l4 = l4[:16] + struct.pack("!H", csum(pseudo + l4) ^ bad) + l4[18:]
    elif proto in ("udp", "udplite"):
        # UDP-Lite (RFC 3828): the length field is the checksum coverage, 0 for all.
        num = 17 if proto == "udp" else 136
        l4 = struct.pack("!HHHH", p["sport"], p["dport"], 8 + len(data) if num == 17 else p.get("cscov", 0), 0) + data
        pseudo = src + dst + struct.pack("!BBH", 0, p.get("csproto", num), len(l4))
        l4 = l4[:6] + struct.pack("!H", (csum(pseudo + l4) or 0xFFFF) ^ bad) + l4[8:]
    elif proto == "sctp":
        num = 132
        l4 = struct.pack("!HHII", p["sport"], p["dport"], p.get("vtag", 0), 0) + b"".join(sctp_chunk(c) for c in p.get("chunks", []))
        l4 = l4[:8] + struct.pack("<I", crc32c(l4) ^ (0x5555 if bad else 0)) + l4[12:]
    elif proto == "icmp":
        num = 1
        if "quote" in p:
            rest = struct.pack("!I", 0) + build(p["quote"])[:28]
        else:
            rest = struct.pack("!HH", p.get("id", 0), p.get("seqno", 1)) + data
        l4 = struct.pack("!BBH", p.get("type", 8), p.get("code", 0), 0) + rest
        l4 = l4[:2] + struct.pack("!H", csum(l4) ^ bad) + l4[4:]
    else:
        num = int(proto)
        l4 = bytes.fromhex(p["hex"]) if "hex" in p else data
    total = 20 + len(l4)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, p.get("ipid", 1), 0, 64, num, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + l4


def raw():
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)


def flood(count, dst, src):
    s = raw()
    d, sa = socket.inet_aton(dst), socket.inet_aton(src)
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 29, 0, 0, 64, 17, 0, sa, d) + struct.pack("!HHHH", 0, 0, 9, 0) + b"x")
    addr = (dst, 0)
    for i in range(count):
        struct.pack_into("!HH", hdr, 20, 10000 + i % 50000, 7000 + i // 50000)
        while True:
            try:
                s.sendto(hdr, addr)
                break
            except BlockingIOError:
                time.sleep(0.001)
        # A pause now and then, so that the routers' queues are not simply overrun.
        if i % 200 == 199:
            time.sleep(0.002)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        flood(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    req = json.load(sys.stdin)
    libc = ctypes.CDLL(None, use_errno=True)
    own = open("/proc/self/ns/net")
    with open("/var/run/netns/" + req["b"]) as f:
        if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    tx = {"b": raw()}
    libc.setns(own.fileno(), CLONE_NEWNET)
    tx["a"] = raw()
    for p in req["packets"]:
        tx[p["side"]].sendto(build(p), (p["dst"], 0))
        time.sleep(req.get("gap", 0.02))


main()
