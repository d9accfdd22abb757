#!/usr/bin/env python3
"""Hot reload (--watch, docs/operations.md "Hot reload"): how long from a file
save to the new handler answering, and what the reload does to the tick.

A server runs a copy of tests/scripts/reload/ with --watch --stats; --bots
clients ping it 10 times a second each (load), and one measuring client pings
on every tick at --probe-rate Hz. The script saves game.lua --reloads times,
alternating the "v1" and "v2" variants (a temporary file renamed over it, as
editors do), --gap-s apart. Per reload:

  save_to_live_ms   from just before the rename to the measuring client's
                    first reply tagged with the new version (its stdout line,
                    timestamped on arrival here); includes the ~100 ms
                    debounce and up to one probe period
  reload_ms         what the server's "reload: vN live (..., X ms)" line says
                    (the reload itself: the chunk, rooms, the bundle)
  tick_ms_max       the longest tick (dur_us of the --stats lines) from the
                    save to 0.5 s after the new version answered
  late_ms_max       the latest tick start in the same window

and, for comparison, the ticks outside those windows (p50, p99, max). Each
figure printed is the median over the reloads.

  python3 bench/reload.py --build build [--bots 64] [--reloads 9]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Reader, pct  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "tests", "scripts", "reload")
STATS = re.compile(r"stats t=([\d.]+) tick=\d+ dur_us=(-?\d+) late_us=(-?\d+)")
LIVE = re.compile(r"reload: v(\d+) live \(.*?, ([\d.]+) ms")


def save(variant, target):
    with open(os.path.join(SCRIPTS, variant), "rb") as f:
        text = f.read()
    temporary = target + ".tmp"
    with open(temporary, "wb") as f:
        f.write(text)
    os.rename(temporary, target)


def wait_line(reader, pattern, after, timeout_s):
    """The (time, match) of the first line matching `pattern` that arrived after `after`."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for t, line in list(reader.lines):
            if t > after:
                m = rx.search(line)
                if m:
                    return t, m
        time.sleep(0.002)
    return None, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--bots", type=int, default=64)
    ap.add_argument("--reloads", type=int, default=9)
    ap.add_argument("--gap-s", type=float, default=1.5)
    ap.add_argument("--probe-rate", type=int, default=200, help="the measuring client's tick rate (Hz)")
    args = ap.parse_args()
    binary = os.path.join(args.build, "nshost")
    tree = tempfile.mkdtemp(prefix="nshost-reload-bench-")
    procs = []
    try:
        for name in ("game.lua", "arena.lua", "lib/tag.lua"):
            os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
            shutil.copy(os.path.join(SCRIPTS, name), os.path.join(tree, name))
        game = os.path.join(tree, "game.lua")
        srv = subprocess.Popen([binary, "--role=server", "--port=0", "--watch", "--stats",
                                f"--max-clients={args.bots + 8}", game],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(srv)
        log = Reader(srv.stderr)
        m = log.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 10)
        if not m:
            sys.exit("server did not start:\n" + "\n".join(line for _, line in log.lines))
        url = f"nshost://127.0.0.1:{m.group(1)}"
        if args.bots:
            procs.append(subprocess.Popen([binary, "--role=client", "--headless", f"--bots={args.bots}",
                                           f"--connect={url}", os.path.join(SCRIPTS, "game.lua")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        probe = subprocess.Popen([binary, "--role=client", "--headless", f"--tick-rate={args.probe_rate}",
                                  f"--connect={url}", os.path.join(SCRIPTS, "game.lua")],
                                 env=dict(os.environ, PING_EVERY="1"),
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(probe)
        replies = Reader(probe.stdout)
        if not replies.wait_for(r"reply v1", 15):
            sys.exit("the measuring client got no reply")
        time.sleep(args.gap_s)  # the bots join meanwhile
        windows, rows = [], []
        for i in range(args.reloads):
            tag = "v2" if i % 2 == 0 else "v1"
            t0 = time.monotonic()
            save("game_v2.lua" if tag == "v2" else "game.lua", game)
            t1, _ = wait_line(replies, r"^reply " + tag + " ", t0, 10)
            _, live = wait_line(log, LIVE.pattern, t0, 10)
            if t1 is None or live is None:
                sys.exit(f"reload {i + 1}: no {tag} reply or no live line within 10 s")
            windows.append((t0, t1 + 0.5))
            rows.append({"save_to_live_ms": (t1 - t0) * 1000, "reload_ms": float(live.group(2))})
            time.sleep(max(0.0, t0 + args.gap_s - time.monotonic()))
        time.sleep(0.5)
        ticks = []
        for _, line in list(log.lines):
            m = STATS.search(line)
            if m:
                ticks.append((float(m.group(1)), int(m.group(2)) / 1000, max(0, int(m.group(3))) / 1000))
        outside = [t for t in ticks if not any(a <= t[0] <= b for a, b in windows) and t[0] >= windows[0][0] - args.gap_s]
        for row, (a, b) in zip(rows, windows):
            inside = [t for t in ticks if a <= t[0] <= b]
            row["tick_ms_max"] = max((t[1] for t in inside), default=0.0)
            row["late_ms_max"] = max((t[2] for t in inside), default=0.0)
        print(f"nshost hot reload: {args.reloads} reloads, {args.bots} bots pinging at 10 Hz, "
              f"probe at {args.probe_rate} Hz, server tick 30 Hz")
        for key in ("save_to_live_ms", "reload_ms", "tick_ms_max", "late_ms_max"):
            values = [r[key] for r in rows]
            print(f"  {key:16} median {statistics.median(values):7.2f}   "
                  f"min {min(values):7.2f}   max {max(values):7.2f}")
        dur = [t[1] for t in outside]
        late = [t[2] for t in outside]
        print(f"  ticks outside the reloads ({len(outside)}): dur_ms p50 {pct(dur, 0.5):.2f} p99 {pct(dur, 0.99):.2f} "
              f"max {max(dur):.2f}; late_ms p99 {pct(late, 0.99):.2f} max {max(late):.2f}")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    main()
