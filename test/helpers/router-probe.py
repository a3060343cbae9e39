# Sends crafted IPv4 datagrams from one side of a router and reports, per probe,
# what reached the far side and what came back to the sender, as one JSON list.
# Run inside the sender's namespace; the far side's namespace is entered for its
# capture socket only. The same request gives the same probes whichever router
# (the stack, or a kernel router namespace) is between the two sides.
#
# usage: router-probe.py < REQUEST_JSON
#   {"iface": sender's device, "farNs": far namespace, "farIface": far device,
#    "gap": seconds between probes, "wait": seconds to listen after the last,
#    "probes": [PROBE...]}
# PROBE: {"src","dst","proto":"tcp"|"udp"|"icmp","sport","dport","flags":"S",
#         "ttl","tos","len": total IP length (padding), "df": bool,
#         "icmpType","icmpCode","badChecksum": bool (a wrong TCP/UDP/ICMP checksum)}
# Each probe gets IP ID 20000+index (and, for ICMP echo, that as its identifier);
# what arrives is matched to its probe by that ID (an ICMP error quotes it), by
# the ports reversed (a TCP answer), or by the echo identifier.
#
# Result per probe: {"far": [{"ttl","tos","len","proto","flags"}], "back":
#   [{"src","proto":"icmp","type","code"} | {"src","proto":"tcp","flags"}]}
import ctypes, json, select, socket, struct, sys, time
from array import array

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
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


def flags_str(n):
    return "".join(ch for i, ch in enumerate(FLAGS) if n & (1 << i))


def aton(a):
    return socket.inet_aton(a)


def build(p, ident):
    src, dst = aton(p["src"]), aton(p["dst"])
    proto = p["proto"]
    if proto == "tcp":
        num = 6
        hdr = struct.pack("!HHIIBBHHH", p["sport"], p["dport"], 1000, 0, 5 << 4, flags_num(p.get("flags", "S")), 64240, 0, 0)
    elif proto == "udp":
        num = 17
        hdr = struct.pack("!HHHH", p["sport"], p["dport"], 8, 0)
    else:
        num = 1
        hdr = struct.pack("!BBHHH", p.get("icmpType", 8), p.get("icmpCode", 0), 0, ident, 1)
    total = max(p.get("len", 0), 20 + len(hdr))
    payload = b"\0" * (total - 20 - len(hdr))
    l4 = hdr + payload
    if num == 17:
        l4 = l4[:4] + struct.pack("!H", len(l4)) + l4[6:]
    pseudo = src + dst + struct.pack("!BBH", 0, num, len(l4))
    bad = 0x5555 if p.get("badChecksum") else 0
    if num == 6:
        l4 = l4[:16] + struct.pack("!H", csum(pseudo + l4) ^ bad) + l4[18:]
    elif num == 17:
        c = csum(pseudo + l4) ^ bad
        l4 = l4[:6] + struct.pack("!H", c or 0xFFFF) + l4[8:]
    else:
        l4 = l4[:2] + struct.pack("!H", csum(l4) ^ bad) + l4[4:]
    frag = 0x4000 if p.get("df") else 0
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, p.get("tos", 0), total, ident, frag, p.get("ttl", 64), num, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + l4


def packet_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    return s


def main():
    req = json.load(sys.stdin)
    libc = ctypes.CDLL(None, use_errno=True)
    own = open("/proc/self/ns/net")
    with open("/var/run/netns/" + req["farNs"]) as f:
        if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    far = packet_socket(req["farIface"])
    libc.setns(own.fileno(), CLONE_NEWNET)
    near = packet_socket(req["iface"])
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    probes = req["probes"]
    results = [{"far": [], "back": []} for _ in probes]
    by_id = {}
    by_ports = {}
    for i, p in enumerate(probes):
        ident = 20000 + i
        by_id[ident] = i
        if p["proto"] in ("tcp", "udp"):
            by_ports[(p["proto"], p["dport"], p["sport"])] = i

    def drain(timeout):
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                return
            r, _, _ = select.select([far, near], [], [], left)
            for s in r:
                d, addr = s.recvfrom(70000)
                if addr[2] == PACKET_OUTGOING or len(d) < 34 or d[12:14] != b"\x08\x00":
                    continue
                ip = d[14:]
                hl = (ip[0] & 15) * 4
                ident = struct.unpack("!H", ip[4:6])[0]
                proto = ip[9]
                l4 = ip[hl:]
                if s is far:
                    if ident in by_id:
                        fl = struct.unpack("!H", ip[6:8])[0]
                        results[by_id[ident]]["far"].append(
                            {"ttl": ip[8], "tos": ip[1], "len": struct.unpack("!H", ip[2:4])[0], "proto": proto, "df": bool(fl & 0x4000)}
                        )
                    continue
                src = socket.inet_ntoa(ip[12:16])
                if proto == 1 and len(l4) >= 8:
                    t, c = l4[0], l4[1]
                    if t in (3, 4, 5, 11, 12) and len(l4) >= 28:
                        q = struct.unpack("!H", l4[12:14])[0]
                        if q in by_id:
                            results[by_id[q]]["back"].append({"src": src, "proto": "icmp", "type": t, "code": c})
                    elif t == 0:
                        q = struct.unpack("!H", l4[4:6])[0]
                        if q in by_id:
                            results[by_id[q]]["back"].append({"src": src, "proto": "icmp", "type": t, "code": c})
                elif proto in (6, 17) and len(l4) >= 8:
                    sport, dport = struct.unpack("!HH", l4[0:4])
                    k = ("tcp" if proto == 6 else "udp", sport, dport)
                    if k in by_ports:
                        e = {"src": src, "proto": k[0]}
                        if proto == 6:
                            e["flags"] = flags_str(l4[13])
                        results[by_ports[k]]["back"].append(e)

    for i, p in enumerate(probes):
        tx.sendto(build(p, 20000 + i), (p["dst"], 0))
        drain(req.get("gap", 0.02))
    drain(req.get("wait", 1.0))
    json.dump(results, sys.stdout)


main()
