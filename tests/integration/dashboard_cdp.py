#!/usr/bin/python3
"""Opens the nshost dashboard in headless Chromium over the DevTools protocol.

Starts Chromium (killed with this process), loads URL, waits until the page
says its charts are ready (body.dataset.ready, set by web/dashboard/app.js)
and its clients table has --clients rows, or until --timeout seconds pass,
then saves a PNG screenshot. Prints one JSON object with what it saw and
exits 0 when the page got ready, 1 when it did not, 2 on a browser failure.
Used by tests/integration/test_dashboard.cpp; Debian: chromium, python3-websockets.
"""
import argparse
import asyncio
import base64
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

# What the page shows, read in the page. `series` counts, per chart, the
# canvas pixels near the colours of the chart's data series (not the budget
# line): proof that a line was drawn, not only the axes.
PROBE = r"""
(() => {
  const near = (data, colours) => {
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] < 200) continue;
      for (const c of colours)
        if (Math.abs(data[i] - c[0]) + Math.abs(data[i + 1] - c[1]) + Math.abs(data[i + 2] - c[2]) < 40) { n++; break; }
    }
    return n;
  };
  const blue = [76, 155, 232], orange = [232, 163, 60], green = [76, 175, 122], red = [229, 83, 75],
        violet = [155, 123, 232];
  const colours = {"chart-tick": [blue, orange], "chart-players": [green],
                   "chart-bandwidth": [blue, orange], "chart-drops": [red, orange, violet, blue]};
  const series = {};
  for (const id in colours) {
    const canvas = document.querySelector("#" + id + " canvas");
    series[id] = canvas && canvas.width > 0
      ? near(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data, colours[id]) : -1;
  }
  const d = document.body ? document.body.dataset : {};
  return JSON.stringify({
    ready: d.ready === "1", points: Number(d.points || 0), clients_reported: Number(d.clients || 0),
    client_rows: document.querySelectorAll("#clients tbody tr").length,
    room_rows: document.querySelectorAll("#rooms tbody tr").length,
    charts: document.querySelectorAll(".chart canvas").length,
    status: (document.getElementById("status") || {}).textContent || "",
    players_card: (document.getElementById("card-players") || {}).textContent || "",
    series: series,
  });
})()
"""


def die_with_parent():
    # Chromium goes when this script goes, however it goes.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setsid()


def devtools_port(profile, browser, deadline):
    path = os.path.join(profile, "DevToolsActivePort")
    while time.monotonic() < deadline:
        if browser.poll() is not None:
            raise RuntimeError("chromium exited with %d before DevTools came up" % browser.returncode)
        try:
            with open(path) as f:
                first = f.readline().strip()
            if first:
                return int(first)
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError("no DevToolsActivePort within the deadline")


class Page:
    def __init__(self, socket):
        self.socket = socket
        self.next_id = 0

    async def call(self, method, **params):
        self.next_id += 1
        call_id = self.next_id
        await self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:  # events in between are skipped
            message = json.loads(await self.socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError("%s: %s" % (method, message["error"]))
                return message.get("result", {})


async def drive(args, port, deadline):
    with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=5) as r:
        targets = [t for t in json.load(r) if t.get("type") == "page"]
    if not targets:
        raise RuntimeError("no page target")
    async with websockets.connect(targets[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=5) as socket:
        page = Page(socket)
        await page.call("Emulation.setDeviceMetricsOverride", width=args.width, height=args.height,
                        deviceScaleFactor=1, mobile=False)
        await page.call("Page.enable")
        await page.call("Page.navigate", url=args.url)
        seen = {}
        while time.monotonic() < deadline:
            result = await page.call("Runtime.evaluate", expression=PROBE, returnByValue=True)
            value = result.get("result", {}).get("value")
            if value:
                seen = json.loads(value)
                if seen["ready"] and seen["client_rows"] >= args.clients:
                    break
            await asyncio.sleep(0.2)
        shot = await page.call("Page.captureScreenshot", format="png")
        with open(args.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return seen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--clients", type=int, default=0, help="rows the clients table must reach")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    profile = tempfile.mkdtemp(prefix="nshost-chromium-")
    browser = subprocess.Popen(
        [args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         "--user-data-dir=" + profile, "--window-size=%d,%d" % (args.width, args.height), "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent)
    try:
        port = devtools_port(profile, browser, deadline)
        seen = asyncio.run(asyncio.wait_for(drive(args, port, deadline), max(1.0, deadline - time.monotonic() + 10)))
    except Exception as e:  # one readable line for the test's log
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        return 2
    finally:
        try:
            os.killpg(browser.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(seen))
    return 0 if seen.get("ready") and seen.get("client_rows", 0) >= args.clients else 1


if __name__ == "__main__":
    sys.exit(main())
