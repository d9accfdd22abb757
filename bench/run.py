#!/usr/bin/env python3
"""Runs nshost's benchmark suite and prints one table (docs/benchmarks.md).

Workload 1, relay (N = 64, 256, 512), back to back against three servers:
  nshost    nshost --role=server bench/relay.lua
  raw       build/nshost_raw_server: the same work in plain C++ ENet, no Lua
  colyseus  the Colyseus 0.16 anchor (its own bots; run.sh N SECONDS)
Workload 2, crowd (N = 1024, 2048): nshost bench/crowd.lua, then its floor:
  floor     build/nshost_fanout_floor: the kernel alone sending one datagram
            to each of N sockets per tick, no ENet, no Lua
nshost and raw are driven by the same bots: nshost --role=client --bots=N, split
over ceil(N / 1024) processes (--bots-per-process).

Every figure is taken over the same fixed window after a warm-up; with
--repeat=K each cell is the median of K runs, and each ratio is computed
inside one run (same repetition, back to back) before taking the median.

  bench/run.py [--build=DIR] [--window=S] [--warmup=S] [--repeat=K]
               [--relay=64,256,512] [--crowd=1024,2048] [--no-colyseus]
               [--json=FILE]
               [--rooms-join=2000] [--arena=256,1024] [--idle-rooms=1000]

The rooms workloads (bench/rooms_bench.py) run only when their flag is given;
then relay and crowd run only if --relay/--crowd are given too.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK_HZ = 30
RAMP_PER_S = 500
# The bots run at a lower priority than the server they measure: on a real
# deployment they would be other machines.
BOT_NICE = 10


class Reader:
    """Collects a pipe's lines with their arrival time, on a thread."""

    def __init__(self, stream):
        self.lines = []
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        for line in stream:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, pattern, timeout_s):
        deadline = time.monotonic() + timeout_s
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            for _, line in list(self.lines):
                m = rx.search(line)
                if m:
                    return m
            time.sleep(0.02)
        return None


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_mib(pid, field):
    """A size field of /proc/PID/status (VmHWM: peak RSS, VmRSS: RSS now) in MiB, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mib(pid):
    return status_mib(pid, "VmHWM")


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def sleep_until(t):
    while True:
        d = t - time.monotonic()
        if d <= 0:
            return
        time.sleep(min(d, 0.2))


STATS = re.compile(r"stats t=([\d.]+) tick=\d+ dur_us=(-?\d+) late_us=(-?\d+) cpu_us=(\d+) sent_bytes=(\d+)"
                   r"(?: sent_packets=(\d+))?")


def stop_processes(procs, sig=signal.SIGTERM, timeout_s=20):
    """Sends `sig` to each of `procs` still running, then waits for each,
    killing one that outlives `timeout_s`."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def tick_figures(lines, w0, w1):
    rows = []
    for _, line in lines:
        m = STATS.search(line)
        if m and w0 <= float(m.group(1)) <= w1:
            rows.append(tuple(float(g) if g is not None else 0.0 for g in m.groups()))
    if len(rows) < 2:
        return {}
    dur = [r[1] / 1000 for r in rows]
    late = [max(0.0, r[2] / 1000) for r in rows]
    cpu = [r[3] / 1000 for r in rows]
    sent = sum((int(b[4]) - int(a[4])) % (1 << 32) for a, b in zip(rows, rows[1:]))
    datagrams = sum((int(b[5]) - int(a[5])) % (1 << 32) for a, b in zip(rows, rows[1:]))
    span = rows[-1][0] - rows[0][0]
    return {
        "tick_ms_p50": pct(dur, 0.5), "tick_ms_p99": pct(dur, 0.99), "tick_ms_max": max(dur),
        "tick_cpu_ms_p50": pct(cpu, 0.5), "tick_cpu_ms_p99": pct(cpu, 0.99),
        "late_ms_p50": pct(late, 0.5), "late_ms_p99": pct(late, 0.99), "late_ms_max": max(late),
        "ticks_per_s": (len(rows) - 1) / span if span > 0 else None,
        "bytes_per_s": sent / span if span > 0 else None,
        "datagrams_per_s": datagrams / span if span > 0 else None,
    }


def run_enet(server_cmd, bot_script, n, window_s, warmup_s, build, bot_procs=1, extra=None):
    """One server (nshost or raw) driven by `n` nshost bots, split over
    `bot_procs` processes (the ramp split with them). `extra`: a regex with
    named integer groups matched against the bots' output lines; each
    group's sum over the bots lands in the result under its name."""
    srv = subprocess.Popen(server_cmd + ["--port=0", f"--max-clients={n}", "--stats"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    bots, outs, errs = [], [], []
    try:
        srv_log = Reader(srv.stderr)
        m = srv_log.wait_for(r"listening on [\d.]+:(\d+)", 10)
        if not m:
            raise RuntimeError("server did not start: " + "\n".join(l for _, l in srv_log.lines[-5:]))
        port = int(m.group(1))
        start_s = n / RAMP_PER_S + 2 + warmup_s
        env = dict(os.environ, BENCH_START=str(start_s), BENCH_WINDOW=str(window_s))
        t0 = time.monotonic()
        for k in range(bot_procs):
            share = n // bot_procs + (1 if k < n % bot_procs else 0)
            bots.append(subprocess.Popen(
                ["nice", "-n", str(BOT_NICE), os.path.join(build, "nshost"), "--role=client", "--headless",
                 f"--bots={share}", f"--bots-ramp={max(1, RAMP_PER_S // bot_procs)}",
                 f"--connect=nshost://127.0.0.1:{port}", os.path.join(ROOT, "bench", bot_script)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            outs.append(Reader(bots[-1].stdout))
            errs.append(Reader(bots[-1].stderr))
        sleep_until(t0 + start_s)
        c0, w0 = cpu_seconds(srv.pid), time.monotonic()
        joined = sum(1 for e in errs for _, l in e.lines if "info: joined" in l)
        sleep_until(t0 + start_s + window_s)
        c1, w1 = cpu_seconds(srv.pid), time.monotonic()
        for b, o in zip(bots, outs):
            b.wait(timeout=60)
            o.thread.join(5)
        rss = peak_rss_mib(srv.pid)
    finally:
        stop_processes(bots, signal.SIGKILL)
        stop_processes([srv], timeout_s=10)
    snaps, entries, rtts, reports, ticks = 0, 0, [], 0, 0
    max_entries = 0
    for _, line in (item for o in outs for item in o.lines):
        m = re.search(r"bench snaps=(\d+) entries=(\d+) max_entries=(\d+) ticks=(\d+) rtt_ms=(.*)", line)
        if not m:
            continue
        reports += 1
        snaps += int(m.group(1))
        entries += int(m.group(2))
        max_entries = max(max_entries, int(m.group(3)))
        ticks += int(m.group(4))
        rtts += [float(x) for x in m.group(5).split(",") if x]
    sums = {}
    for _, line in (item for o in outs for item in o.lines) if extra else ():
        m = extra.search(line)
        for k, v in (m.groupdict() if m else {}).items():
            sums[k] = sums.get(k, 0) + int(v)
    window = w1 - w0
    out = {"clients": n, "joined": joined, "reports": reports, "window_s": window,
           "server_cpu_s": c1 - c0, "cpu_per_s": (c1 - c0) / window, "rss_mib": rss,
           "snaps_per_s": snaps / window_s, "expected_per_s": n * TICK_HZ,
           # snapshots missing from the tick spans the bots saw: 0 = every
           # one sent to a bot in its window arrived
           "lost": ticks - snaps,
           "entries_per_snap": entries / snaps if snaps else 0, "max_entries": max_entries,
           "rtt_ms_p50": pct(rtts, 0.5), "rtt_ms_p99": pct(rtts, 0.99)}
    out.update(sums)
    out.update(tick_figures(srv_log.lines, w0, w1))
    return out


def prepare_anchor(src, build, name="bench-colyseus-relay"):
    """run.sh installs its npm packages into its own folder; the shared
    anchor is read-only, so it runs from a copy in the build folder."""
    dst = os.path.join(build, name)
    if not os.path.exists(os.path.join(dst, "run.sh")):
        shutil.copytree(src, dst, dirs_exist_ok=True)
        for dirpath, _, files in os.walk(dst):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o755 if f.endswith(".sh") else 0o644)
    if not os.path.isdir(os.path.join(dst, "node_modules", "@colyseus", "core")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=dst, check=True,
                       stdout=subprocess.DEVNULL)
    return dst


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def run_colyseus(anchor, n, window_s):
    procs = 1 if n < 512 else 2
    env = dict(os.environ, PROCS=str(procs), PORT="2567", TICK_HZ=str(TICK_HZ))
    p = subprocess.Popen(["bash", os.path.join(anchor, "run.sh"), str(n), str(int(window_s))], cwd=anchor, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rss = None
    out = []
    reader = Reader(p.stdout)
    while p.poll() is None:
        for c in children(p.pid):
            try:
                with open(f"/proc/{c}/cmdline", "rb") as f:
                    if b"server.mjs" in f.read():
                        r = peak_rss_mib(c)
                        if r:
                            rss = max(rss or 0, r)
            except OSError:
                pass
        time.sleep(0.5)
    reader.thread.join(5)
    rows = [json.loads(l) for _, l in reader.lines if l.startswith("{")]
    if not rows:
        raise RuntimeError("colyseus run.sh printed no result")
    r = rows[-1]
    w = r["window_s"]
    return {"clients": n, "joined": r["clients"], "window_s": w, "server_cpu_s": r["server_cpu_s"],
            "cpu_per_s": r["server_cpu_s"] / w, "rss_mib": rss, "snaps_per_s": r["snaps_per_s"],
            "expected_per_s": n * TICK_HZ, "rtt_ms_p50": r["rtt_ms_p50"], "rtt_ms_p99": r["rtt_ms_p99"],
            "bot_procs": procs}


# About a crowd snapshot's datagram: 6-byte header, ~22 six-byte entries,
# ENet's headers (docs/benchmarks.md).
FLOOR_DATAGRAM_BYTES = 150


def run_floor(build, n, window_s):
    out = subprocess.run([os.path.join(build, "nshost_fanout_floor"), str(n), str(FLOOR_DATAGRAM_BYTES),
                          str(int(window_s * TICK_HZ)), str(TICK_HZ)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def us_per_snap(r):
    return r["cpu_per_s"] / r["snaps_per_s"] * 1e6 if r.get("snaps_per_s") else None


def median_of(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec=".2f"):
    return "—" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--relay", default=None, help="default 64,256,512 (none with a rooms workload)")
    ap.add_argument("--crowd", default=None, help="default 1024,2048 (none with a rooms workload)")
    ap.add_argument("--no-colyseus", action="store_true")
    ap.add_argument("--anchor", default=os.path.join(os.path.dirname(ROOT), "shared", "anchors", "colyseus-relay"))
    ap.add_argument("--json", help="also write every run's figures to this file")
    ap.add_argument("--bots-per-process", type=int, default=1024,
                    help="split the bots of a run over ceil(N / this) processes (N = 2048: two)")
    ap.add_argument("--nshost-flags", default="", help="extra flags for the nshost server, e.g. --coalesce=0")
    import rooms_bench  # imports this module for its helpers
    rooms_bench.add_args(ap)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    rooms = rooms_bench.wanted(a)
    if a.relay is None:
        a.relay = "" if rooms else "64,256,512"
    if a.crowd is None:
        a.crowd = "" if rooms else "1024,2048"
    relay_ns = [int(x) for x in a.relay.split(",") if x]
    crowd_ns = [int(x) for x in a.crowd.split(",") if x]
    anchor = None if a.no_colyseus or not relay_ns else prepare_anchor(a.anchor, build)
    # Every bot joins from 127.0.0.1: the per-address cap on half-open
    # handshakes (a flood guard, default 4) would turn a load test's joins
    # away, so it is raised to the overall cap.
    nshost = [os.path.join(build, "nshost"), "--role=server", "--max-pending-per-address=32"] + a.nshost_flags.split()
    raw = [os.path.join(build, "nshost_raw_server")]

    def bot_procs(n):
        return max(1, -(-n // max(1, a.bots_per_process)))

    runs = []  # (rep, workload, server, n, figures)
    for rep in range(a.repeat):
        for n in relay_ns:
            for server, fn in (("nshost", lambda: run_enet(nshost + [os.path.join(ROOT, "bench", "relay.lua")],
                                                             "relay.lua", n, a.window, a.warmup, build, bot_procs(n))),
                               ("raw", lambda: run_enet(raw, "relay.lua", n, a.window, a.warmup, build,
                                                        bot_procs(n))),
                               ("colyseus", lambda: run_colyseus(anchor, n, a.window))):
                if server == "colyseus" and not anchor:
                    continue
                print(f"# rep {rep + 1}/{a.repeat}: relay N={n} {server}", file=sys.stderr, flush=True)
                r = fn()
                r["us_per_snap"] = us_per_snap(r)
                runs.append((rep, "relay", server, n, r))
        for n in crowd_ns:
            print(f"# rep {rep + 1}/{a.repeat}: crowd N={n} nshost", file=sys.stderr, flush=True)
            r = run_enet(nshost + [os.path.join(ROOT, "bench", "crowd.lua")], "crowd.lua", n, a.window, a.warmup,
                         build, bot_procs(n))
            r["us_per_snap"] = us_per_snap(r)
            runs.append((rep, "crowd", "nshost", n, r))
            print(f"# rep {rep + 1}/{a.repeat}: crowd N={n} kernel fan-out floor", file=sys.stderr, flush=True)
            runs.append((rep, "crowd", "floor", n, run_floor(build, n, a.window)))
    if rooms:
        rooms_bench.run_all(a, build, bot_procs, runs)
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{"rep": rep, "workload": w, "server": s, "n": n, **r} for rep, w, s, n, r in runs], f, indent=1)

    def cell(w, s, n):
        return [r for _, ww, ss, nn, r in runs if (ww, ss, nn) == (w, s, n)]

    if rooms:
        rooms_bench.print_tables(a, runs)
    if not relay_ns and not crowd_ns:
        return
    print(f"\nwindow {a.window:g} s after {a.warmup:g} s warm-up; median of {a.repeat} run(s); "
          f"tick rate {TICK_HZ} Hz\n")
    print("| workload | N | server | CPU s/s | CPU µs/snap | snaps/s (of expected) | lost | peak RSS MiB | sent MB/s "
          "| tick ms p50/p99/max | tick CPU ms p50/p99 | late ms p50/p99/max | RTT ms p50/p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for w, ns in (("relay", relay_ns), ("crowd", crowd_ns)):
        for n in ns:
            for s in ("nshost", "raw", "colyseus"):
                c = cell(w, s, n)
                if not c:
                    continue
                m = lambda k: median_of(c, k)
                bps = m("bytes_per_s")
                print(f"| {w} | {n} | {s} | {fmt(m('cpu_per_s'), '.3f')} | {fmt(m('us_per_snap'), '.1f')} "
                      f"| {fmt(m('snaps_per_s'), '.0f')} of {n * TICK_HZ} ({fmt(100 * m('snaps_per_s') / (n * TICK_HZ), '.1f')}%) "
                      f"| {fmt(m('lost'), '.0f')} "
                      f"| {fmt(m('rss_mib'), '.1f')} | {fmt(bps / 1e6 if bps else None, '.2f')} "
                      f"| {fmt(m('tick_ms_p50'))}/{fmt(m('tick_ms_p99'))}/{fmt(m('tick_ms_max'))} "
                      f"| {fmt(m('tick_cpu_ms_p50'))}/{fmt(m('tick_cpu_ms_p99'))} "
                      f"| {fmt(m('late_ms_p50'))}/{fmt(m('late_ms_p99'))}/{fmt(m('late_ms_max'))} "
                      f"| {fmt(m('rtt_ms_p50'))}/{fmt(m('rtt_ms_p99'))} |")
    if relay_ns:
        print("\nRatios of server CPU per delivered snapshot, each taken within one run, then the median:\n")
        print("| N | nshost / raw | nshost / colyseus | raw / colyseus |")
        print("|---|---|---|---|")
        for n in relay_ns:
            def ratios(num, den):
                vals = []
                for rep in range(a.repeat):
                    x = [r for rr, w, s, nn, r in runs if (rr, w, s, nn) == (rep, "relay", num, n)]
                    y = [r for rr, w, s, nn, r in runs if (rr, w, s, nn) == (rep, "relay", den, n)]
                    if x and y and x[0]["us_per_snap"] and y[0]["us_per_snap"]:
                        vals.append(x[0]["us_per_snap"] / y[0]["us_per_snap"])
                return statistics.median(vals) if vals else None
            print(f"| {n} | {fmt(ratios('nshost', 'raw'))} | {fmt(ratios('nshost', 'colyseus'))} "
                  f"| {fmt(ratios('raw', 'colyseus'))} |")
    if crowd_ns:
        print("\nCrowd tick against the kernel's floor (one datagram to each of N sockets per tick, "
              f"{FLOOR_DATAGRAM_BYTES} bytes, sendmmsg; bench/fanout_floor.cpp), medians:\n")
        print("| N | floor send ms p50/p99 | nshost tick ms p50/p99 | tick p99 / floor p99 (per run, median) |")
        print("|---|---|---|---|")
        for n in crowd_ns:
            floor, ns = cell("crowd", "floor", n), cell("crowd", "nshost", n)
            per_run = []
            for rep in range(a.repeat):
                f = [r for rr, w, s, nn, r in runs if (rr, w, s, nn) == (rep, "crowd", "floor", n)]
                t = [r for rr, w, s, nn, r in runs if (rr, w, s, nn) == (rep, "crowd", "nshost", n)]
                if f and t and t[0].get("tick_ms_p99") and f[0]["send_ms_p99"]:
                    per_run.append(t[0]["tick_ms_p99"] / f[0]["send_ms_p99"])
            print(f"| {n} | {fmt(median_of(floor, 'send_ms_p50'))}/{fmt(median_of(floor, 'send_ms_p99'))} "
                  f"| {fmt(median_of(ns, 'tick_ms_p50'))}/{fmt(median_of(ns, 'tick_ms_p99'))} "
                  f"| {fmt(statistics.median(per_run) if per_run else None)} |")
    short = [(w, s, n, r) for _, w, s, n, r in runs
             if w in ("relay", "crowd") and s != "floor" and (r.get("joined", n) < n or r.get("reports", n) < n)]
    for w, s, n, r in short:
        print(f"\nnote: {w} N={n} {s}: {r.get('joined')} of {n} bots joined before the window, "
              f"{r.get('reports', '—')} reported")


if __name__ == "__main__":
    main()
