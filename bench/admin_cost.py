#!/usr/bin/env python3
"""The cost of metrics (docs/operations.md, "Cost of metrics").

Crowd N=1024 (bench/crowd.lua, as bench/run.py runs it) twice per repetition,
back to back on the same machine: once plain, once with --admin=127.0.0.1:0
and a scraper fetching GET /metrics and GET /api/status once a second (what
Prometheus and an open dashboard do). The server's tick figures come from
--stats over the same window as run.py's. Each repetition's ratio
(admin / plain) is taken inside the repetition; the order alternates between
repetitions (plain first, then admin first) so a drifting machine does not
favour one side; the result is the median of the per-repetition ratios.

  bench/admin_cost.py [--build=DIR] [--n=1024] [--repeat=3] [--window=10] [--warmup=3]
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (its Reader, tick_figures and timing helpers)

ROOT = run.ROOT


class Scraper:
    """Fetches /metrics and /api/status once a second until stopped."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.scrapes = 0
        self.failures = 0
        self.latency_ms = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while not self.stop.is_set():
            t = time.monotonic()
            for path in ("/metrics", "/api/status"):
                try:
                    with opener.open(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                        r.read()
                    self.scrapes += 1
                except OSError:
                    self.failures += 1
            self.latency_ms.append((time.monotonic() - t) * 1000)
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - t)))


def crowd(build, n, window_s, warmup_s, admin):
    cmd = [os.path.join(build, "nshost"), "--role=server", "--max-pending-per-address=32", "--port=0",
           f"--max-clients={n}", "--stats"]
    if admin:
        cmd.append("--admin=127.0.0.1:0")
    cmd.append(os.path.join(ROOT, "bench", "crowd.lua"))
    srv = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    bots, scraper = None, None
    try:
        log = run.Reader(srv.stderr)
        m = log.wait_for(r"listening on [\d.]+:(\d+)", 10)
        if not m:
            raise RuntimeError("server did not start")
        port = int(m.group(1))
        if admin:
            a = log.wait_for(r"admin: listening on http://127\.0\.0\.1:(\d+)", 10)
            if not a:
                raise RuntimeError("admin server did not start")
            scraper = Scraper(int(a.group(1)))
        start_s = n / run.RAMP_PER_S + 2 + warmup_s
        env = dict(os.environ, BENCH_START=str(start_s), BENCH_WINDOW=str(window_s))
        t0 = time.monotonic()
        bots = subprocess.Popen(
            ["nice", "-n", str(run.BOT_NICE), os.path.join(build, "nshost"), "--role=client", "--headless",
             f"--bots={n}", f"--bots-ramp={run.RAMP_PER_S}", f"--connect=nshost://127.0.0.1:{port}",
             os.path.join(ROOT, "bench", "crowd.lua")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run.sleep_until(t0 + start_s)
        w0 = time.monotonic()
        load0 = os.getloadavg()[0]
        run.sleep_until(t0 + start_s + window_s)
        w1 = time.monotonic()
        load1 = os.getloadavg()[0]
        bots.wait(timeout=60)
    finally:
        if scraper:
            scraper.stop.set()
            scraper.thread.join(10)
        run.stop_processes([bots] if bots else [], signal.SIGKILL)
        run.stop_processes([srv], timeout_s=10)
    out = run.tick_figures(log.lines, w0, w1)
    out["load"] = (load0 + load1) / 2
    if scraper:
        out["scrapes"] = scraper.scrapes
        out["scrape_failures"] = scraper.failures
        out["scrape_ms_p50"] = run.pct(scraper.latency_ms, 0.5)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=3)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    rows = []
    for rep in range(a.repeat):
        order = (False, True) if rep % 2 == 0 else (True, False)
        got = {}
        for admin in order:
            print(f"# rep {rep + 1}/{a.repeat}: crowd N={a.n} {'--admin + scrapes' if admin else 'plain'}",
                  file=sys.stderr, flush=True)
            got[admin] = crowd(build, a.n, a.window, a.warmup, admin)
        rows.append(got)
        p, q = got[False], got[True]
        print(f"#   plain tick p99 {run.fmt(p.get('tick_ms_p99'))} ms, admin {run.fmt(q.get('tick_ms_p99'))} ms; "
              f"late p99 {run.fmt(p.get('late_ms_p99'))} / {run.fmt(q.get('late_ms_p99'))} ms; "
              f"{q.get('scrapes', 0)} scrapes ({q.get('scrape_failures', 0)} failed); "
              f"load {p['load']:.1f} / {q['load']:.1f}", file=sys.stderr, flush=True)

    def ratio(key):
        vals = [r[True][key] / r[False][key] for r in rows if r[True].get(key) and r[False].get(key)]
        return statistics.median(vals) if vals else None

    def med(admin, key):
        vals = [r[admin][key] for r in rows if r[admin].get(key) is not None]
        return statistics.median(vals) if vals else None

    print(f"\ncrowd N={a.n}, window {a.window:g} s after {a.warmup:g} s warm-up, {a.repeat} repetition(s), "
          f"tick rate {run.TICK_HZ} Hz; scrapes: GET /metrics + GET /api/status once a second\n")
    print("| figure | plain | --admin + scrapes | ratio (per repetition, median) |")
    print("|---|---|---|---|")
    for key, label in (("tick_ms_p99", "tick ms p99"), ("tick_ms_p50", "tick ms p50"),
                       ("tick_cpu_ms_p99", "tick CPU ms p99"), ("late_ms_p99", "late ms p99")):
        print(f"| {label} | {run.fmt(med(False, key))} | {run.fmt(med(True, key))} | {run.fmt(ratio(key), '.3f')} |")
    print(f"| load average (1 min, mean over the windows) | {run.fmt(med(False, 'load'), '.1f')} "
          f"| {run.fmt(med(True, 'load'), '.1f')} | |")
    print(f"| scrape round trip ms p50 (both endpoints) | | {run.fmt(med(True, 'scrape_ms_p50'))} | |")


if __name__ == "__main__":
    main()
