#!/bin/bash
# Captures the kernel's `ethtool -k` and `ethtool -K` answers for a TAP device
# opened with IFF_VNET_HDR and TUNSETOFFLOAD (TUN_F_CSUM|TUN_F_TSO4), as the
# stack opens its TAPs, into test/fixtures/ethtool/. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
out=test/fixtures/ethtool
mkdir -p "$out"
ns=tsof-eth$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip netns exec "$ns" python3 - "$out" <<'PY'
import fcntl, os, struct, subprocess, sys
out = sys.argv[1]
TUNSETIFF = 0x400454ca
TUNSETOFFLOAD = 0x400454d0
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', b'tsofe0', IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
fcntl.ioctl(fd, TUNSETOFFLOAD, 0x01 | 0x02)
def run(args):
    r = subprocess.run(['ethtool'] + args, capture_output=True, text=True)
    return r.stdout + r.stderr
with open(f'{out}/tap-k.txt', 'w') as f:
    f.write(run(['-k', 'tsofe0']))
subprocess.run(['ethtool', '-K', 'tsofe0', 'tso', 'off', 'gro', 'off'], capture_output=True)
with open(f'{out}/tap-k-tso-gro-off.txt', 'w') as f:
    f.write(run(['-k', 'tsofe0']))
PY
