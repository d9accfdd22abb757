"""The Colyseus side of the rooms workloads (bench/rooms_bench.py): the
anchor's server.mjs started on its own, driven by bench/colyseus_join.mjs,
bench/colyseus_arena.mjs, or the anchor's own bots.mjs and run.sh."""
import json
import os
import re
import signal
import subprocess
import time

import run as base
from rooms_common import SEAT_TIMEOUT_S, _seat_figures, _stop, _wait_seats

ROOT = base.ROOT
TICK_HZ = base.TICK_HZ
BOT_NICE = base.BOT_NICE
BOTS_MJS_TIMEOUT_S = 1200
COLYSEUS_PORT = 2567
ROOM_SIZE = 8


def _start_colyseus_server(anchor, tick_hz=TICK_HZ):
    env = dict(os.environ, PORT=str(COLYSEUS_PORT), TICK_HZ=str(tick_hz), ROOM_SIZE=str(ROOM_SIZE))
    srv = subprocess.Popen(["node", "server.mjs"], cwd=anchor, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    log = base.Reader(srv.stdout)
    if not log.wait_for(r"^ready", 30):
        _stop([srv])
        raise RuntimeError("colyseus server did not start")
    srv.log = log
    return srv


def run_colyseus_join(anchor, n, procs, concurrency):
    """bench/colyseus_join.mjs against the anchor's server.mjs: one latency per join."""
    srv = _start_colyseus_server(anchor)
    bots, outs = [], []
    try:
        for k in range(procs):
            share = n // procs + (1 if k < n % procs else 0)
            env = dict(os.environ, N=str(share), CONCURRENCY=str(concurrency), ANCHOR=anchor,
                       ENDPOINT=f"ws://127.0.0.1:{COLYSEUS_PORT}")
            bots.append(subprocess.Popen(["nice", "-n", str(BOT_NICE), "node",
                                          os.path.join(ROOT, "bench", "colyseus_join.mjs")],
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
            outs.append(base.Reader(bots[-1].stdout))
        rows = _wait_seats(outs, n, SEAT_TIMEOUT_S)
        out = _seat_figures(rows, n)
        out["cpu_s"] = base.cpu_seconds(srv.pid)
        out["bot_procs"] = procs
        return out
    finally:
        _stop(bots)
        _stop([srv])


JOINED = re.compile(r"joined (\d+) in ([\d.]+) s")


def run_colyseus_anchor_join(anchor, n, procs):
    """The anchor's own bots.mjs, unmodified: each process joins its share one
    after another (and each seated bot sends inputs at 30 Hz meanwhile) and
    prints `joined K in X s` on stderr; seat-all = the slowest process."""
    srv = _start_colyseus_server(anchor)
    bots, errs = [], []
    try:
        for k in range(procs):
            share = n // procs + (1 if k < n % procs else 0)
            env = dict(os.environ, N=str(share), SECONDS="1", WARMUP="0", SEND_HZ=str(TICK_HZ),
                       ENDPOINT=f"ws://127.0.0.1:{COLYSEUS_PORT}")
            bots.append(subprocess.Popen(["nice", "-n", str(BOT_NICE), "node", "bots.mjs"], cwd=anchor, env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            errs.append(base.Reader(bots[-1].stderr))
        deadline = time.monotonic() + BOTS_MJS_TIMEOUT_S
        for b in bots:
            try:
                b.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        got = [m for e in errs for _, l in list(e.lines) for m in [JOINED.search(l)] if m]
        seated = sum(int(m.group(1)) for m in got)
        return {"clients": n, "seated": seated, "bot_procs": procs,
                "seat_all_s": max(float(m.group(2)) for m in got) if seated == n else None}
    finally:
        _stop(bots)
        _stop([srv])


def run_colyseus_arena(anchor, n, window_s, bots_per_proc):
    """The anchor's run.sh N SECONDS as shipped, PROCS = ceil(N / bots_per_proc).
    run.sh opens its window once every process joined its bots, or after
    120 s regardless: more processes keep the sequential joins under that."""
    procs = max(1, -(-n // bots_per_proc))
    env = dict(os.environ, PROCS=str(procs), PORT=str(COLYSEUS_PORT), TICK_HZ=str(TICK_HZ),
               ROOM_SIZE=str(ROOM_SIZE))
    p = subprocess.Popen(["bash", os.path.join(anchor, "run.sh"), str(n), str(int(window_s))], cwd=anchor, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reader = base.Reader(p.stdout)
    rss = None
    while p.poll() is None:
        for c in base.children(p.pid):
            try:
                with open(f"/proc/{c}/cmdline", "rb") as f:
                    if b"server.mjs" in f.read():
                        rss = max(rss or 0, base.peak_rss_mib(c) or 0) or None
            except OSError:
                pass
        time.sleep(0.5)
    reader.thread.join(5)
    rows = [json.loads(l) for _, l in reader.lines if l.startswith("{")]
    if not rows:
        raise RuntimeError("colyseus rooms run.sh printed no result")
    r = rows[-1]
    return {"clients": n, "joined": r["clients"], "window_s": r["window_s"], "server_cpu_s": r["server_cpu_s"],
            "cpu_per_s": r["server_cpu_s"] / r["window_s"], "us_per_client_tick": r["cpu_us_per_client_tick"],
            "bytes_per_client_s": r["bytes_per_client_s"], "snaps_per_s": r["patches_per_s"],
            "expected_per_s": n * TICK_HZ, "rss_mib": rss, "bot_procs": procs}


def _tcp_sent(port):
    """The server's established TCP connections on `port`, summed from the
    kernel's counters (ss -ti): payload bytes sent (WebSocket frames with
    their headers, retransmissions included) and segments sent, plus the
    bytes of each segment's IPv4 and TCP headers (TCP timestamps add 12).
    None if ss is missing."""
    try:
        out = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    total = 0
    for conn in re.split(r"\n(?=\S)", out):
        b = re.search(r"bytes_sent:(\d+)", conn)
        g = re.search(r"segs_out:(\d+)", conn)
        if not b or not g:
            continue
        header = 20 + 20 + (12 if re.search(r"\bts\b", conn) else 0)
        total += int(b.group(1)) + int(g.group(1)) * header
    return total


def _rate(lines, rx, w0, w1):
    """A cumulative counter printed now and then (`rx` captures it): its
    increase per second between the last line at or before w0 and the first
    at or after w1 (arrival times)."""
    pts = [(t, float(m.group(1))) for t, l in list(lines) for m in [rx.search(l)] if m]
    before = [p for p in pts if p[0] <= w0]
    after = [p for p in pts if p[0] >= w1]
    if not before or not after:
        return None
    (t0, v0), (t1, v1) = before[-1], after[0]
    return (v1 - v0) / (t1 - t0) if t1 > t0 else None


BYTES_OUT = re.compile(r"bytes_out=(\d+)")
PATCHES = re.compile(r"^count t=[\d.]+ patches=(\d+)")
SEEN = re.compile(r"min_seen=(\d+) max_seen=(\d+)")


def run_colyseus_arena_bots(anchor, n, window_s, warmup_s, procs, concurrency):
    """The anchor's server.mjs driven by bench/colyseus_arena.mjs (bots.mjs's
    behaviour once seated, joins `concurrency` at a time per process); the
    window opens `warmup_s` after every bot is seated."""
    srv = _start_colyseus_server(anchor)
    bots, outs, errs = [], [], []
    try:
        for k in range(procs):
            share = n // procs + (1 if k < n % procs else 0)
            env = dict(os.environ, N=str(share), CONCURRENCY=str(concurrency), ANCHOR=anchor,
                       SEND_HZ=str(TICK_HZ), ENDPOINT=f"ws://127.0.0.1:{COLYSEUS_PORT}")
            bots.append(subprocess.Popen(["nice", "-n", str(BOT_NICE), "node",
                                          os.path.join(ROOT, "bench", "colyseus_arena.mjs")],
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            outs.append(base.Reader(bots[-1].stdout))
            errs.append(base.Reader(bots[-1].stderr))
        deadline = time.monotonic() + SEAT_TIMEOUT_S
        while time.monotonic() < deadline:
            if sum(1 for e in errs for _, l in list(e.lines) if JOINED.search(l)) >= procs:
                break
            time.sleep(0.1)
        got = [m for e in errs for _, l in list(e.lines) for m in [JOINED.search(l)] if m]
        joined = sum(int(m.group(1)) for m in got)
        time.sleep(warmup_s)
        wire0 = _tcp_sent(COLYSEUS_PORT)
        c0, w0 = base.cpu_seconds(srv.pid), time.monotonic()
        time.sleep(window_s)
        c1, w1 = base.cpu_seconds(srv.pid), time.monotonic()
        wire1 = _tcp_sent(COLYSEUS_PORT)
        time.sleep(1.3)  # one more counter line from every process after the window
        rss = base.peak_rss_mib(srv.pid)
        bps = _rate(srv.log.lines, BYTES_OUT, w0, w1)
        rates = [_rate(o.lines, PATCHES, w0, w1) for o in outs]
        seen = [(int(m.group(1)), int(m.group(2))) for o in outs for _, l in list(o.lines)[-1:]
                for m in [SEEN.search(l)] if m]
        cpu = (c1 - c0) / (w1 - w0)
        seated = max(1, joined)
        return {"clients": n, "joined": joined, "window_s": w1 - w0, "server_cpu_s": c1 - c0, "cpu_per_s": cpu,
                "us_per_client_tick": cpu / seated / TICK_HZ * 1e6,
                "bytes_per_client_s": bps / seated if bps is not None else None,
                "wire_bytes_per_client_s": (wire1 - wire0) / (w1 - w0) / seated
                if wire0 is not None and wire1 is not None else None,
                "snaps_per_s": sum(rates) if all(r is not None for r in rates) else None,
                "expected_per_s": n * TICK_HZ, "rss_mib": rss, "bot_procs": procs,
                "seat_all_s": max(float(m.group(2)) for m in got) if joined == n else None,
                "players_seen_min": min((a for a, _ in seen), default=None)}
    finally:
        _stop(bots)
        _stop([srv])
