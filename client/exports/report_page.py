"""The HTML report's page: template, style and script (``report`` fills them in).

The script reads two JSON blobs, keeps every record in memory (10,000 are a few MB) and puts one
page of 60 cards in the document at a time, built with ``createElement`` and ``textContent``
only. Images load lazily. Filters: status, kind, tag (exact; a click on a chip sets it), text
search (path, every text, translations, error); sort by latency; a language switch shows each
task's translation with its ``lang`` and ``dir`` (``rtl`` for Arabic, Hebrew, Urdu, Persian
... scripts, else ``auto``). The header shows the run's figures and an SVG latency histogram.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE", "TEMPLATE"]

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: \
data:; style-src 'unsafe-inline'; script-src 'sha256-@SCRIPT_HASH@'; base-uri 'none'; \
form-action 'none'">
<meta name="referrer" content="no-referrer">
<title>@TITLE@</title>
<style>@STYLE@</style>
</head>
<body>
<header>
<h1 id="title"></h1>
<p id="source" class="muted"></p>
<div class="summary"><dl id="figures" class="figures"></dl>
<figure id="histogram"><figcaption>latency of processed assets (s)</figcaption></figure></div>
</header>
<nav class="controls" aria-label="filters">
<label>status <select id="status"><option value="">all</option><option value="ok">ok</option>
<option value="error">errors</option></select></label>
<label>kind <select id="kind"><option value="">all</option><option value="image">images</option>
<option value="video">videos</option><option value="unknown">unreadable</option></select></label>
<label>tag <input id="tag" list="tags" placeholder="any tag" size="14"></label>
<datalist id="tags"></datalist>
<label>search <input id="search" type="search" placeholder="text, path, error" size="22"></label>
<label>sort <select id="sort"><option value="">file order</option>
<option value="slow">slowest first</option><option value="fast">fastest first</option></select>
</label>
<label>language <select id="language"><option value="">English</option></select></label>
<button id="clear" type="button">clear filters</button>
<span id="count" class="muted" aria-live="polite"></span>
</nav>
<main id="cards" class="cards"></main>
<footer class="pager"><button id="prev" type="button">&larr; previous</button>
<span id="page"></span><button id="next" type="button">next &rarr;</button></footer>
<script type="application/json" id="records">@RECORDS@</script>
<script type="application/json" id="head">@HEAD@</script>
<script>@SCRIPT@</script>
</body>
</html>
"""

STYLE = """
:root { --fg: #1d2330; --muted: #5d6678; --line: #d9dde5; --bg: #f6f7f9; --card: #fff;
  --bad: #b42318; --badbg: #fef3f2; --chip: #eef2ff; --accent: #3451b2; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, "Noto Sans", "Noto Sans Arabic",
  "Noto Sans Devanagari", "Noto Sans Hebrew", sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 16px 20px 8px; background: var(--card); border-bottom: 1px solid var(--line); }
h1 { font-size: 20px; margin: 0 0 2px; }
.muted { color: var(--muted); margin: 0; }
.summary { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-end; margin-top: 10px; }
.figures { display: grid; grid-template-columns: repeat(4, auto); gap: 2px 18px; margin: 0; }
.figures dt { color: var(--muted); font-size: 12px; }
.figures dd { margin: 0 0 6px; font-weight: 600; font-variant-numeric: tabular-nums; }
figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); }
svg rect.bar { fill: var(--accent); }
svg text { font-size: 10px; fill: var(--muted); }
.controls { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; gap: 8px 14px;
  align-items: center; padding: 8px 20px; background: #fbfcfd;
  border-bottom: 1px solid var(--line); }
.controls label { font-size: 12px; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px;
  padding: 16px 20px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  overflow: hidden; display: flex; flex-direction: column; }
.card.error { border-color: var(--bad); }
.media { display: flex; gap: 2px; background: #e9ecf1; min-height: 90px; overflow-x: auto; }
.media img { display: block; height: 160px; width: auto; max-width: 100%; object-fit: contain; }
.media.video img { height: 90px; }
.nopreview { margin: auto; color: var(--muted); font-size: 12px; padding: 30px; }
.body { padding: 10px 12px 12px; }
.body h2 { font-size: 14px; margin: 0; overflow-wrap: anywhere; }
.meta, .timings { font-size: 12px; color: var(--muted); margin: 2px 0 6px; }
.reason { background: var(--badbg); color: var(--bad); padding: 6px 8px; border-radius: 6px;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.task { margin: 6px 0; }
.label { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.text { margin: 1px 0 0; white-space: pre-wrap; overflow-wrap: anywhere; text-align: start; }
.note { font-size: 11px; color: var(--muted); }
.chips { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 2px; }
.chip { border: 0; background: var(--chip); color: var(--accent); border-radius: 10px;
  padding: 1px 8px; font: inherit; font-size: 12px; cursor: pointer; }
.pager { display: flex; gap: 12px; justify-content: center; align-items: center; padding: 10px; }
"""

SCRIPT = r"""
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const data = JSON.parse($("records").textContent);
  const head = JSON.parse($("head").textContent);
  const PAGE = 60;
  const langs = {};
  head.languages.forEach(([code, name, dir]) => { langs[code] = { name, dir }; });
  const state = { status: "", kind: "", tag: "", q: "", sort: "", lang: "", page: 0 };
  let shown = data;
  let hay = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  const secs = (v) => (v === null || v === undefined ? "-" : Number(v).toFixed(2) + " s");

  function haystack(r) {
    const parts = [r.p, r.m || ""];
    r.t.forEach((t) => parts.push(t[1]));
    Object.values(r.tr).forEach((pairs) => pairs.forEach((t) => parts.push(t[1])));
    if (r.e) parts.push(r.e.join(" "));
    return parts.join("\n").toLowerCase();
  }

  function apply(keepPage) {
    const q = state.q.trim().toLowerCase();
    if (q && !hay) hay = data.map(haystack);
    shown = data.filter((r, i) =>
      (!state.status || r.s === state.status) && (!state.kind || r.k === state.kind) &&
      (!state.tag || r.g.includes(state.tag)) && (!q || hay[i].includes(q)));
    if (state.sort === "slow") shown.sort((a, b) => b.l - a.l);
    if (state.sort === "fast") shown.sort((a, b) => a.l - b.l);
    if (!keepPage) state.page = 0;
    render();
  }

  function textBlock(r, task, english, isTags) {
    const row = el("div", "task");
    const translated = state.lang && r.tr[state.lang] &&
      (r.tr[state.lang].find((t) => t[0] === task) || [])[1];
    const label = el("span", "label", task);
    row.appendChild(label);
    if (isTags && !translated) {
      const chips = el("div", "chips");
      r.g.forEach((tag) => {
        const chip = el("button", "chip", tag);
        chip.type = "button";
        chip.dataset.tag = tag;
        chip.addEventListener("click", () => { $("tag").value = tag; state.tag = tag; apply(); });
        chips.appendChild(chip);
      });
      row.appendChild(chips);
    } else {
      const p = el("p", "text", translated || english);
      p.dataset.task = task;
      if (translated) {
        p.lang = state.lang.replace("_", "-");
        p.dir = langs[state.lang] ? langs[state.lang].dir : "auto";
        label.textContent = task + " · " + (langs[state.lang] || { name: state.lang }).name;
      } else {
        p.lang = "en";
        p.dir = "auto";
      }
      row.appendChild(p);
    }
    if (state.lang && !translated) row.appendChild(el("span", "note", "(not translated)"));
    return row;
  }

  function card(r) {
    const c = el("article", "card " + r.s);
    c.dataset.status = r.s;
    c.dataset.kind = r.k;
    c.dataset.index = r.i;
    const media = el("div", "media " + r.k);
    if (r.v.length) {
      r.v.forEach((src) => {
        const img = el("img");
        img.loading = "lazy";
        img.decoding = "async";
        img.alt = r.n;
        img.src = src;
        media.appendChild(img);
      });
    } else {
      media.appendChild(el("div", "nopreview", "no preview"));
    }
    c.appendChild(media);
    const body = el("div", "body");
    const name = el("h2", "name", r.n);
    name.title = r.p;
    body.appendChild(name);
    const meta = [r.k, r.md, r.m, secs(r.l), r.tk ? r.tk + " tokens" : ""].filter(Boolean);
    body.appendChild(el("div", "meta", meta.join(" · ")));
    if (r.e) body.appendChild(el("div", "reason", r.e[0] + ": " + r.e[1]));
    r.t.forEach((t) => body.appendChild(textBlock(r, t[0], t[1], t[2] === 1)));
    const tm = Object.entries(r.tm).map(([k, v]) => k.replace(/_s$/, "") + " " + secs(v));
    if (tm.length) body.appendChild(el("div", "timings", tm.join(" · ")));
    c.appendChild(body);
    return c;
  }

  function render() {
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE;
    const fragment = document.createDocumentFragment();
    shown.slice(start, start + PAGE).forEach((r) => fragment.appendChild(card(r)));
    $("cards").replaceChildren(fragment);
    $("count").textContent = shown.length + " of " + data.length + " assets";
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  function rank(sorted, q) {
    return sorted.length ? sorted[Math.max(0, Math.ceil(q / 100 * sorted.length) - 1)] : null;
  }

  function figures() {
    const ok = data.filter((r) => r.s === "ok");
    const lat = ok.map((r) => r.l).sort((a, b) => a - b);
    const kinds = {}, errors = {}, models = {};
    data.forEach((r) => {
      kinds[r.k] = (kinds[r.k] || 0) + 1;
      if (r.e) errors[r.e[0]] = (errors[r.e[0]] || 0) + 1;
      if (r.m) models[r.m] = (models[r.m] || 0) + 1;
    });
    const list = (o) => Object.entries(o).map(([k, v]) => k + " " + v).join(", ") || "-";
    const run = head.summary || {};
    const rows = [
      ["assets", data.length + " (" + list(kinds) + ")"], ["ok", ok.length],
      ["errors", (data.length - ok.length) +
        (data.length > ok.length ? " (" + list(errors) + ")" : "")],
      ["models", list(models)],
      ["latency p50", secs(rank(lat, 50))], ["latency p90", secs(rank(lat, 90))],
      ["latency mean", secs(lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null)],
      ["latency max", secs(lat.length ? lat[lat.length - 1] : null)],
      ["run wall time", secs(run.seconds)],
      ["assets/s", run.assets_per_s === undefined || run.assets_per_s === null ?
        "-" : run.assets_per_s],
      ["output tokens", ok.reduce((a, r) => a + r.tk, 0)],
      ["languages", head.languages.map((l) => l[1]).join(", ") || "-"],
    ];
    const dl = $("figures");
    rows.forEach(([k, v]) => { dl.appendChild(el("dt", "", k)); dl.appendChild(el("dd", "", v)); });
    histogram(lat);
  }

  function histogram(lat) {
    const NS = "http://www.w3.org/2000/svg";
    const W = 320, H = 90, BINS = 24;
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("width", W);
    svg.setAttribute("height", H + 14);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "latency histogram");
    const max = lat.length ? lat[lat.length - 1] : 0;
    const counts = new Array(BINS).fill(0);
    lat.forEach((v) => { counts[max > 0 ? Math.min(BINS - 1, Math.floor(v / max * BINS)) : 0]++; });
    const top = Math.max(1, ...counts);
    counts.forEach((n, i) => {
      const rect = document.createElementNS(NS, "rect");
      const h = Math.round(n / top * H);
      rect.setAttribute("class", "bar");
      rect.setAttribute("x", i * (W / BINS) + 1);
      rect.setAttribute("y", H - h);
      rect.setAttribute("width", W / BINS - 2);
      rect.setAttribute("height", h);
      const tip = document.createElementNS(NS, "title");
      tip.textContent = n + " assets, " + (max * i / BINS).toFixed(2) + "-" +
        (max * (i + 1) / BINS).toFixed(2) + " s";
      rect.appendChild(tip);
      svg.appendChild(rect);
    });
    [["0", 0, "start"], [max.toFixed(2) + " s", W, "end"]].forEach(([t, x, anchor]) => {
      const label = document.createElementNS(NS, "text");
      label.setAttribute("x", x);
      label.setAttribute("y", H + 12);
      label.setAttribute("text-anchor", anchor);
      label.textContent = t;
      svg.appendChild(label);
    });
    $("histogram").appendChild(svg);
  }

  function controls() {
    $("title").textContent = head.title;
    $("source").textContent = head.source;
    const language = $("language");
    head.languages.forEach(([code, name]) => {
      const option = el("option", "", name + " (" + code + ")");
      option.value = code;
      language.appendChild(option);
    });
    const counts = {};
    data.forEach((r) => r.g.forEach((t) => { counts[t] = (counts[t] || 0) + 1; }));
    const tags = $("tags");
    Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 500).forEach(([t]) => {
      const option = el("option");
      option.value = t;
      tags.appendChild(option);
    });
    const bind = (id, key, event) => $(id).addEventListener(event || "change", () => {
      state[key] = $(id).value.trim ? $(id).value.trim() : $(id).value;
      apply(key === "lang");
    });
    bind("status", "status");
    bind("kind", "kind");
    bind("sort", "sort");
    bind("language", "lang");
    bind("tag", "tag", "input");
    let timer = null;
    $("search").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.q = $("search").value; apply(); }, 120);
    });
    $("clear").addEventListener("click", () => {
      ["status", "kind", "tag", "search", "sort"].forEach((id) => { $(id).value = ""; });
      Object.assign(state, { status: "", kind: "", tag: "", q: "", sort: "" });
      apply();
    });
    $("prev").addEventListener("click", () => { state.page--; render(); window.scrollTo(0, 0); });
    $("next").addEventListener("click", () => { state.page++; render(); window.scrollTo(0, 0); });
  }

  controls();
  figures();
  apply();
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "1";
})();
"""
