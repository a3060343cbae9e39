# Sends crafted TCP segments and reports, as one JSON object, the segments that
# come back. Run on the prober's side of a link (the kernel side of the stack's
# TAP device, or one end of a veth to a kernel listener); the same request gives
# the same probe whichever target is behind the link (test/helpers/oracle.ts).
#
# usage: tcp-probe.py REQUEST_JSON
#
# Requests ("mode"):
#   raw    {"iface","src","dst","probes":[SEGMENT...],"wait"}
#          Each SEGMENT is sent as it is given (absolute seq/ack); what arrives
#          from dst:dport to src:sport within `wait` seconds is its answer list.
#   conn   {"iface","src","dst","dport","probe":SEGMENT,"after":"echo"|"none","wait"}
#          A real connection from a kernel socket first (data echoed once), its
#          sequence numbers and timestamps learned from a capture; then the probe
#          goes into that connection with seq/ack/TSval given relative to them
#          ("seq": offset from the client's snd_nxt, "ack": offset from the
#          server's snd_nxt, "ts": [TSval offset from the client's last TSval]
#          with TSecr the server's last TSval). Answers are reported relative too
#          (seq - server snd_nxt, ack - client snd_nxt). "after": "echo" then
#          sends b"after" on the socket and reports what comes back or the error.
#   flood  {"iface","src","dst","dport","count","seed"}
#          A connection as in conn, then `count` random segments (flags, seq,
#          ack, window, urgent pointer, option bytes, data offset, data length),
#          half aimed at that connection near its sequence numbers, half from
#          random ports; half of all with a correct checksum.
#
# SEGMENT: {"sport","dport","flags":"SA"|int,"seq","ack","window","urg",
#           "options":[["mss",1460],["sackok"],["ts",val,ecr],["nop"],["ws",7],
#           ["eol"],["raw","hex"]], "data":"text" | "dataLen":n,
#           "badChecksum":bool, "dataOffset":words, "truncate":bytes}
# ("truncate" cuts the TCP segment to that many bytes after its checksum is made.)
#
# Sending uses a raw IP socket (IP_HDRINCL: the kernel fills in the IP checksum
# and routes; the TCP header goes out exactly as built); capturing uses a packet
# socket on the interface, so the prober's own kernel never hides an answer.
import errno, json, os, random, select, socket, struct, sys, time
from array import array

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
FLAG_LETTERS = "FSRPAUEC"


def flags_num(f):
    if isinstance(f, int):
        return f
    n = 0
    for ch in f:
        n |= 1 << FLAG_LETTERS.index(ch)
    return n


def flags_str(n):
    return "".join(ch for i, ch in enumerate(FLAG_LETTERS) if n & (1 << i))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    a = array("H", data)
    if sys.byteorder == "little":
        a.byteswap()
    s = sum(a)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def encode_options(opts):
    out = b""
    for o in opts:
        k = o[0]
        if k == "mss":
            out += struct.pack("!BBH", 2, 4, o[1])
        elif k == "sackok":
            out += b"\x04\x02"
        elif k == "ts":
            out += struct.pack("!BBII", 8, 10, o[1] & 0xFFFFFFFF, o[2] & 0xFFFFFFFF)
        elif k == "nop":
            out += b"\x01"
        elif k == "ws":
            out += struct.pack("!BBB", 3, 3, o[1])
        elif k == "eol":
            out += b"\x00"
        elif k == "raw":
            out += bytes.fromhex(o[1])
        else:
            raise ValueError("unknown option " + k)
    while len(out) % 4:
        out += b"\0"
    return out


def build_segment(src, dst, seg):
    opts = encode_options(seg.get("options", []))
    if "data" in seg:
        data = seg["data"].encode()
    else:
        data = bytes(random.getrandbits(8) for _ in range(seg.get("dataLen", 0)))
    return build_raw(src, dst, seg["sport"], seg["dport"], seg.get("seq", 0), seg.get("ack", 0),
                     flags_num(seg.get("flags", 0)), seg.get("window", 64240), seg.get("urg", 0),
                     opts, data, seg.get("badChecksum", False), seg.get("dataOffset"), seg.get("truncate"))


def build_raw(src, dst, sport, dport, seq, ack, flags, window, urg, opts, data, bad, doff=None, truncate=None):
    hl = 20 + len(opts)
    d = hl // 4 if doff is None else doff
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (d & 0xF) << 4, flags & 0xFF, window & 0xFFFF, 0, urg & 0xFFFF) + opts + data
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    c = csum(pseudo + tcp)
    if bad:
        # Any other value is wrong (0 and 0xffff are the same sum: avoid both).
        c = c ^ 0x5A5A
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    if truncate is not None:
        tcp = tcp[:truncate]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def parse_options(b):
    opts = []
    i = 0
    while i < len(b):
        k = b[i]
        if k == 0:
            opts.append([0])
            break
        if k == 1:
            opts.append([1])
            i += 1
            continue
        if i + 1 >= len(b) or b[i + 1] < 2 or i + b[i + 1] > len(b):
            opts.append([k, "malformed"])
            break
        ln = b[i + 1]
        v = b[i + 2:i + ln]
        if k == 2 and ln == 4:
            opts.append([2, struct.unpack("!H", v)[0]])
        elif k == 3 and ln == 3:
            opts.append([3, v[0]])
        elif k == 4 and ln == 2:
            opts.append([4])
        elif k == 8 and ln == 10:
            opts.append([8] + list(struct.unpack("!II", v)))
        elif k == 5:
            opts.append([5] + [struct.unpack("!I", v[j:j + 4])[0] for j in range(0, len(v) - 3, 4)])
        else:
            opts.append([k, v.hex()])
        i += ln
    return opts


def parse_frame(frame):
    """An Ethernet frame holding IPv4/TCP: a dict, else None."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != 6:
        return None
    total = struct.unpack("!H", ip[2:4])[0]
    tcp = ip[ihl:total]
    if len(tcp) < 20:
        return None
    sport, dport, seq, ack, off, fl, win, _, urg = struct.unpack("!HHIIBBHHH", tcp[:20])
    hl = (off >> 4) * 4
    return {
        "src": socket.inet_ntoa(ip[12:16]), "dst": socket.inet_ntoa(ip[16:20]),
        "sport": sport, "dport": dport, "seq": seq, "ack": ack, "flags": fl,
        "flagsStr": flags_str(fl), "window": win, "urg": urg,
        "options": parse_options(tcp[20:hl]), "len": max(0, len(tcp) - hl),
        "data": tcp[hl:].decode("latin-1"),
    }


class Link:
    def __init__(self, iface):
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.rx.bind((iface, 0))
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def send(self, pkt, dst):
        self.tx.sendto(pkt, (dst, 0))

    def frames(self, wait, keep):
        """Frames for `wait` seconds: (outgoing, parsed) for each TCP one `keep` accepts."""
        out = []
        end = time.time() + wait
        while True:
            left = end - time.time()
            if left <= 0:
                break
            r, _, _ = select.select([self.rx], [], [], left)
            if not r:
                break
            frame, addr = self.rx.recvfrom(70000)
            p = parse_frame(frame)
            if p is not None and keep(p, addr[2] == PACKET_OUTGOING):
                out.append((addr[2] == PACKET_OUTGOING, p))
        return out


def answer_filter(req_src, dst, sport, dport):
    def keep(p, outgoing):
        return (not outgoing) and p["src"] == dst and p["dst"] == req_src and p["sport"] == dport and p["dport"] == sport
    return keep


def mode_raw(req):
    link = Link(req["iface"])
    results = []
    for seg in req["probes"]:
        # Nothing that arrived before this probe is taken for its answer.
        while select.select([link.rx], [], [], 0)[0]:
            link.rx.recv(70000)
        link.send(build_segment(req["src"], req["dst"], seg), req["dst"])
        got = link.frames(req.get("wait", 1.0), answer_filter(req["src"], req["dst"], seg["sport"], seg["dport"]))
        results.append([p for _, p in got])
    return {"answers": results}


def seg_end(p):
    return (p["seq"] + p["len"] + (1 if p["flags"] & 2 else 0) + (1 if p["flags"] & 1 else 0)) & 0xFFFFFFFF


def after32(a, b):
    return ((a - b) & 0xFFFFFFFF) != 0 and ((a - b) & 0xFFFFFFFF) < 0x80000000


def ts_of(p):
    for o in p["options"]:
        if o[0] == 8 and len(o) == 3:
            return o[1], o[2]
    return None


def open_connection(req, link):
    """A kernel socket connected to dst:dport, data echoed once; its state as the capture shows it."""
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(5)
    c.connect((req["dst"], req["dport"]))
    sport = c.getsockname()[1]
    c.sendall(b"hello")
    got = b""
    while len(got) < 5:
        b = c.recv(100)
        if not b:
            raise RuntimeError("connection closed before the echo")
        got += b
    dst, dport = req["dst"], req["dport"]

    def keep(p, outgoing):
        if outgoing:
            return p["sport"] == sport and p["dport"] == dport and p["dst"] == dst
        return p["sport"] == dport and p["dport"] == sport and p["src"] == dst

    # Delayed ACKs settle well within this.
    frames = link.frames(0.3, keep)
    st = {"sport": sport, "clientNxt": None, "serverNxt": None, "clientTs": None, "serverTs": None, "serverWindow": None}
    for outgoing, p in frames:
        end = seg_end(p)
        key = "clientNxt" if outgoing else "serverNxt"
        if st[key] is None or after32(end, st[key]):
            st[key] = end
        ts = ts_of(p)
        if ts is not None:
            st["clientTs" if outgoing else "serverTs"] = ts[0]
        if not outgoing:
            st["serverWindow"] = p["window"]
    if st["clientNxt"] is None or st["serverNxt"] is None:
        raise RuntimeError("the connection's segments were not captured: %r" % frames)
    return c, st


def conn_probe_segment(req, st, probe):
    seg = dict(probe)
    seg["sport"] = st["sport"]
    seg["dport"] = req["dport"]
    seg["seq"] = (st["clientNxt"] + probe.get("seq", 0)) & 0xFFFFFFFF
    seg["ack"] = (st["serverNxt"] + probe.get("ack", 0)) & 0xFFFFFFFF
    opts = []
    for o in probe.get("options", []):
        if o[0] == "ts" and len(o) == 2:
            # Relative TSval; TSecr echoes the server's latest.
            opts.append(["ts", (st["clientTs"] or 0) + o[1], st["serverTs"] or 0])
        else:
            opts.append(o)
    seg["options"] = opts
    seg.setdefault("window", 502)
    return seg


def mode_conn(req):
    link = Link(req["iface"])
    c, st = open_connection(req, link)
    seg = conn_probe_segment(req, st, req["probe"])
    link.send(build_segment(req["src"], req["dst"], seg), req["dst"])
    got = link.frames(req.get("wait", 1.0), answer_filter(req["src"], req["dst"], st["sport"], req["dport"]))
    answers = []
    for _, p in got:
        p["seqRel"] = (p["seq"] - st["serverNxt"]) & 0xFFFFFFFF
        p["ackRel"] = (p["ack"] - st["clientNxt"]) & 0xFFFFFFFF
        if p["seqRel"] >= 0x80000000:
            p["seqRel"] -= 1 << 32
        if p["ackRel"] >= 0x80000000:
            p["ackRel"] -= 1 << 32
        answers.append(p)
    result = {"answers": answers, "conn": st}
    if req.get("after") == "echo":
        try:
            c.sendall(b"after")
            c.settimeout(2)
            b = c.recv(100)
            result["after"] = {"data": b.decode("latin-1")} if b else {"eof": True}
        except socket.timeout:
            result["after"] = {"error": "timeout"}
        except OSError as e:
            result["after"] = {"error": errno.errorcode.get(e.errno, str(e.errno))}
    c.close()
    return result


def random_options(rng):
    kinds = [
        lambda: b"\x01",
        lambda: b"\x00",
        lambda: struct.pack("!BBH", 2, 4, rng.getrandbits(16)),
        lambda: struct.pack("!BBB", 3, 3, rng.getrandbits(8)),
        lambda: b"\x04\x02",
        lambda: struct.pack("!BBII", 8, 10, rng.getrandbits(32), rng.getrandbits(32)),
        lambda: bytes([5, 2 + 8 * rng.randint(0, 4)]) + bytes(rng.getrandbits(8) for _ in range(8 * rng.randint(0, 4))),
        lambda: bytes([rng.getrandbits(8), rng.getrandbits(8)]),
        lambda: bytes([rng.getrandbits(8)]),
        lambda: bytes([34, rng.randint(0, 20)]) + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 16))),
    ]
    out = b""
    for _ in range(rng.randint(0, 6)):
        out += rng.choice(kinds)()
    out = out[:40]
    while len(out) % 4:
        out += b"\0"
    return out


def mode_flood(req):
    rng = random.Random(req.get("seed", 1))
    link = Link(req["iface"])
    c, st = open_connection(req, link)
    src, dst, dport = req["src"], req["dst"], req["dport"]
    sent = 0
    for i in range(req["count"]):
        to_conn = rng.random() < 0.5
        if to_conn:
            sport = st["sport"]
            seq = (st["clientNxt"] + rng.randint(-70000, 70000)) & 0xFFFFFFFF
            ack = (st["serverNxt"] + rng.randint(-70000, 70000)) & 0xFFFFFFFF
        else:
            sport = rng.randint(20000, 29999)
            seq = rng.getrandbits(32)
            ack = rng.getrandbits(32)
        r = rng.random()
        if r < 0.3:
            flags = rng.choice([0x02, 0x10, 0x18, 0x04, 0x14, 0x11, 0x12, 0x03, 0x06, 0x01, 0x29])
        else:
            flags = rng.getrandbits(8)
        opts = random_options(rng) if rng.random() < 0.6 else b""
        dlen = rng.choice([0, 0, 0, 1, rng.randint(1, 100), rng.randint(1, 1400)])
        data = os.urandom(dlen)
        doff = None
        if rng.random() < 0.1:
            doff = rng.randint(0, 15)
        pkt = build_raw(src, dst, sport, dport, seq, ack, flags, rng.getrandbits(16),
                        rng.getrandbits(16) if rng.random() < 0.2 else 0, opts, data, rng.random() < 0.5, doff)
        try:
            link.send(pkt, dst)
            sent += 1
        except OSError:
            pass
        # Paced so the TAP queue (1000 frames) is never what drops them.
        if i % 50 == 49:
            time.sleep(0.002)
    c.close()
    return {"sent": sent, "conn": st}


def main():
    req = json.loads(sys.argv[1])
    mode = req["mode"]
    if mode == "raw":
        out = mode_raw(req)
    elif mode == "conn":
        out = mode_conn(req)
    elif mode == "flood":
        out = mode_flood(req)
    else:
        raise SystemExit("unknown mode " + mode)
    print(json.dumps(out))


main()
