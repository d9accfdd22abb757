"""The rooms workloads of bench/run.py (docs/benchmarks.md, Rooms), each off
unless its flag is given:

  --rooms-join=2000   N bots each join_or_create("arena") (rooms of 8) once:
                      nshost (bench/rooms_join.lua) against the Colyseus rooms
                      anchor's server.mjs joined by bench/colyseus_join.mjs
                      (joins only, one latency per join,
                      --colyseus-join-concurrency in flight per process); with
                      --colyseus-bots-mjs also by the anchor's own bots.mjs as
                      shipped ("joined N in X s": joins one after another per
                      process while every seated bot sends inputs at 30 Hz;
                      slow: minutes at N = 2000)
  --arena=256,1024    the anchor's arena workload: nshost bench/arena.lua
                      against the anchor's server.mjs driven by
                      bench/colyseus_arena.mjs (bots.mjs's behaviour, joins
                      in parallel); with --colyseus-run-sh also the anchor's
                      run.sh N SECONDS as shipped; --arena-sync=state runs
                      nshost's side on state sync (bench/rooms/arena_state.lua:
                      room.state with the anchor's schema, patches every tick)
  --arena-view=256:32 one room of 256 on state sync, with no view and with
                      each client shown only its 32 nearest players
                      (nshost.interest): CPU and bytes per client
  --idle-rooms=1000   N rooms of one bot each (bench/idle_rooms.lua), with and
                      without room.tick, and the same N bots with no room as
                      the baseline

Each figure is the median over --repeat runs; each ratio is taken inside one
repetition (the two servers back to back) before the median.
"""
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

import run as base
from rooms_colyseus import (ROOM_SIZE, run_colyseus_anchor_join, run_colyseus_arena, run_colyseus_arena_bots,
                            run_colyseus_join)
from rooms_common import SEAT_TIMEOUT_S, _seat_figures, _stop, _wait_seats

ROOT = base.ROOT
TICK_HZ = base.TICK_HZ
BOT_NICE = base.BOT_NICE


def add_args(ap):
    ap.add_argument("--rooms-join", default="", help="N bots join_or_create rooms of 8 (e.g. 2000); off when empty")
    ap.add_argument("--arena", default="", help="arena workload at these N (e.g. 256,1024); off when empty")
    ap.add_argument("--idle-rooms", default="", help="N idle rooms of one bot each (e.g. 1000); off when empty")
    ap.add_argument("--rooms-anchor",
                    default=os.path.join(os.path.dirname(ROOT), "shared", "anchors", "colyseus-rooms"))
    ap.add_argument("--rooms-bots-ramp", default="0,200,400,1000",
                    help="--rooms-join: one nshost run per value, the bots' joins per second over all bot "
                         "processes (0: nshost's default, two joining at a time per process)")
    ap.add_argument("--idle-bots-ramp", type=int, default=1000, help="--idle-rooms: the bots' joins per second")
    ap.add_argument("--colyseus-join-procs", type=int, default=4,
                    help="Node processes the Colyseus joiners are split over (--rooms-join)")
    ap.add_argument("--colyseus-join-concurrency", default="1,16",
                    help="one Colyseus run per value: joins in flight per process in bench/colyseus_join.mjs "
                         "(1: one after another, as the anchor's bots.mjs)")
    ap.add_argument("--colyseus-bots-mjs", action="store_true",
                    help="--rooms-join: also time the anchor's own bots.mjs (minutes at N = 2000)")
    ap.add_argument("--colyseus-arena-bots-per-proc", type=int, default=128,
                    help="--arena: Colyseus bots per Node process (run.sh's PROCS = ceil(N / this))")
    ap.add_argument("--colyseus-arena-join-concurrency", dest="colyseus_join_concurrency_arena", type=int,
                    default=16, help="--arena: joins in flight per Node process in bench/colyseus_arena.mjs")
    ap.add_argument("--colyseus-run-sh", action="store_true",
                    help="--arena: also run the anchor's run.sh N SECONDS as shipped")
    ap.add_argument("--arena-sync", default="messages", choices=("messages", "state", "both"),
                    help="--arena on nshost: the room broadcasts its state as messages, or state sync sends patches")
    ap.add_argument("--arena-view", default="", help="ROOM_SIZE:K, e.g. 256:32: one room of ROOM_SIZE on state sync, "
                    "with no view and with a K-nearest view; off when empty")
    ap.add_argument("--arena-channel", default="unreliable", choices=("unreliable", "reliable"),
                    help="channel of the arena's inputs and state messages on nshost")


def wanted(a):
    return bool(a.rooms_join or a.arena or a.idle_rooms or a.arena_view)


def _ns(s):
    return [int(x) for x in s.split(",") if x]


RAMP_FLAGS = ("--max-pending-handshakes=1024", "--max-pending-per-address=1024")


def _start_nshost_server(build, script, n, extra_env=None, flags=()):
    env = dict(os.environ, **(extra_env or {}))
    srv = subprocess.Popen([os.path.join(build, "nshost"), "--role=server", "--port=0", f"--max-clients={n}",
                            "--max-pending-per-address=32", *flags, os.path.join(ROOT, "bench", script)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = base.Reader(srv.stderr)
    m = log.wait_for(r"listening on [\d.]+:(\d+)", 10)
    if not m:
        _stop([srv])
        raise RuntimeError("server did not start: " + "\n".join(l for _, l in log.lines[-5:]))
    return srv, log, int(m.group(1))


def _start_nshost_bots(build, script, n, port, procs, ramp, extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    bots, outs = [], []
    for k in range(procs):
        share = n // procs + (1 if k < n % procs else 0)
        cmd = ["nice", "-n", str(BOT_NICE), os.path.join(build, "nshost"), "--role=client", "--headless",
               f"--bots={share}", f"--connect=nshost://127.0.0.1:{port}", os.path.join(ROOT, "bench", script)]
        if ramp:
            cmd.insert(-2, f"--bots-ramp={max(1, ramp // procs)}")
        bots.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        outs.append(base.Reader(bots[-1].stdout))
    return bots, outs


ROOM_LOG = re.compile(r"seat room=(\d+) clients=(\d+)")


def run_nshost_join(build, n, bot_procs, ramp):
    srv, log, port = _start_nshost_server(build, "rooms_join.lua", n, flags=RAMP_FLAGS if ramp else ())
    bots = []
    try:
        bots, outs = _start_nshost_bots(build, "rooms_join.lua", n, port, bot_procs, ramp)
        rows = _wait_seats(outs, n, SEAT_TIMEOUT_S)
        time.sleep(0.5)
        out = _seat_figures(rows, n)
        # The room's own count of its seats, at every join: the server's view.
        sizes = [int(m.group(2)) for _, l in list(log.lines) for m in [ROOM_LOG.search(l)] if m]
        out["max_room_server"] = max(sizes) if sizes else None
        out["bot_procs"] = bot_procs
        out["ramp"] = ramp
        out["cpu_s"] = base.cpu_seconds(srv.pid)
        return out
    finally:
        _stop(bots)
        _stop([srv])


STATE_LINE = re.compile(r"bench state applied=(?P<applied>\d+) seq_span=(?P<seq_span>\d+) "
                        r"resyncs=(?P<resyncs>\d+) mismatches=(?P<mismatches>\d+) gaps=(?P<gaps>\d+) "
                        r"decode_errors=(?P<decode_errors>\d+) frame_bytes=(?P<frame_bytes>\d+)")


def run_nshost_arena(build, n, window_s, warmup_s, bot_procs, channel, sync="messages", room_size=ROOM_SIZE,
                     view=0):
    env = {"ARENA_CHANNEL": channel, "ARENA_SYNC": sync, "ARENA_ROOM_SIZE": str(room_size),
           "ARENA_VIEW": str(view)}
    backup = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        r = base.run_enet([os.path.join(build, "nshost"), "--role=server", *RAMP_FLAGS,
                           os.path.join(ROOT, "bench", "arena.lua")], "arena.lua", n, window_s, warmup_s, build,
                          bot_procs, extra=STATE_LINE if sync == "state" else None)
    finally:
        for k, v in backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if sync == "state" and r.get("seq_span"):
        r["applied_pct"] = 100 * r["applied"] / r["seq_span"]
    if sync == "state" and r.get("frame_bytes") is not None:
        # The state frames alone, as the bots received them: what Colyseus's
        # count (its WebSocket messages' payload) covers on its side.
        r["frame_bytes_per_client_s"] = r["frame_bytes"] / window_s / max(1, r["joined"])
    # Per client actually seated when the window opened.
    seated = max(1, r["joined"])
    r["us_per_client_tick"] = r["cpu_per_s"] / seated / TICK_HZ * 1e6
    r["bytes_per_client_s"] = r["bytes_per_s"] / seated if r.get("bytes_per_s") else None
    if r.get("bytes_per_s") and r.get("datagrams_per_s"):
        # What crosses the wire: each datagram's IPv4 (20) and UDP (8) headers too.
        r["wire_bytes_per_client_s"] = (r["bytes_per_s"] + 28 * r["datagrams_per_s"]) / seated
    return r


def run_idle(build, n, window_s, bot_procs, ramp, with_rooms, room_tick=True):
    env = {"IDLE_NO_ROOM": "0" if with_rooms else "1", "IDLE_ROOM_TICK": "1" if room_tick else "0"}
    srv, log, port = _start_nshost_server(build, "idle_rooms.lua", n, env, RAMP_FLAGS if ramp else ())
    bots = []
    try:
        bots, outs = _start_nshost_bots(build, "idle_rooms.lua", n, port, bot_procs, ramp, env)
        rows = _wait_seats(outs, n, SEAT_TIMEOUT_S)
        out = _seat_figures(rows, n)
        time.sleep(2)  # settle: the last joins' allocations, the collectors
        c0, w0 = base.cpu_seconds(srv.pid), time.monotonic()
        time.sleep(window_s)
        c1, w1 = base.cpu_seconds(srv.pid), time.monotonic()
        out.update({"cpu_per_s": (c1 - c0) / (w1 - w0), "rss_mib": base.status_mib(srv.pid, "VmRSS"),
                    "peak_rss_mib": base.peak_rss_mib(srv.pid), "with_rooms": with_rooms})
        return out
    finally:
        _stop(bots)
        _stop([srv])


def run_all(a, build, bot_procs, runs):
    """Runs the selected rooms workloads `a.repeat` times, appending
    (rep, workload, server, n, figures) to `runs`."""
    join_ns, arena_ns, idle_ns = _ns(a.rooms_join), _ns(a.arena), _ns(a.idle_rooms)
    anchor = None
    if (join_ns or arena_ns) and not a.no_colyseus:
        anchor = base.prepare_anchor(a.rooms_anchor, build, "bench-colyseus-rooms")

    def step(rep, w, s, n, fn):
        print(f"# rep {rep + 1}/{a.repeat}: {w} N={n} {s}", file=sys.stderr, flush=True)
        try:
            r = fn()
        except Exception as e:  # one failed cell must not lose the others
            print(f"#   failed: {e}", file=sys.stderr, flush=True)
            r = {"error": str(e)}
        add_derived(r)
        runs.append((rep, w, s, n, r))

    for rep in range(a.repeat):
        for n in join_ns:
            for ramp in _ns(a.rooms_bots_ramp):
                step(rep, "rooms-join", _nshost_join_label(ramp), n,
                     lambda: run_nshost_join(build, n, bot_procs(n), ramp))
            for conc in _ns(a.colyseus_join_concurrency) if anchor else []:
                step(rep, "rooms-join", _colyseus_join_label(conc), n, lambda: run_colyseus_join(
                    anchor, n, a.colyseus_join_procs, conc))
                if a.colyseus_bots_mjs:
                    step(rep, "rooms-join", "colyseus bots.mjs", n, lambda: run_colyseus_anchor_join(
                        anchor, n, a.colyseus_join_procs))
        for n in arena_ns:
            for sync in _syncs(a):
                step(rep, "arena", _arena_label(sync), n, lambda: run_nshost_arena(
                    build, n, a.window, a.warmup, bot_procs(n), a.arena_channel, sync))
            if anchor:
                step(rep, "arena", "colyseus", n, lambda: run_colyseus_arena_bots(
                    anchor, n, a.window, a.warmup, max(1, -(-n // a.colyseus_arena_bots_per_proc)),
                    a.colyseus_join_concurrency_arena))
                if a.colyseus_run_sh:
                    step(rep, "arena", "colyseus run.sh", n, lambda: run_colyseus_arena(
                        anchor, n, a.window, a.colyseus_arena_bots_per_proc))
        if a.arena_view:
            size, k = (int(x) for x in a.arena_view.split(":"))
            for view in (0, k):
                step(rep, "arena-view", _view_label(view), size, lambda: run_nshost_arena(
                    build, size, a.window, a.warmup, bot_procs(size), a.arena_channel, "state", size, view))
        for n in idle_ns:
            step(rep, "idle-rooms", "nshost no rooms", n,
                 lambda: run_idle(build, n, a.window, bot_procs(n), a.idle_bots_ramp, False))
            step(rep, "idle-rooms", "nshost", n,
                 lambda: run_idle(build, n, a.window, bot_procs(n), a.idle_bots_ramp, True))
            step(rep, "idle-rooms", "nshost no room.tick", n,
                 lambda: run_idle(build, n, a.window, bot_procs(n), a.idle_bots_ramp, True, False))


def _syncs(a):
    return ("messages", "state") if a.arena_sync == "both" else (a.arena_sync,)


def _arena_label(sync):
    return "nshost" if sync == "messages" else "nshost state sync"


def _view_label(view):
    return f"view {view} nearest" if view else "no view"


def add_derived(r):
    """Server CPU per state message the bots received (the arena): fair when
    one side's bots could not keep up and its server then sent less."""
    if r.get("snaps_per_s") and r.get("cpu_per_s") is not None:
        r["us_per_msg"] = r["cpu_per_s"] / r["snaps_per_s"] * 1e6


def _nshost_join_label(ramp):
    return f"nshost, ramp {ramp}/s" if ramp else "nshost, join window"


def _colyseus_join_label(concurrency):
    return f"colyseus, {concurrency} in flight/proc"


def _per_rep_ratio(runs, repeat, w, n, num, den, key):
    vals, each = [], []
    for rep in range(repeat):
        x = [r for rr, ww, s, nn, r in runs if (rr, ww, s, nn) == (rep, w, num, n)]
        y = [r for rr, ww, s, nn, r in runs if (rr, ww, s, nn) == (rep, w, den, n)]
        if x and y and x[0].get(key) and y[0].get(key):
            vals.append(x[0][key] / y[0][key])
    return (statistics.median(vals) if vals else None), vals


def _ratio_text(med, vals):
    if med is None:
        return "—"
    return f"{med:.2f} ({', '.join(f'{v:.2f}' for v in vals)})" if len(vals) > 1 else f"{med:.2f}"


def print_tables(a, runs):
    join_ns, arena_ns, idle_ns = _ns(a.rooms_join), _ns(a.arena), _ns(a.idle_rooms)
    fmt, med = base.fmt, base.median_of

    def cell(w, s, n):
        return [r for _, ww, ss, nn, r in runs if (ww, ss, nn) == (w, s, n) and "error" not in r]

    for _, w, s, n, r in runs:
        if "error" in r:
            print(f"\nnote: {w} N={n} {s} failed: {r['error']}")
    if join_ns:
        print(f"\nRooms, join: each bot join_or_create(\"arena\") once, rooms of {ROOM_SIZE}; "
              f"median of {a.repeat} run(s)\n")
        labels = ([_nshost_join_label(r) for r in _ns(a.rooms_bots_ramp)]
                  + [_colyseus_join_label(c) for c in _ns(a.colyseus_join_concurrency)] + ["colyseus bots.mjs"])
        print("| N | server | bot processes | seated | failed | rooms | largest room (bots / server log) "
              "| seat all s | join ms p50/p99/max |")
        print("|---|---|---|---|---|---|---|---|---|")
        for n in join_ns:
            for s in labels:
                c = cell("rooms-join", s, n)
                if not c:
                    continue
                m = lambda k: med(c, k)
                largest = max((r["max_room"] for r in c if r.get("max_room")), default=None)
                largest_srv = max((r["max_room_server"] for r in c if r.get("max_room_server")), default=None)
                print(f"| {n} | {s} | {c[0].get('bot_procs')} | {fmt(m('seated'), '.0f')} | {fmt(m('failed'), '.0f')} "
                      f"| {fmt(m('rooms'), '.0f')} | {fmt(largest, 'd') if largest else '—'} / "
                      f"{fmt(largest_srv, 'd') if largest_srv else '—'} "
                      f"| {fmt(m('seat_all_s'))} "
                      f"| {fmt(m('join_ms_p50'))}/{fmt(m('join_ms_p99'))}/{fmt(m('join_ms_max'))} |")
        cols = [_colyseus_join_label(c) for c in _ns(a.colyseus_join_concurrency)]
        if a.colyseus_bots_mjs:
            cols.append("colyseus bots.mjs")
        print("\nTime to seat all, Colyseus over nshost, per run then the median (goal: ≥ 2):\n")
        print("| N | nshost | " + " | ".join(f"{c} / nshost" for c in cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for n in join_ns:
            for r in _ns(a.rooms_bots_ramp):
                ratios = [_ratio_text(*_per_rep_ratio(runs, a.repeat, "rooms-join", n, c, _nshost_join_label(r),
                                                      "seat_all_s")) for c in cols]
                print(f"| {n} | {_nshost_join_label(r)} | " + " | ".join(ratios) + " |")
    if arena_ns:
        print(f"\nRooms, arena: rooms of {ROOM_SIZE}, inputs and state at {TICK_HZ} Hz; nshost channel "
              f"{a.arena_channel}; window {a.window:g} s; median of {a.repeat} run(s)\n")
        print("| N | server | seated | CPU s/s | CPU µs/client-tick | CPU µs/delivered msg | bytes/client-s "
              "| state msgs/s (of expected) | lost | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for n in arena_ns:
            for s in [_arena_label(x) for x in _syncs(a)] + ["colyseus", "colyseus run.sh"]:
                c = cell("arena", s, n)
                if not c:
                    continue
                m = lambda k: med(c, k)
                sps = m("snaps_per_s")
                print(f"| {n} | {s} | {fmt(m('joined'), '.0f')} | {fmt(m('cpu_per_s'), '.3f')} "
                      f"| {fmt(m('us_per_client_tick'))} | {fmt(m('us_per_msg'))} "
                      f"| {fmt(m('bytes_per_client_s'), '.0f')} "
                      f"| {fmt(sps, '.0f')} of {n * TICK_HZ} ({fmt(100 * sps / (n * TICK_HZ) if sps else None, '.1f')}%) "
                      f"| {fmt(m('lost'), '.0f')} | {fmt(m('rss_mib'), '.1f')} |")
        print("\nServer CPU per client-tick, nshost over Colyseus, per run then the median (goal: ≤ 0.5):\n")
        print("| N | nshost / colyseus | the same per delivered state message | bytes per client-second, "
              "nshost / colyseus |")
        print("|---|---|---|---|")
        for n in arena_ns:
            for label in [_arena_label(x) for x in _syncs(a)]:
                r1 = _per_rep_ratio(runs, a.repeat, "arena", n, label, "colyseus", "us_per_client_tick")
                r2 = _per_rep_ratio(runs, a.repeat, "arena", n, label, "colyseus", "us_per_msg")
                r3 = _per_rep_ratio(runs, a.repeat, "arena", n, label, "colyseus", "bytes_per_client_s")
                print(f"| {n} ({label}) | {_ratio_text(*r1)} | {_ratio_text(*r2)} | {_ratio_text(*r3)} |")
        for n in arena_ns:
            label = _arena_label("state")
            if label not in [_arena_label(x) for x in _syncs(a)]:
                continue
            vals = []
            for rep in range(a.repeat):
                x = [r for rr, ww, s, nn, r in runs if (rr, ww, s, nn) == (rep, "arena", label, n)]
                y = [r for rr, ww, s, nn, r in runs if (rr, ww, s, nn) == (rep, "arena", "colyseus", n)]
                if x and y and x[0].get("frame_bytes_per_client_s") and y[0].get("bytes_per_client_s"):
                    vals.append((x[0]["frame_bytes_per_client_s"], x[0]["frame_bytes_per_client_s"] / y[0]["bytes_per_client_s"]))
            wire = []
            for rep in range(a.repeat):
                x = [r for rr, ww, s, nn, r in runs if (rr, ww, s, nn) == (rep, "arena", label, n)]
                y = [r for rr, ww, s, nn, r in runs if (rr, ww, s, nn) == (rep, "arena", "colyseus", n)]
                if x and y and x[0].get("wire_bytes_per_client_s") and y[0].get("wire_bytes_per_client_s"):
                    wire.append((x[0]["wire_bytes_per_client_s"], y[0]["wire_bytes_per_client_s"],
                                 x[0]["wire_bytes_per_client_s"] / y[0]["wire_bytes_per_client_s"]))
            if wire:
                print(f"\nN={n}: on the wire (IPv4 + UDP + ENet headers against IPv4 + TCP + WebSocket headers, "
                      f"from the servers' datagram and TCP segment counts): "
                      f"{statistics.median(w[0] for w in wire):.0f} against {statistics.median(w[1] for w in wire):.0f} "
                      f"bytes per client-second, {_ratio_text(statistics.median(w[2] for w in wire), [w[2] for w in wire])}"
                      f" of Colyseus")
            if vals:
                print(f"\nN={n}: state frames alone (without ENet's headers; Colyseus's count is its messages' payload, "
                      f"without WebSocket or TCP framing): {statistics.median(v for v, _ in vals):.0f} bytes per "
                      f"client-second, {_ratio_text(statistics.median(r for _, r in vals), [r for _, r in vals])} "
                      f"of Colyseus")
        state_cells = [(n, cell("arena", _arena_label("state"), n)) for n in arena_ns]
        if any(c for _, c in state_cells):
            print("\nState sync on the arena: patches the bots applied of those sent to them in the window "
                  "(seq span), resyncs and checksum mismatches, summed over the bots; median of the runs\n")
            print("| N | applied / sent | resyncs | checksum mismatches | gaps | decode errors |")
            print("|---|---|---|---|---|---|")
            for n, c in state_cells:
                if c:
                    m = lambda k: med(c, k)
                    print(f"| {n} | {fmt(m('applied_pct'), '.2f')}% ({fmt(m('applied'), '.0f')} of "
                          f"{fmt(m('seq_span'), '.0f')}) | {fmt(m('resyncs'), '.0f')} | {fmt(m('mismatches'), '.0f')} "
                          f"| {fmt(m('gaps'), '.0f')} | {fmt(m('decode_errors'), '.0f')} |")
    if a.arena_view:
        size, k = (int(x) for x in a.arena_view.split(":"))
        print(f"\nOne room of {size} on state sync, no view against each client shown its {k} nearest players "
              f"(nshost.interest grid refreshed every tick); window {a.window:g} s; median of {a.repeat} run(s)\n")
        print("| view | seated | CPU s/s | CPU µs/client-tick | bytes/client-s | players per patch | applied / sent "
              "| resyncs | tick ms p50/p99 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for view in (0, k):
            c = cell("arena-view", _view_label(view), size)
            if not c:
                continue
            m = lambda key: med(c, key)
            print(f"| {_view_label(view)} | {fmt(m('joined'), '.0f')} | {fmt(m('cpu_per_s'), '.3f')} "
                  f"| {fmt(m('us_per_client_tick'))} | {fmt(m('bytes_per_client_s'), '.0f')} "
                  f"| {fmt(m('entries_per_snap'), '.1f')} | {fmt(m('applied_pct'), '.2f')}% | {fmt(m('resyncs'), '.0f')} "
                  f"| {fmt(m('tick_ms_p50'))}/{fmt(m('tick_ms_p99'))} |")
        r1 = _per_rep_ratio(runs, a.repeat, "arena-view", size, _view_label(k), _view_label(0), "us_per_client_tick")
        r2 = _per_rep_ratio(runs, a.repeat, "arena-view", size, _view_label(k), _view_label(0), "bytes_per_client_s")
        print(f"\nview / no view, per run then the median: CPU per client-tick {_ratio_text(*r1)}, "
              f"bytes per client-second {_ratio_text(*r2)}")
    if idle_ns:
        print(f"\nRooms, idle: N bots each in its own room (rooms.create), against the same N bots with no "
              f"room; window {a.window:g} s; median of {a.repeat} run(s)\n")
        print("| N | rooms | seated | RSS MiB (peak) | CPU s/s | per room: RSS KiB, CPU µs/s |")
        print("|---|---|---|---|---|---|")
        for n in idle_ns:
            base_c = cell("idle-rooms", "nshost no rooms", n)
            for label, c in (("none", base_c), (f"{n}, room.tick", cell("idle-rooms", "nshost", n)),
                             (f"{n}, no room.tick", cell("idle-rooms", "nshost no room.tick", n))):
                if not c:
                    continue
                m = lambda k: med(c, k)
                per = "—"
                if label != "none" and base_c:
                    d_rss = (m("rss_mib") - med(base_c, "rss_mib")) * 1024 / n
                    d_cpu = (m("cpu_per_s") - med(base_c, "cpu_per_s")) * 1e6 / n
                    per = f"{d_rss:.0f}, {d_cpu:.1f}"
                print(f"| {n} | {label} | {fmt(m('seated'), '.0f') if label != 'none' else '—'} "
                      f"| {fmt(m('rss_mib'), '.1f')} ({fmt(m('peak_rss_mib'), '.1f')}) "
                      f"| {fmt(m('cpu_per_s'), '.3f')} | {per} |")
