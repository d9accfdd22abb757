#!/usr/bin/env python3
"""Cluster bench (docs/benchmarks.md "Cluster"): one throwaway redis-server,
SERVERS nshost servers with --cluster on it, BOTS bots spread evenly over the
servers (one bot process per server).

Two workloads, each on a fresh cluster:
  matchmaking  every bot enqueues for size 4 (bench/cluster_matchmaking.lua):
               every bot matched exactly once, enqueue-to-seated p50/p99/max,
               Redis commands per match (INFO commandstats), rooms over size
  join         every bot calls rooms.join_or_create("bench") once
               (bench/cluster_join.lua): joined, p50/p99/max, rooms over size

    python3 bench/cluster.py [--bots 2000] [--servers 4] [--nshost build/nshost]
                             [--workload matchmaking,join]

Prints one table row per workload (markdown) and a JSON line with every figure.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


class Proc:
    """A child process whose stdout and stderr lines are collected."""

    def __init__(self, args, env=None, name=""):
        self.name = name
        self.lines = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=env, errors="replace")
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def wait_line(self, pattern, timeout_s):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(rx.search(l) for l in self.snapshot()):
                return True
            if self.p.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def stop(self, sig=signal.SIGTERM, timeout_s=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            self.p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def redis_cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10)
    return out.stdout


def commandstats(port):
    """{command: calls} from INFO commandstats."""
    stats = {}
    for line in redis_cli(port, "INFO", "commandstats").splitlines():
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if m:
            stats[m.group(1)] = int(m.group(2))
    return stats


def run_workload(args, workload):
    script = os.path.join(HERE, "cluster_matchmaking.lua" if workload == "matchmaking" else "cluster_join.lua")
    tmp = tempfile.mkdtemp(prefix="nshost-cluster-bench-")
    redis_port = free_port()
    redis = Proc(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", tmp], name="redis")
    procs = [redis]
    try:
        deadline = time.monotonic() + 10
        while redis_cli(redis_port, "PING").strip() != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not come up")
            time.sleep(0.05)
        per = args.bots // args.servers
        ports = [free_port(socket.SOCK_DGRAM) for _ in range(args.servers)]
        servers = []
        for port in ports:
            s = Proc([args.nshost, "--role=server", f"--port={port}", "--headless",
                      f"--cluster=redis://127.0.0.1:{redis_port}", f"--max-clients={args.bots + 100}",
                      f"--max-pending-handshakes={args.bots + 100}", f"--max-pending-per-address={args.bots + 100}",
                      script], name=f"server:{port}")
            servers.append(s)
            procs.append(s)
        for s in servers:
            if not s.wait_line(r"listening on", 20):
                raise RuntimeError(f"{s.name} did not start:\n" + "\n".join(s.snapshot()[-20:]))
        # Every server sees the others in the directory before the bots come.
        time.sleep(args.settle_s)
        before = commandstats(redis_port)
        bots = []
        t_start = time.monotonic()
        for i, port in enumerate(ports):
            n = per if i < args.servers - 1 else args.bots - per * (args.servers - 1)
            b = Proc([args.nshost, "--role=client", "--headless", f"--bots={n}",
                      f"--connect=nshost://127.0.0.1:{port}", script], name=f"bots:{port}")
            bots.append(b)
            procs.append(b)
        done_rx = re.compile(r"(seated ms=|joined ms=|enqueue failed=|join failed=|match failed=)")
        deadline = time.monotonic() + args.timeout_s
        while time.monotonic() < deadline:
            finished = sum(1 for b in bots for l in b.snapshot() if done_rx.search(l))
            if finished >= args.bots:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - t_start
        # Late duplicates (a bot told twice) would show within a moment.
        time.sleep(1.0)
        after = commandstats(redis_port)
        lat = []
        per_bot = {}
        failures = {}
        for b in bots:
            for l in b.snapshot():
                m = re.search(r"nshost\[client#(\d+)\] (seated|joined) ms=([\d.]+) room=(\d+)", l)
                if m:
                    key = (b.name, m.group(1))
                    per_bot[key] = per_bot.get(key, 0) + 1
                    lat.append(float(m.group(3)))
                    continue
                m = re.search(r"(enqueue failed|join failed|match failed)=(\S*)", l)
                if m:
                    failures[m.group(0)] = failures.get(m.group(0), 0) + 1
        room_max = {}
        for s in servers:
            for l in s.snapshot():
                m = re.search(r"seat room=(\d+) clients=(\d+)", l)
                if m:
                    room_max[m.group(1)] = max(room_max.get(m.group(1), 0), int(m.group(2)))
        calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        total_calls = sum(v for k, v in calls.items() if k not in ("info",))
        rooms = len(room_max)
        matches = rooms if workload == "matchmaking" else None
        result = {
            "workload": workload, "bots": args.bots, "servers": args.servers,
            "seated": len(per_bot), "told_twice": sum(1 for v in per_bot.values() if v > 1),
            "failures": failures, "rooms": rooms,
            "rooms_over_size": sum(1 for v in room_max.values() if v > args.size),
            "max_room": max(room_max.values()) if room_max else None,
            "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "max_ms": max(lat) if lat else None,
            "all_done_s": round(elapsed, 2),
            "redis_commands": total_calls,
            "redis_commands_per_match": round(total_calls / matches, 1) if matches else None,
            "redis_commands_by_name": {k: v for k, v in sorted(calls.items()) if v},
        }
        return result
    finally:
        for p in reversed(procs):
            p.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bots", type=int, default=2000)
    ap.add_argument("--servers", type=int, default=4)
    ap.add_argument("--size", type=int, default=4)
    ap.add_argument("--nshost", default=os.path.join(ROOT, "build", "nshost"))
    ap.add_argument("--workload", default="matchmaking,join")
    ap.add_argument("--timeout-s", type=float, default=120)
    ap.add_argument("--settle-s", type=float, default=2.5)
    args = ap.parse_args()
    os.environ["MATCH_SIZE"] = str(args.size)
    print("| workload | bots | servers | seated | told twice | failures | rooms | over size | p50 | p99 | max | all done | Redis commands | per match |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for w in args.workload.split(","):
        r = run_workload(args, w)
        results.append(r)
        f = lambda v: "-" if v is None else (f"{v:.1f} ms" if isinstance(v, float) else str(v))
        print(f"| {w} | {r['bots']} | {r['servers']} | {r['seated']} | {r['told_twice']} | "
              f"{sum(r['failures'].values())} | {r['rooms']} | {r['rooms_over_size']} | {f(r['p50_ms'])} | "
              f"{f(r['p99_ms'])} | {f(r['max_ms'])} | {r['all_done_s']} s | {r['redis_commands']} | "
              f"{r['redis_commands_per_match'] if r['redis_commands_per_match'] is not None else '-'} |", flush=True)
    print(json.dumps(results))
    ok = all(r["seated"] == r["bots"] - (r["bots"] % args.size if r["workload"] == "matchmaking" else 0)
             and r["told_twice"] == 0 and r["rooms_over_size"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
