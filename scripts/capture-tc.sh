#!/usr/bin/env bash
# Runs the real tc over a kernel TAP device for each line of DIR/cases.txt
# (DIR: test/fixtures/tc unless given, e.g. test/fixtures/tc-ext) and records
# its exit code, stdout and stderr in DIR/expected.txt;
# test/unit/tc-fixtures.test.ts replays the same lines against the stack and
# compares byte for byte. Needs root; uses the namespace tstc-cap only,
# removed at the end (also on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
NS=tstc-cap
DIR=${1:-test/fixtures/tc}
CASES=$DIR/cases.txt
OUT=$DIR/expected.txt
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$NS"
# A TAP device, as the stack's: txqueuelen 1000, the default qdisc (pfifo_fast).
ip -n "$NS" tuntap add dev tstc0 mode tap
ip -n "$NS" link set tstc0 mtu 1500 up
[ "$(cat /proc/sys/net/core/default_qdisc)" = pfifo_fast ] || { echo "net.core.default_qdisc is not pfifo_fast" >&2; exit 1; }
{
  echo "# tc $(ip netns exec "$NS" tc -V | sed 's/^tc utility, //'), kernel $(uname -r); from $CASES by scripts/capture-tc.sh"
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    # shellcheck disable=SC2086
    set +e
    ip netns exec "$NS" tc $line >/tmp/tstc-out.$$ 2>/tmp/tstc-err.$$
    code=$?
    set -e
    echo "### tc $line"
    echo "exit $code"
    echo "--- stdout"
    cat /tmp/tstc-out.$$
    echo "--- stderr"
    cat /tmp/tstc-err.$$
  done < "$CASES"
} > "$OUT"
rm -f /tmp/tstc-out.$$ /tmp/tstc-err.$$
echo "wrote $OUT"
