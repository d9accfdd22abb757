#!/usr/bin/env python3
"""Smooth play under a bad link (docs/benchmarks.md "Smooth play").

Runs examples/arena/: one server and 16 headless bots (one process,
--bots=16) in one arena room, the bots shaped with --netsim, for SECONDS
each, in four scenarios: 100 ms +- 20 ms with 5 % loss and 200 ms +- 50 ms
with 10 % loss, each with input redundancy on (4 inputs a packet) and off
(1). Parses the metric lines the bots print (examples/arena/client.lua:
"netcode err=", "netcode delay=", "netcode stats", "netcode late_tick") and
the room's inbox line ("arena inbox"), and writes

  build/netcode_bench.json   every figure, and the per-second timelines
  build/netcode_bench.csv    one row per scenario

then draws the figures (bench/plot_netcode.py) unless --no-plot.

  python3 bench/netcode.py [--seconds 60] [--bots 16] [--only NAME] [--no-plot]
"""
import argparse
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

from run import Reader  # bench/run.py: a pipe's lines with their arrival times

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NSHOST = os.path.join(ROOT, "build", "nshost")
SCRIPT = os.path.join(ROOT, "examples", "arena", "server.lua")
OUT_DIR = os.path.join(ROOT, "build")

SCENARIOS = [
    {"name": "100ms_5pct_red4", "netsim": "100,20,0.05,0,0", "redundancy": 4},
    {"name": "100ms_5pct_red1", "netsim": "100,20,0.05,0,0", "redundancy": 1},
    {"name": "200ms_10pct_red4", "netsim": "200,50,0.10,0,0", "redundancy": 4},
    {"name": "200ms_10pct_red1", "netsim": "200,50,0.10,0,0", "redundancy": 1},
]

BOT = re.compile(r"^nshost\[client#(\d+)\] netcode (\w+)(.*)$")
KV = re.compile(r"(\w+)=(-?[\d.]+(?:e-?\d+)?)")


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def run_scenario(sc, seconds, bots):
    load_start = os.getloadavg()[0]
    server = subprocess.Popen([NSHOST, "--role=server", "--port=0", SCRIPT], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, errors="replace")
    s_out, s_err = Reader(server.stdout), Reader(server.stderr)
    m = s_err.wait_for("listening on", 10)
    line = m.string if m else None
    if not line:
        server.kill()
        raise SystemExit("server did not start: " + "\n".join(l for _, l in s_err.lines))
    port = int(line.rsplit(":", 1)[1].split()[0])
    env = dict(os.environ, ARENA_SECONDS=str(seconds), ARENA_REDUNDANCY=str(sc["redundancy"]))
    fleet = subprocess.Popen([NSHOST, "--role=client", "--headless", f"--bots={bots}", f"--netsim={sc['netsim']}",
                              f"--connect=nshost://127.0.0.1:{port}", SCRIPT], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, text=True, errors="replace")
    b_out, b_err = Reader(fleet.stdout), Reader(fleet.stderr)
    try:
        fleet.wait(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        fleet.send_signal(signal.SIGTERM)
        fleet.wait(timeout=10)
    b_out.thread.join(5)
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    s_out.thread.join(5)
    r = analyse(sc, seconds, bots, b_out.lines, s_out.lines, b_err.lines)
    # The machine is shared: the 1-minute load average at the start and end.
    r["load_start"], r["load_end"] = round(load_start, 2), round(os.getloadavg()[0], 2)
    return r


def analyse(sc, seconds, bots, bot_lines, server_lines, bot_errors):
    tick_move = None
    errors = []              # (t, bot, err)
    delays = {}              # bot -> [(t, delay, jitter_ms)]
    last_stats = {}          # bot -> dict
    first_t = {}             # bot -> first metric time (its join)
    late_ticks = []          # (t, bot, dt_ms): client ticks later than 2.5 periods
    for _, line in bot_lines:
        m = BOT.match(line)
        if not m:
            continue
        bot, kind, rest = int(m.group(1)), m.group(2), m.group(3)
        kv = {k: float(v) for k, v in KV.findall(line)}
        if kind == "config":
            tick_move = kv["tick_move"]
            continue
        t = kv.get("t")
        if t is None:
            continue
        first_t.setdefault(bot, t)
        if kind.startswith("err"):
            errors.append((t, bot, kv["err"]))
        elif kind.startswith("delay"):
            delays.setdefault(bot, []).append((t, kv["delay"], kv.get("jitter_ms", 0.0)))
        elif kind == "stats":
            last_stats[bot] = dict(kv)
        elif kind == "late_tick":
            late_ticks.append((t, bot, kv["dt_ms"]))
    if tick_move is None or not errors:
        raise SystemExit(f"{sc['name']}: no metric lines from the bots:\n" + "\n".join(l for _, l in bot_errors[-20:]))
    t0 = min(first_t.values())
    # A bot whose link dropped (ENet's timeout under loss) holds still until
    # it resumes; its error on resuming is that of the gap. The snaps of the
    # bots whose link dropped are counted apart.
    drops = []
    for _, line in bot_errors:
        m = re.match(r"^nshost\[client#(\d+)\] warn: lost the link", line)
        if m:
            drops.append(int(m.group(1)))
    drop_bots = set(drops)
    errs = sorted(e for _, _, e in errors)
    corrections = sum(1 for e in errs if e > 1e-6)
    snaps = sum(1 for e in errs if e > 3 * tick_move)
    snaps_near_drop = sum(1 for _, b, e in errors if e > 3 * tick_move and b in drop_bots)
    # A snap that follows a late client tick of the same bot within a second:
    # the bot made no inputs while it was not scheduled, and the room held
    # its last input meanwhile.
    late_by_bot = {}
    for t, b, _ in late_ticks:
        late_by_bot.setdefault(b, []).append(t)
    snap_list = [(t, b) for t, b, e in errors if e > 3 * tick_move]
    snaps_after_late_tick = sum(1 for t, b in snap_list if any(0 <= t - lt <= 1.0 for lt in late_by_bot.get(b, [])))
    minutes = {b: max((last_stats[b]["t"] - first_t[b]) / 60.0, 1e-9) for b in last_stats}
    bot_minutes = sum(minutes.values()) or 1e-9
    extrapolations = sum(s.get("extrapolations", 0) for s in last_stats.values())
    underruns = sum(s.get("underruns", 0) for s in last_stats.values())

    # Render delay: the mean over the bots, per second. Settled at the first
    # second from which that mean stays within 25 % of its mean over the
    # second half of the run.
    per_second = {}
    for rows in delays.values():
        for t, d, _ in rows:
            per_second.setdefault(int(t - t0), []).append(d)
    mean_series = [(sec, statistics.mean(v)) for sec, v in sorted(per_second.items())]
    settle_s, settled_mean = None, None
    if mean_series:
        half = [m for sec, m in mean_series if sec >= mean_series[-1][0] / 2]
        settled_mean = statistics.mean(half)
        settle_s = mean_series[0][0]
        for sec, m in mean_series:
            if abs(m - settled_mean) > 0.25 * settled_mean:
                settle_s = sec + 1
    finals = [statistics.median([d for t, d, _ in rows if t >= rows[-1][0] - 10]) for rows in delays.values()]
    jitters = [j for rows in delays.values() for _, _, j in rows[len(rows) // 2:]]

    # Inbox: the room's counters, from its last line with the most inputs.
    inbox = {}
    for _, line in server_lines:
        if "arena inbox" in line:
            kv = {k: float(v) for k, v in KV.findall(line)}
            if kv.get("applied", 0) >= inbox.get("applied", -1):
                inbox = kv
    taken = inbox.get("applied", 0) + inbox.get("missed", 0)

    # Per-second timelines, from t0.
    timeline = {}
    for t, _, e in errors:
        timeline.setdefault(int(t - t0), {"err": [], "delay": []})["err"].append(e)
    for rows in delays.values():
        for t, d, _ in rows:
            timeline.setdefault(int(t - t0), {"err": [], "delay": []})["delay"].append(d)
    series = []
    for sec in sorted(timeline):
        e = sorted(timeline[sec]["err"])
        d = timeline[sec]["delay"]
        series.append({"t": sec, "err_p50": percentile(e, 0.5), "err_p99": percentile(e, 0.99),
                       "err_max": e[-1] if e else None,
                       "delay_mean": statistics.mean(d) if d else None,
                       "delay_min": min(d) if d else None, "delay_max": max(d) if d else None})

    return {
        "name": sc["name"], "netsim": sc["netsim"], "redundancy": sc["redundancy"], "seconds": seconds,
        "bots": bots, "bots_reporting": len(last_stats), "tick_move": tick_move, "samples": len(errs),
        "err_p50": percentile(errs, 0.5), "err_p99": percentile(errs, 0.99), "err_max": errs[-1],
        "err_p99_ticks": percentile(errs, 0.99) / tick_move, "err_max_ticks": errs[-1] / tick_move,
        "corrections": corrections, "corrections_per_min": corrections / bot_minutes,
        "snaps": snaps, "snaps_near_link_drop": snaps_near_drop, "snaps_after_late_tick": snaps_after_late_tick,
        "late_ticks": len(late_ticks), "late_tick_max_ms": max((d for _, _, d in late_ticks), default=0),
        "pos_taken": sum(s.get("pos", 0) for s in last_stats.values()),
        "pos_stale": sum(s.get("stale", 0) for s in last_stats.values()),
        "pos_loss_median": statistics.median([s.get("loss", 0) for s in last_stats.values()]) if last_stats else None,
        "link_drops": len(drops),
        "delay_settled_mean": settled_mean, "delay_settled_s": settle_s,
        "delay_final_median": statistics.median(finals) if finals else None,
        "delay_final_min": min(finals) if finals else None,
        "delay_final_max": max(finals) if finals else None,
        "jitter_ms_median": statistics.median(jitters) if jitters else None,
        "extrapolations": extrapolations, "extrapolations_per_min": extrapolations / bot_minutes,
        "underruns": underruns, "underruns_per_min": underruns / bot_minutes,
        "inputs_applied": inbox.get("applied", 0), "inputs_received": inbox.get("received", 0),
        "inputs_late": inbox.get("late", 0), "inputs_missed": inbox.get("missed", 0),
        "inputs_held": inbox.get("held", 0), "inputs_filled": inbox.get("filled", 0),
        "late_share": inbox.get("late", 0) / taken if taken else None,
        "missed_share": inbox.get("missed", 0) / taken if taken else None,
        "held_share": inbox.get("held", 0) / taken if taken else None,
        "timeline": series,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--bots", type=int, default=16)
    ap.add_argument("--only", help="run only the scenario of this name")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(NSHOST):
        raise SystemExit("build/nshost is missing: build first (README.md)")
    os.makedirs(OUT_DIR, exist_ok=True)
    results = []
    for sc in SCENARIOS:
        if args.only and sc["name"] != args.only:
            continue
        print(f"{sc['name']}: --netsim={sc['netsim']} redundancy={sc['redundancy']}, {args.bots} bots, "
              f"{args.seconds} s", flush=True)
        r = run_scenario(sc, args.seconds, args.bots)
        results.append(r)
        print("  err p50 {err_p50:.4f} p99 {err_p99:.4f} ({err_p99_ticks:.2f} ticks) max {err_max:.4f} "
              "({err_max_ticks:.2f} ticks); corrections/min {corrections_per_min:.1f}; snaps {snaps} "
              "({snaps_near_link_drop} by bots whose link dropped; {link_drops} drops; {snaps_after_late_tick} within 1 s "
              "after a late client tick; {late_ticks} late ticks, max {late_tick_max_ms:.0f} ms); "
              "delay {delay_settled_mean:.2f} frames, settled at {delay_settled_s} s (final per bot "
              "{delay_final_min:.1f}..{delay_final_max:.1f}); extrapolations/min {extrapolations_per_min:.2f}; underruns {underruns:.0f}; "
              "inputs late {late_share:.4f} missed {missed_share:.4f} held {held_share:.4f}; "
              "load {load_start:.2f} -> {load_end:.2f}".format(**r), flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": os.uname().nodename,
            "cpus": os.cpu_count(), "seconds": args.seconds, "bots": args.bots}
    with open(os.path.join(OUT_DIR, "netcode_bench.json"), "w") as f:
        json.dump({"meta": meta, "scenarios": results}, f, indent=1)
    with open(os.path.join(OUT_DIR, "netcode_bench.csv"), "w", newline="") as f:
        cols = [k for k in results[0] if k != "timeline"] if results else []
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in results:
            w.writerow(r)
    print("wrote build/netcode_bench.json and build/netcode_bench.csv")
    if not args.no_plot:
        # matplotlib is Debian's (python3-matplotlib): a python3 of its own
        # (pyenv, a venv) may lack it where /usr/bin/python3 has it.
        python = sys.executable
        if subprocess.run([python, "-c", "import matplotlib"], capture_output=True).returncode != 0:
            python = "/usr/bin/python3"
        subprocess.run([python, os.path.join(ROOT, "bench", "plot_netcode.py")], check=True)


if __name__ == "__main__":
    main()
