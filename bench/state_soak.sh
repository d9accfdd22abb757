#!/usr/bin/env bash
# State sync over a bad link for a long while (docs/benchmarks.md, "State
# sync"): the arena on state sync (bench/arena.lua, ARENA_SYNC=state, rooms
# of 8) with N bots whose links go through --netsim, for SECONDS. Prints the
# server's RSS every 30 s, then the bots' sums: patches applied of those
# sent (seq span), resyncs, checksum mismatches, gaps, decode errors.
#   bench/state_soak.sh [N=32] [SECONDS=600] [NETSIM=80,20,0.05,0.01,0.01]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-32} SECS=${2:-600} NETSIM=${3:-80,20,0.05,0.01,0.01}
BIN=${BUILD:-build}/nshost
tmp=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$tmp"' EXIT
ARENA_SYNC=state "$BIN" --role=server --port=0 --max-clients="$N" bench/arena.lua 2>"$tmp/server.log" &
srv=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/server.log" && break; sleep 0.1; done
port=$(grep -o "listening on [0-9.]*:[0-9]*" "$tmp/server.log" | head -1 | sed 's/.*://')
rss() { awk '/VmRSS/ {print $2}' "/proc/$srv/status"; }
ARENA_SYNC=state BENCH_START=5 BENCH_WINDOW="$SECS" "$BIN" --role=client --headless --bots="$N" \
  --netsim="$NETSIM" --connect="nshost://127.0.0.1:$port" bench/arena.lua >"$tmp/bots.out" 2>"$tmp/bots.err" &
bots=$!
start=$(date +%s)
echo "t_s server_rss_kib"
while kill -0 "$bots" 2>/dev/null; do
  echo "$(( $(date +%s) - start )) $(rss)"
  for _ in $(seq 30); do kill -0 "$bots" 2>/dev/null || break; sleep 1; done
done
wait "$bots" || true
grep -o "bench state .*" "$tmp/bots.out" | awk '
  { for (i = 3; i <= NF; i++) { split($i, kv, "="); sum[kv[1]] += kv[2] } n++ }
  END { printf "bots=%d applied=%d seq_span=%d resyncs=%d mismatches=%d gaps=%d decode_errors=%d\n",
        n, sum["applied"], sum["seq_span"], sum["resyncs"], sum["mismatches"], sum["gaps"], sum["decode_errors"] }'
grep -c "bench disconnected\|bench room left" "$tmp/bots.out" | sed 's/^/bots that lost their room or link: /' || true
