#!/bin/bash
# Captures the kernel's `ethtool -k` and `ethtool -K` answers for a TAP device
# opened with IFF_VNET_HDR and TUNSETOFFLOAD (TUN_F_CSUM|TUN_F_TSO4|TUN_F_USO4|
# TUN_F_USO6), as the stack opens its TAPs, into test/fixtures/ethtool/: the
# default list, then after `-K tso off gro off`, and a fresh device after
# `-K tx-udp-segmentation off`. Run as root (NS names the namespace used).
set -euo pipefail
cd "$(dirname "$0")/.."
out=test/fixtures/ethtool
mkdir -p "$out"
ns=${NS:-tsof-eth$$}
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip netns exec "$ns" python3 - "$out" <<'PY'
import fcntl, os, struct, subprocess, sys
out = sys.argv[1]
TUNSETIFF = 0x400454ca
TUNSETOFFLOAD = 0x400454d0
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
def tap():
    fd = os.open('/dev/net/tun', os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', b'tsofe0', IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    # TUN_F_CSUM | TUN_F_TSO4 | TUN_F_USO4 | TUN_F_USO6 (tun.c takes USO4 only with USO6).
    fcntl.ioctl(fd, TUNSETOFFLOAD, 0x01 | 0x02 | 0x20 | 0x40)
    return fd
def run(args):
    r = subprocess.run(['ethtool'] + args, capture_output=True, text=True)
    return r.stdout + r.stderr
fd = tap()
with open(f'{out}/tap-k.txt', 'w') as f:
    f.write(run(['-k', 'tsofe0']))
subprocess.run(['ethtool', '-K', 'tsofe0', 'tso', 'off', 'gro', 'off'], capture_output=True)
with open(f'{out}/tap-k-tso-gro-off.txt', 'w') as f:
    f.write(run(['-k', 'tsofe0']))
os.close(fd)
fd = tap()
with open(f'{out}/tap-k-uso-off.txt', 'w') as f:
    f.write(run(['-K', 'tsofe0', 'tx-udp-segmentation', 'off']))
    f.write(run(['-k', 'tsofe0']))
os.close(fd)
PY
