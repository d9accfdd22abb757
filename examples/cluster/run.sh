#!/usr/bin/env bash
# Starts a throwaway redis-server, three nshost servers sharing it
# (--cluster) and bots on each server that matchmake into rooms across them
# (examples/cluster/README.md). Ctrl-C (or the end of the round) stops
# everything it started.
#   examples/cluster/run.sh [bots per server, default 6]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
nshost=${NSHOST:-$root/build/nshost}
bots=${1:-6}
command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install redis-server" >&2; exit 1; }
[ -x "$nshost" ] || { echo "$nshost not found: build first (see README.md)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
stop() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap stop EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
echo "redis on 127.0.0.1:$redis_port"

ports=(7411 7412 7413)
for port in "${ports[@]}"; do
  "$nshost" --role=server --port="$port" --headless --cluster="redis://127.0.0.1:$redis_port" "$here/game.lua" \
    > >(sed -u "s/^/[server $port] /") 2> >(grep --line-buffered -E "cluster|matchmaking" | sed -u "s/^/[server $port] /" >&2) &
  pids+=($!)
done
# Each server registers within a heartbeat.
for _ in $(seq 100); do
  [ "$(redis-cli -p "$redis_port" zcard nshost:servers)" = "${#ports[@]}" ] && break
  sleep 0.05
done

for port in "${ports[@]}"; do
  "$nshost" --role=client --headless --bots="$bots" --connect="nshost://127.0.0.1:$port" "$here/game.lua" \
    > >(sed -u "s/^/[bots dialled $port] /") 2>/dev/null &
  pids+=($!)
done
echo "$((bots * ${#ports[@]})) bots on ${#ports[@]} servers; ctrl-c stops everything"
wait
