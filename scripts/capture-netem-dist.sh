#!/bin/sh
# Copies the netem delay distribution tables that iproute2 installs (built by
# its netem/normal.c, pareto.c, paretonormal.c) into test/fixtures/netem/, for
# the test that compares them with the tables src/sched/netem-dist.ts computes.
set -e
cd "$(dirname "$0")/.."
dir=$(for d in /usr/lib/x86_64-linux-gnu/tc /usr/lib/tc /usr/lib64/tc /usr/share/tc; do [ -f "$d/normal.dist" ] && echo "$d" && break; done)
[ -n "$dir" ] || { echo "no iproute2 .dist files found" >&2; exit 1; }
mkdir -p test/fixtures/netem
for n in normal pareto paretonormal; do cp "$dir/$n.dist" "test/fixtures/netem/$n.dist"; done
echo "copied from $dir"
