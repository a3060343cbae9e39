#!/usr/bin/env python3
"""Summarises a receiver's ACK stream in a capture taken next to it (capture-rx-loss.sh's
*-rx.pcap): data segments and ACKs, segments per ACK, the delay from the newest data
segment to the ACK, ACKs with SACK blocks, D-SACKs, whether the first SACK block holds the
newest out-of-order segment (RFC 2018 §4), the advertised window.
Usage: rx-ack-summary.py file.pcap [port]"""
import subprocess, sys, collections

pcap = sys.argv[1]
port = sys.argv[2] if len(sys.argv) > 2 else '5201'
fields = ['tcp.stream', 'frame.time_epoch', 'tcp.srcport', 'tcp.seq_raw', 'tcp.len', 'tcp.ack_raw', 'tcp.window_size',
          'tcp.options.sack_le', 'tcp.options.sack_re', 'tcp.options.timestamp.tsval', 'tcp.options.timestamp.tsecr', 'tcp.flags.syn']
out = subprocess.run(['tshark', '-r', pcap, '-o', 'tcp.relative_sequence_numbers:FALSE', '-T', 'fields', '-E', 'separator=|'] + sum([['-e', f] for f in fields], []),
                     capture_output=True, text=True).stdout
rows = [l.split('|') for l in out.splitlines() if l]
# The data connection: the stream with the most frames (iperf3's control connection shares the port).
count = collections.Counter(r[0] for r in rows)
stream = count.most_common(1)[0][0]
rows = [r[1:] for r in rows if r[0] == stream]
data = 0
acks = 0
per_ack = collections.Counter()
delays = []
sack_acks = 0
dsacks = 0
first_ok = 0
first_bad = 0
nblocks = collections.Counter()
wins = []
last_data_t = None
last_data = None  # (seq, end)
mss = 1448
high_ack = None
ooo_since = 0
ooo_acked = 0
pending_ooo = 0
first_unacked_t = None
oldest = []
tsecr_on_ooo = []
for r in rows:
    t = float(r[0]); sport = r[1]
    if r[10] == '1':
        continue
    if sport != port:  # data towards the receiver
        ln = int(r[3] or 0)
        if ln == 0:
            continue
        data += 1
        seq = int(r[2])
        last_data_t = t
        if first_unacked_t is None:
            first_unacked_t = t
        last_data = (seq, (seq + ln) & 0xffffffff)
        continue
    if last_data is None:
        continue
    acks += 1
    ack = int(r[4])
    win = int(r[5] or 0)
    wins.append(win)
    if high_ack is not None:
        adv = (ack - high_ack) & 0xffffffff
        if adv < 0x80000000:
            per_ack[round(adv / mss)] += 1
    high_ack = ack if high_ack is None or ((ack - high_ack) & 0xffffffff) < 0x80000000 else high_ack
    if last_data_t is not None:
        delays.append((t - last_data_t) * 1000)
    if first_unacked_t is not None:
        oldest.append((t - first_unacked_t) * 1000)
        first_unacked_t = None
    if r[6]:
        le = [int(x) for x in r[6].split(',')]
        re_ = [int(x) for x in r[7].split(',')]
        sack_acks += 1
        first = 0
        if ((ack - re_[0]) & 0xffffffff) < 0x80000000 or (len(le) > 1 and ((le[0] - le[1]) & 0xffffffff) < 0x80000000 and ((re_[1] - re_[0]) & 0xffffffff) < 0x80000000):
            dsacks += 1
            first = 1
        nblocks[len(le) - first] += 1
        if len(le) > first:
            s, e = last_data
            if ((s - le[first]) & 0xffffffff) < 0x80000000 and ((re_[first] - e) & 0xffffffff) < 0x80000000:
                first_ok += 1
            else:
                first_bad += 1
def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else 0
print(f'{pcap}: {data} data segments, {acks} ACKs ({acks / max(data, 1):.2f} per segment)')
print('  segments newly acknowledged per ACK:', ', '.join(f'{k}:{v}' for k, v in sorted(per_ack.items())))
print(f'  delay newest data -> ACK (ms): p50 {pct(delays, .5):.3f} p90 {pct(delays, .9):.3f} p99 {pct(delays, .99):.3f} max {max(delays):.3f}')
print(f'  delay oldest data not yet acknowledged -> ACK (ms): p50 {pct(oldest, .5):.3f} p90 {pct(oldest, .9):.3f} p99 {pct(oldest, .99):.3f} mean {sum(oldest) / len(oldest):.3f}')
print(f'  ACKs sent 30 ms or more after the newest data (delayed-ACK timer): {sum(1 for d in delays if d >= 30)}')
print(f'  ACKs with SACK {sack_acks}, D-SACK {dsacks}; SACK blocks (besides D-SACK):', dict(sorted(nblocks.items())))
print(f'  first SACK block holds the newest segment: {first_ok}, not: {first_bad}')
print(f'  window field: min {min(wins)} max {max(wins)}')
