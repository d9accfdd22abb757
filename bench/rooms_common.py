"""What the rooms workloads' nshost and Colyseus sides share
(bench/rooms_bench.py, bench/rooms_colyseus.py): stopping processes, and the
"seat" lines the joining bots print."""
import re
import statistics
import time

import run as base

# Seating must finish within this; past it the run reports what it has.
SEAT_TIMEOUT_S = 240


_stop = base.stop_processes


# With a ramp, the bots' connects arrive faster than the flood guard's
# default cap on half-open handshakes (32, and all bots share 127.0.0.1); a
# refused bot does not retry, so the caps are raised for those runs.


SEAT = re.compile(r"(?:^|\] )seat (?:room=(\S+)|failed=(\S*)) ms=([\d.]+) t=([\d.]+)")


def _wait_seats(outs, n, timeout_s):
    """Waits until `n` seat lines arrived over `outs` (or the timeout, or a
    `done` from every Colyseus joiner); returns the parsed lines."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(1 for o in outs for _, l in list(o.lines) if l.startswith("seat ")) >= n:
            break
        time.sleep(0.1)
    rows = []
    for o in outs:
        for _, l in list(o.lines):
            m = SEAT.search(l)
            if m:
                rows.append({"room": m.group(1), "failed": m.group(2), "ms": float(m.group(3)),
                             "t": float(m.group(4))})
    return rows


def _seat_figures(rows, n):
    seated = [r for r in rows if r["room"]]
    sizes = {}
    for r in seated:
        sizes[r["room"]] = sizes.get(r["room"], 0) + 1
    lat = [r["ms"] for r in seated]
    failed = {}
    for r in rows:
        if r["failed"] is not None:
            failed[r["failed"]] = failed.get(r["failed"], 0) + 1
    return {"clients": n, "seated": len(seated), "failed": sum(failed.values()), "fail_reasons": failed,
            "rooms": len(sizes), "max_room": max(sizes.values()) if sizes else None,
            "seat_all_s": max(r["t"] for r in seated) if len(seated) == n else None,
            "last_seat_s": max((r["t"] for r in seated), default=None),
            "join_ms_p50": base.pct(lat, 0.5), "join_ms_p99": base.pct(lat, 0.99),
            "join_ms_max": max(lat) if lat else None}
