// nshost dashboard: polls /api/status once a second and draws the figures
// with uPlot. No build step; served by nshost's admin server (--admin).
"use strict";

(function () {
  const POLL_MS = 1000;
  const REQUEST_TIMEOUT_MS = 5000;
  const WINDOW_POINTS = 300;
  const CHART_HEIGHT = 150;  // 5 minutes at one poll a second
  const TOKEN_KEY = "nshost-admin-token";

  // The token: ?token=... (then dropped from the address bar), else the one
  // this tab was given before, else asked for when the server answers 401.
  let token = null;
  (function takeToken() {
    const params = new URLSearchParams(location.search);
    if (params.has("token")) {
      token = params.get("token");
      try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage off: keep it in memory */ }
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    } else {
      try { token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { token = null; }
    }
  })();

  const $ = (id) => document.getElementById(id);
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue(name).trim();

  function formatBytes(n) {
    if (n == null || !isFinite(n)) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? Math.round(n) : n.toFixed(1)) + " " + units[i];
  }
  function formatRate(n) { return n == null ? "–" : formatBytes(n) + "/s"; }
  function formatMs(seconds) { return seconds == null ? "–" : (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1) + " ms"; }
  function formatDuration(s) {
    if (s == null) return "–";
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    return m + "m " + (s % 60) + "s";
  }
  function sum(obj) {
    if (typeof obj === "number") return obj;
    let total = 0;
    for (const k in obj || {}) if (typeof obj[k] === "number") total += obj[k];
    return total;
  }

  // One chart: a time axis and `series` ({label, colour, dash?}), filled from
  // each status by `values(status, previous)` (an array, one per series).
  function powersOfTen(u) {
    const min = u.scales.y.min, max = u.scales.y.max, out = [];
    if (!(min > 0) || !(max > min)) return out;
    for (let p = Math.ceil(Math.log10(min) - 1e-9); p <= Math.floor(Math.log10(max) + 1e-9) && out.length < 12; p++)
      out.push(Math.pow(10, p));
    return out;
  }
  const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

  // `scale`: "count" (whole-number steps from 0), "log" (base 10, for ticks
  // far below their budget), or linear from 0 by default.
  function Chart(elementId, series, valueFormat, values, scale) {
    this.element = $(elementId);
    this.values = values;
    this.data = [[]].concat(series.map(() => []));
    const axis = { stroke: colour("--muted"), grid: { stroke: colour("--line"), width: 1 }, ticks: { stroke: colour("--line"), width: 1 } };
    const opts = {
      width: this.element.clientWidth || 400,
      height: CHART_HEIGHT,
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        y: scale === "log" ? { distr: 3, log: 10 } : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [Object.assign({}, axis), Object.assign({ size: 64, values: (u, ticks) => ticks.map(valueFormat) },
        scale === "count" ? { incrs: COUNT_STEPS } : {},
        // Powers of ten only: a log axis's minor lines crowd a short chart.
        scale === "log" ? { splits: powersOfTen } : {},
        axis)],
      series: [{}].concat(series.map((s) => ({
        label: s.label, stroke: s.colour, width: 2, dash: s.dash, points: { show: false },
        value: (u, v) => (v == null ? "–" : valueFormat(v)),
      }))),
    };
    this.plot = new uPlot(opts, this.data, this.element);
  }
  Chart.prototype.push = function (status, previous) {
    const row = this.values(status, previous);
    this.data[0].push(status.time_unix_s);
    row.forEach((v, i) => this.data[i + 1].push(v));
    if (this.data[0].length > WINDOW_POINTS) this.data.forEach((column) => column.shift());
    this.plot.setData(this.data);
    // The legend shows the latest values unless the pointer is on the chart.
    if (!(this.plot.cursor.left >= 0)) this.plot.setLegend({ idx: this.data[0].length - 1 });
  };
  // Points with a value in some series (a rate has none at its first poll).
  Chart.prototype.points = function () {
    let n = 0;
    for (let i = 0; i < this.data[0].length; i++)
      if (this.data.slice(1).some((column) => column[i] != null)) n++;
    return n;
  };
  Chart.prototype.resize = function () {
    const width = this.element.clientWidth;
    if (width > 0) this.plot.setSize({ width: width, height: CHART_HEIGHT });
  };

  // Per second between two totals; null across a restart or without a previous.
  function rate(now, before, pick) {
    if (!before) return null;
    const dt = now.time_unix_s - before.time_unix_s;
    const delta = pick(now) - pick(before);
    if (!(dt > 0) || delta < 0) return null;
    return delta / dt;
  }

  const positive = (v) => (v > 0 ? v : null);  // a log scale has no 0
  const ms = (v) => (v == null ? "–" : +(v).toPrecision(3) + "");
  const count = (v) => (v == null ? "–" : (Math.round(v * 100) / 100) + "");
  const bytes = (v) => formatBytes(v);

  const charts = {
    tick: new Chart("chart-tick", [
      { label: "p50", colour: "#4c9be8" },
      { label: "p99", colour: "#e8a33c" },
      { label: "budget", colour: "#e5534b", dash: [6, 4] },
    ], ms, (s) => [positive(s.tick.p50_duration_s * 1000), positive(s.tick.p99_duration_s * 1000), s.tick.budget_s * 1000],
    "log"),
    players: new Chart("chart-players", [
      { label: "connected", colour: "#4caf7a" },
      { label: "handshaking", colour: "#9b7be8" },
    ], count, (s) => [s.clients.connected, s.clients.handshaking], "count"),
    bandwidth: new Chart("chart-bandwidth", [
      { label: "in", colour: "#4c9be8" },
      { label: "out", colour: "#e8a33c" },
    ], bytes, (s, p) => [rate(s, p, (x) => x.traffic.bytes_in_total), rate(s, p, (x) => x.traffic.bytes_out_total)]),
    drops: new Chart("chart-drops", [
      { label: "malformed datagrams/s", colour: "#e5534b" },
      { label: "kicks/s", colour: "#e8a33c" },
      { label: "handler errors/s", colour: "#9b7be8" },
      { label: "handler timeouts/s", colour: "#4c9be8" },
    ], count, (s, p) => [
      rate(s, p, (x) => x.drops.malformed_datagrams_total),
      rate(s, p, (x) => sum(x.drops.kicks_total)),
      rate(s, p, (x) => x.drops.handler_errors_total),
      rate(s, p, (x) => x.drops.handler_timeouts_total),
    ]),
  };
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));

  function cell(row, text, numeric) {
    const td = row.insertCell();
    td.textContent = text == null ? "–" : String(text);
    if (numeric) td.className = "num";
  }
  function fillTable(id, rows, columns) {
    const body = $(id).tBodies[0];
    const fresh = document.createElement("tbody");
    for (const r of rows) {
      const tr = fresh.insertRow();
      for (const [get, numeric] of columns) cell(tr, get(r), numeric);
    }
    body.replaceWith(fresh);
  }

  function render(s, previous) {
    $("identity").textContent = s.role + " · nshost " + s.version + " · " + s.tick.rate_hz + " Hz · up " +
      formatDuration(s.uptime_s);
    $("card-players").textContent = s.clients.connected + " / " + s.clients.max;
    $("card-rooms").textContent = s.rooms.total;
    const tick = $("card-tick");
    tick.textContent = formatMs(s.tick.p99_duration_s) + " / " + formatMs(s.tick.budget_s);
    tick.classList.toggle("bad", s.tick.p99_duration_s > s.tick.budget_s);
    $("card-overruns").textContent = s.tick.overruns_total;
    $("card-bandwidth").textContent = formatRate(rate(s, previous, (x) => x.traffic.bytes_in_total)) + " / " +
      formatRate(rate(s, previous, (x) => x.traffic.bytes_out_total));
    $("card-lua").textContent = formatBytes((s.lua_memory_bytes || {}).main);
    $("card-rss").textContent = formatBytes((s.process || {}).resident_memory_bytes);

    for (const c of Object.values(charts)) c.push(s, previous);

    const clients = s.client_list || [];
    fillTable("clients", clients, [
      [(c) => c.slot, true], [(c) => c.id, true], [(c) => c.address, false], [(c) => c.rtt_ms, true],
      [(c) => (c.packet_loss == null ? null : (c.packet_loss * 100).toFixed(1) + " %"), true],
      [(c) => formatBytes(c.bytes_in_total), true], [(c) => formatBytes(c.bytes_out_total), true],
      [(c) => (c.room == null ? "" : c.room), true],
    ]);
    $("clients-count").textContent = "(" + clients.length + ")";
    const rooms = s.room_list || [];
    fillTable("rooms", rooms, [
      [(r) => r.id, true], [(r) => r.type, false], [(r) => r.clients + " / " + r.max_clients, true],
      [(r) => (r.locked ? "yes" : "no"), false],
    ]);
    $("rooms-count").textContent = "(" + rooms.length + ")";

    // For tests and scripts: the page is ready once every chart has two
    // points and a player has been seen.
    const points = Math.min.apply(null, Object.values(charts).map((c) => c.points()));
    const sawPlayers = charts.players.data[1].some((v) => v > 0);
    document.body.dataset.points = String(points);
    document.body.dataset.clients = String(clients.length);
    if (points >= 2 && sawPlayers) document.body.dataset.ready = "1";
  }

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.className = "status" + (kind ? " " + kind : "");
  }

  let previous = null;
  let asked = false;
  let timer = null;

  async function poll() {
    timer = null;
    const controller = new AbortController();
    const abort = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const headers = token ? { Authorization: "Bearer " + token } : {};
      const response = await fetch("/api/status", { headers: headers, cache: "no-store", signal: controller.signal });
      if (response.status === 401) {
        if (!asked) {
          asked = true;
          const given = window.prompt("This nshost needs its admin token (--admin-token):");
          if (given) {
            token = given;
            try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* memory only */ }
            asked = false;
            schedule(0);
            return;
          }
        }
        setStatus("401: needs the admin token (open the page with ?token=...)", "bad");
        return;  // no more polling until a reload
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const status = await response.json();
      render(status, previous);
      previous = status;
      setStatus("live · " + new Date(status.time_unix_s * 1000).toISOString().slice(11, 19) + " UTC", "ok");
    } catch (e) {
      setStatus("no answer: " + (e.name === "AbortError" ? "timed out" : e.message), "bad");
    } finally {
      clearTimeout(abort);
    }
    schedule(POLL_MS);
  }
  function schedule(delay) {
    if (timer === null) timer = setTimeout(poll, delay);
  }
  schedule(0);
})();
