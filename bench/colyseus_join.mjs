// Join throughput against the Colyseus rooms anchor (../shared/anchors/colyseus-rooms/
// server.mjs), measured per join: N clients each joinOrCreate("arena") once and stay
// seated, CONCURRENCY joins in flight at a time (1 = one after another, as the anchor's
// bots.mjs does). Unlike bots.mjs the seated clients send nothing, so only joining is
// measured. Prints one line per join on stdout:
//   seat room=<roomId> ms=<latency> t=<seconds since start>
// then `done` once all N answered; exits on SIGTERM.
// env: N, CONCURRENCY (default 1), ENDPOINT (default ws://127.0.0.1:2567),
// ANCHOR: a copy of the anchor with its node_modules (bench/run.py makes one in the build folder).
import { createRequire } from "node:module";
import path from "node:path";

const N = Number(process.env.N ?? 64);
const CONCURRENCY = Math.max(1, Number(process.env.CONCURRENCY ?? 1));
const ENDPOINT = process.env.ENDPOINT ?? "ws://127.0.0.1:2567";
const require = createRequire(path.join(process.env.ANCHOR ?? ".", "package.json"));
const { Client } = require("colyseus.js");

const t0 = performance.now();
const client = new Client(ENDPOINT);
const rooms = [];
let next = 0;

async function worker() {
  while (next < N) {
    next++;
    const start = performance.now();
    try {
      const room = await client.joinOrCreate("arena");
      rooms.push(room);
      const end = performance.now();
      console.log(`seat room=${room.roomId} ms=${(end - start).toFixed(3)} t=${((end - t0) / 1000).toFixed(4)}`);
    } catch (e) {
      const end = performance.now();
      console.log(`seat failed=${String(e && e.message || e).replace(/\s+/g, "_")} ms=${(end - start).toFixed(3)} t=${((end - t0) / 1000).toFixed(4)}`);
    }
  }
}

await Promise.all(Array.from({ length: Math.min(CONCURRENCY, N) }, worker));
console.log("done");
process.on("SIGTERM", () => process.exit(0));
setInterval(() => {}, 1 << 30);
