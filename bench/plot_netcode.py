#!/usr/bin/env python3
"""Draws build/netcode_bench.json (bench/netcode.py) into docs/:

  docs/netcode_error.png   prediction error over time (p99 and max per second,
                           in ticks of movement), one panel per scenario
  docs/netcode_delay.png   render delay over time (mean, min and max over the
                           bots per second, in frames), one panel per scenario

Needs Debian's python3-matplotlib (apt-get install python3-matplotlib).
"""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def panels(scenarios):
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(9, 2.4 * len(scenarios)), sharex=True, squeeze=False)
    return fig, [a[0] for a in axes]


def main():
    with open(os.path.join(ROOT, "build", "netcode_bench.json")) as f:
        data = json.load(f)
    scenarios = data["scenarios"]
    meta = data["meta"]
    caption = f"{meta['bots']} bots, {meta['seconds']} s each, {meta['date']} ({meta['cpus']} shared cores)"

    fig, axes = panels(scenarios)
    for ax, sc in zip(axes, scenarios):
        tm = sc["tick_move"]
        rows = [r for r in sc["timeline"] if r["err_p99"] is not None]
        t = [r["t"] for r in rows]
        ax.plot(t, [r["err_p99"] / tm for r in rows], label="p99", lw=1.2)
        ax.plot(t, [r["err_max"] / tm for r in rows], label="max", lw=0.8, alpha=0.7)
        ax.axhline(1, color="green", ls="--", lw=0.8, label="goal: p99 < 1 tick")
        ax.axhline(3, color="red", ls=":", lw=0.8, label="snap: > 3 ticks")
        ax.set_title(f"--netsim={sc['netsim']}, redundancy {sc['redundancy']}", fontsize=9)
        ax.set_ylabel("error (ticks)")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("seconds since the first bot joined")
    fig.suptitle("Prediction error per second (distance to the server's position for the same input seq)\n" + caption,
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, "docs", "netcode_error.png"), dpi=90)

    fig, axes = panels(scenarios)
    for ax, sc in zip(axes, scenarios):
        rows = [r for r in sc["timeline"] if r["delay_mean"] is not None]
        t = [r["t"] for r in rows]
        ax.plot(t, [r["delay_mean"] for r in rows], label="mean over bots", lw=1.2)
        ax.fill_between(t, [r["delay_min"] for r in rows], [r["delay_max"] for r in rows], alpha=0.25,
                        label="min..max")
        ax.set_title(f"--netsim={sc['netsim']}, redundancy {sc['redundancy']}", fontsize=9)
        ax.set_ylabel("delay (frames)")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("seconds since the first bot joined")
    fig.suptitle("Render delay of the interpolated players (nshost.interp)\n" + caption, fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, "docs", "netcode_delay.png"), dpi=90)
    print("wrote docs/netcode_error.png and docs/netcode_delay.png")


if __name__ == "__main__":
    main()
