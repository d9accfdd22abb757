// Arena bots for the Colyseus rooms anchor (../shared/anchors/colyseus-rooms/server.mjs),
// doing what the anchor's bots.mjs does once seated (decode every state patch, send a
// random input [dx, dy] at SEND_HZ) but joining CONCURRENCY at a time instead of one
// after another: on this shared machine bots.mjs's sequential joins of 1,024 bots outlast
// run.sh's 120 s wait, and its window then opens with most bots not yet seated.
// stderr: `joined N in X s` once all are seated (as bots.mjs). stdout, once a second:
//   count t=<s since start> patches=<total decoded> seated=<n> min_seen=<n> max_seen=<n>
// bench/run.py takes the difference over its window; SIGTERM ends the process.
// env: N, CONCURRENCY (default 16), SEND_HZ (default 30), ENDPOINT, ANCHOR (a copy of the
// anchor with its node_modules).
import { createRequire } from "node:module";
import path from "node:path";

const N = Number(process.env.N ?? 64);
const CONCURRENCY = Math.max(1, Number(process.env.CONCURRENCY ?? 16));
const SEND_HZ = Number(process.env.SEND_HZ ?? 30);
const ENDPOINT = process.env.ENDPOINT ?? "ws://127.0.0.1:2567";
const require = createRequire(path.join(process.env.ANCHOR ?? ".", "package.json"));
const { Client } = require("colyseus.js");

const t0 = performance.now();
const client = new Client(ENDPOINT);
let patches = 0, seated = 0, minSeen = Infinity, maxSeen = 0, next = 0;

async function worker() {
  while (next < N) {
    next++;
    let room;
    for (let attempt = 0; ; attempt++) {
      try { room = await client.joinOrCreate("arena"); break; }
      catch (e) { if (attempt >= 5) throw e; await new Promise(r => setTimeout(r, 200)); }
    }
    seated++;
    room.onStateChange((s) => {
      patches++;
      const n = s.players.size; if (n < minSeen) minSeen = n; if (n > maxSeen) maxSeen = n;
    });
    setInterval(() => room.send("in", [Math.random() * 2 - 1, Math.random() * 2 - 1]), 1000 / SEND_HZ);
  }
}

setInterval(() => {
  console.log(`count t=${((performance.now() - t0) / 1000).toFixed(3)} patches=${patches} seated=${seated} ` +
    `min_seen=${minSeen === Infinity ? 0 : minSeen} max_seen=${maxSeen}`);
}, 1000);
process.on("SIGTERM", () => process.exit(0));
await Promise.all(Array.from({ length: Math.min(CONCURRENCY, N) }, worker));
console.error(`joined ${N} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
