// Meshwork console page: renders the state pushed by GET /api/events (Server-Sent Events) and the
// waterfall of a selected trace. No framework: every node is built with the DOM API and all text
// goes in through text nodes, never through innerHTML.
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  let state = null;
  let traces = [];
  let selected = null; // { id, spanCount } of the trace shown in the waterfall

  // ---- DOM helpers ----------------------------------------------------------------------------

  /** el("td", { class: "x", "data-testid": "y" }, "text", childNode, ...) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      // Styles go through the CSSOM: the page's CSP forbids inline style attributes.
      if (k === "style") for (const [prop, value] of Object.entries(v)) node.style.setProperty(prop, String(value));
      else node.setAttribute(k, String(v));
    }
  }

  function append(node, children) {
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
  }

  function replace(id, ...children) {
    const target = document.getElementById(id);
    target.replaceChildren();
    append(target, children);
  }

  function byTestId(id) {
    return document.querySelector(`[data-testid="${id}"]`);
  }

  // ---- formatting -----------------------------------------------------------------------------

  function fmtRate(r) {
    if (r === null || r === undefined) return "—";
    if (r === 0) return "0/s";
    return (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)) + "/s";
  }

  function fmtPct(x) {
    if (x === null || x === undefined) return "—";
    if (x === 0) return "0%";
    const p = x * 100;
    return (p < 1 ? p.toFixed(2) : p < 10 ? p.toFixed(1) : p.toFixed(0)) + "%";
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 100) return ms.toFixed(1) + " ms";
    if (ms < 10000) return ms.toFixed(0) + " ms";
    return (ms / 1000).toFixed(1) + " s";
  }

  function fmtDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m " + (s % 60) + "s";
    const h = Math.floor(m / 60);
    if (h < 24) return h + "h " + (m % 60) + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }

  function fmtClock(epochMs, withMs) {
    const d = new Date(epochMs);
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    const base = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    return withMs ? base + "." + pad(d.getMilliseconds(), 3) : base;
  }

  function shortMethod(name) {
    // "catalog.v1.CatalogService/GetProduct" → "CatalogService/GetProduct"
    const slash = name.lastIndexOf("/");
    if (slash < 0) return name;
    const svc = name.slice(0, slash);
    return svc.slice(svc.lastIndexOf(".") + 1) + name.slice(slash);
  }

  // Stable colour per service name, from a small palette that reads well on white.
  const PALETTE = ["#4c6ef5", "#0ca678", "#f08c00", "#ae3ec9", "#1098ad", "#e8590c", "#5c940d", "#d6336c"];
  function serviceColor(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return PALETTE[h % PALETTE.length];
  }

  function serviceChip(name) {
    return el("span", { class: "chip", style: { "--svc": serviceColor(name) } }, name);
  }

  // ---- sparklines -----------------------------------------------------------------------------

  function sparkline(points, key, testId) {
    const w = 132;
    const h = 30;
    const values = points.map((p) => (p[key] === null || p[key] === undefined ? null : p[key]));
    const known = values.filter((v) => v !== null);
    const box = svg("svg", { class: "spark", viewBox: `0 0 ${w} ${h}`, width: w, height: h, "data-testid": testId, "data-points": values.length, "data-known": known.length, role: "img", "aria-label": key + " history" });
    box.appendChild(svg("line", { x1: 0, y1: h - 1, x2: w, y2: h - 1, class: "spark-base" }));
    if (known.length === 0) return box;
    const max = Math.max(...known) || 1;
    const step = values.length > 1 ? w / (values.length - 1) : w;
    const coords = [];
    values.forEach((v, i) => {
      if (v === null) return;
      coords.push([values.length > 1 ? i * step : w, h - 2 - (v / max) * (h - 5)]);
    });
    const line = coords.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" ");
    if (coords.length > 1) {
      const area = `${coords[0][0].toFixed(1)},${h - 1} ${line} ${coords[coords.length - 1][0].toFixed(1)},${h - 1}`;
      box.appendChild(svg("polygon", { points: area, class: "spark-area" }));
    }
    box.appendChild(svg("polyline", { points: line, class: "spark-line" }));
    const [lx, ly] = coords[coords.length - 1];
    box.appendChild(svg("circle", { cx: lx.toFixed(1), cy: ly.toFixed(1), r: 2.2, class: "spark-dot" }));
    return box;
  }

  function statTile(label, value, points, key, testId, tone) {
    return el(
      "div",
      { class: "stat" + (tone ? " " + tone : ""), "data-testid": testId },
      el("div", { class: "stat-label" }, label),
      el("div", { class: "stat-value", "data-testid": testId + "-value" }, value),
      sparkline(points, key, testId + "-spark"),
    );
  }

  // ---- state ----------------------------------------------------------------------------------

  function healthBadge(inst) {
    const cls = inst.health === "SERVING" ? "ok" : inst.health === "NOT_SERVING" ? "bad" : "unknown";
    return el("span", { class: "badge " + cls, "data-testid": "health-badge", title: inst.healthError || "" }, inst.health);
  }

  function renderHeader(s) {
    byTestId("mesh-name").textContent = s.mesh;
    const time = byTestId("updated-at");
    time.textContent = fmtClock(s.updatedAt);
    time.setAttribute("datetime", new Date(s.updatedAt).toISOString());
    const instances = s.services.flatMap((x) => x.instances);
    const serving = instances.filter((i) => i.health === "SERVING").length;
    const summary = byTestId("summary");
    summary.replaceChildren(
      el("span", { class: "pill" }, el("b", {}, String(s.services.length)), " services"),
      el("span", { class: "pill" }, el("b", {}, String(instances.length)), " instances"),
      el("span", { class: "pill " + (serving === instances.length ? "good" : "warn") }, el("b", {}, String(serving)), " serving"),
    );
    byTestId("window-label").textContent = `rate, errors and latency over the last ${s.windowMinutes === 1 ? "minute" : s.windowMinutes + " minutes"}; charts: ${s.historyMinutes} min`;
  }

  function renderServices(s) {
    if (s.services.length === 0) return replace("services", el("p", { class: "empty" }, "No service is registered."));
    const now = Date.now();
    const cards = s.services.map((svc) => {
      const st = svc.stats;
      const serving = svc.instances.filter((i) => i.health === "SERVING").length;
      const errTone = st && st.errorRatio > 0.01 ? "bad" : st && st.errorRatio > 0 ? "warn" : "";
      const rows = svc.instances.map((inst) =>
        el(
          "tr",
          { "data-testid": "instance-row", "data-instance": inst.instance, "data-health": inst.health },
          el("td", {}, healthBadge(inst)),
          el("td", { class: "mono", "data-testid": "instance-id" }, inst.instance),
          el("td", { "data-testid": "instance-version" }, inst.version),
          el("td", { class: "mono", "data-testid": "instance-address" }, inst.address + ":" + inst.port),
          el("td", { "data-testid": "instance-uptime", title: inst.startedAt }, fmtDuration(now - Date.parse(inst.startedAt))),
          el("td", { class: "num" }, inst.stats ? fmtRate(inst.stats.ratePerSec) : "—"),
          el("td", { class: "warn-text small" }, inst.scrapeError ? "metrics unreachable" : inst.metricsAddress ? "" : "no metrics"),
        ),
      );
      const methods = svc.methods.length
        ? el(
            "details",
            { class: "methods" },
            el("summary", {}, svc.methods.length === 1 ? "1 method" : svc.methods.length + " methods"),
            el(
              "table",
              { class: "grid compact" },
              el("thead", {}, el("tr", {}, el("th", {}, "method"), el("th", { class: "num" }, "rate"), el("th", { class: "num" }, "errors"), el("th", { class: "num" }, "p50"), el("th", { class: "num" }, "p99"))),
              el(
                "tbody",
                {},
                svc.methods.map((m) =>
                  el("tr", {}, el("td", { class: "mono" }, shortMethod(m.service + "/" + m.method)), el("td", { class: "num" }, fmtRate(m.ratePerSec)), el("td", { class: "num" }, fmtPct(m.errorRatio)), el("td", { class: "num" }, fmtMs(m.p50Ms)), el("td", { class: "num" }, fmtMs(m.p99Ms))),
                ),
              ),
            ),
          )
        : null;
      return el(
        "article",
        { class: "card", "data-testid": "service-card", "data-service": svc.name, style: { "--svc": serviceColor(svc.name) } },
        el(
          "header",
          { class: "card-head" },
          el("h3", { "data-testid": "service-name" }, svc.name),
          el("span", { class: "muted", "data-testid": "instance-count" }, `${svc.instances.length} instance${svc.instances.length === 1 ? "" : "s"} · ${serving} serving`),
        ),
        el(
          "div",
          { class: "stats" },
          statTile("rate", fmtRate(st ? st.ratePerSec : 0), svc.history, "ratePerSec", "stat-rate"),
          statTile("errors", fmtPct(st ? st.errorRatio : 0), svc.history, "errorRatio", "stat-errors", errTone),
          statTile("p50", fmtMs(st ? st.p50Ms : null), svc.history, "p50Ms", "stat-p50"),
          statTile("p99", fmtMs(st ? st.p99Ms : null), svc.history, "p99Ms", "stat-p99"),
        ),
        svc.instances.length
          ? el("table", { class: "grid instances" }, el("thead", {}, el("tr", {}, el("th", {}, "health"), el("th", {}, "instance"), el("th", {}, "version"), el("th", {}, "address"), el("th", {}, "uptime"), el("th", { class: "num" }, "rate"), el("th", {}))), el("tbody", {}, rows))
          : el("p", { class: "empty" }, "No instance registered."),
        methods,
      );
    });
    replace("services", cards);
  }

  function renderClients(s) {
    const rows = [];
    for (const svc of s.services) {
      for (const inst of svc.instances) {
        for (const c of inst.clients) {
          const breaker = c.breaker || "n/a";
          const cls = breaker === "closed" ? "ok" : breaker === "half-open" ? "warn" : breaker === "open" ? "bad" : "unknown";
          const ejected = c.ejectedEndpoints === null ? "—" : c.ejectedEndpoints + " / " + (c.knownEndpoints === null ? "?" : c.knownEndpoints);
          rows.push(
            el(
              "tr",
              { "data-testid": "client-row", "data-instance": inst.instance, "data-target": c.target },
              el("td", {}, el("div", {}, serviceChip(svc.name)), el("div", { class: "mono small muted" }, inst.instance)),
              el("td", { class: "nowrap" }, el("span", { class: "arrow" }, "→ "), serviceChip(c.target)),
              el("td", {}, el("span", { class: "badge " + cls, "data-testid": "breaker-state" }, breaker)),
              el("td", { class: "num" + (c.ejectedEndpoints ? " bad-text" : ""), "data-testid": "ejected-endpoints", title: "ejected / known endpoints" }, ejected),
              el("td", { class: "num" }, c.stats ? fmtRate(c.stats.ratePerSec) : "—"),
              el("td", { class: "num" }, c.stats ? fmtPct(c.stats.errorRatio) : "—"),
            ),
          );
        }
      }
    }
    if (rows.length === 0) return replace("clients", el("p", { class: "empty" }, "No instance reports client gauges."));
    replace(
      "clients",
      el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "caller"), el("th", {}, "target"), el("th", {}, "breaker"), el("th", { class: "num" }, "ejected"), el("th", { class: "num" }, "rate"), el("th", { class: "num" }, "errors"))), el("tbody", {}, rows)),
    );
  }

  function renderEvents(s) {
    const rows = [];
    for (const svc of s.services) {
      for (const inst of svc.instances) {
        if (inst.outboxBacklog === null && inst.dlqMessages === null) continue;
        const num = (v, testId) => el("td", { class: "num" + (v ? " warn-text" : ""), "data-testid": testId }, v === null ? "—" : String(v));
        rows.push(
          el(
            "tr",
            { "data-testid": "event-row", "data-instance": inst.instance },
            el("td", {}, el("div", {}, serviceChip(svc.name)), el("div", { class: "mono small muted" }, inst.instance)),
            num(inst.outboxBacklog, "outbox-backlog"),
            num(inst.dlqMessages, "dlq-messages"),
          ),
        );
      }
    }
    if (rows.length === 0) return replace("events", el("p", { class: "empty" }, "No instance reports an outbox or a dead-letter queue."));
    replace("events", el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "instance"), el("th", { class: "num" }, "outbox backlog"), el("th", { class: "num" }, "DLQ"))), el("tbody", {}, rows)));
  }

  function renderState(s) {
    state = s;
    renderHeader(s);
    renderServices(s);
    renderClients(s);
    renderEvents(s);
  }

  // ---- traces ---------------------------------------------------------------------------------

  function renderTraces(list) {
    traces = list;
    if (list.length === 0) return replace("traces", el("p", { class: "empty" }, "No traces yet."));
    const rows = list.map((t) =>
      el(
        "tr",
        {
          "data-testid": "trace-row",
          "data-trace-id": t.traceId,
          class: "clickable" + (selected && selected.id === t.traceId ? " selected" : ""),
          tabindex: "0",
        },
        el(
          "td",
          { class: "trace-cell" },
          el("div", { class: "root-name ellipsis", title: t.rootName }, shortMethod(t.rootName)),
          el("div", { class: "trace-meta small muted" }, el("span", { class: "mono" }, fmtClock(t.startTime, true)), el("span", {}, t.spanCount === 1 ? "1 span" : t.spanCount + " spans"), t.services.map((x) => serviceChip(x))),
        ),
        el("td", { class: "num" }, el("div", { class: "trace-dur" }, fmtMs(t.durationMs)), el("span", { class: "badge " + (t.status === "error" ? "bad" : "ok") }, t.status)),
      ),
    );
    replace("traces", el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "trace"), el("th", { class: "num" }, "duration"))), el("tbody", {}, rows)));
    // Spans of a trace arrive from its instances over a poll or two: refresh the open waterfall.
    if (selected) {
      const t = list.find((x) => x.traceId === selected.id);
      if (t && t.spanCount !== selected.spanCount) void showTrace(selected.id);
    }
  }

  async function showTrace(id) {
    selected = { id, spanCount: -1 };
    for (const row of document.querySelectorAll('[data-testid="trace-row"]')) row.classList.toggle("selected", row.getAttribute("data-trace-id") === id);
    let detail;
    try {
      const res = await fetch("/api/traces/" + encodeURIComponent(id), { cache: "no-store" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      detail = await res.json();
    } catch (e) {
      replace("waterfall", el("p", { class: "empty" }, "Trace " + id + " is not available (" + e.message + ")."));
      return;
    }
    if (!selected || selected.id !== id) return;
    selected.spanCount = detail.spanCount;
    renderWaterfall(detail);
  }

  function renderWaterfall(detail) {
    const wf = detail.waterfall;
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { class: "tick", style: { left: f * 100 + "%" } }, fmtMs(wf.durationMs * f)));
    const rows = wf.rows.map((r) => {
      const cls = "bar " + r.kind + " " + (r.status === "error" ? "error" : "ok");
      const title = `${r.service} · ${r.name}\n${r.kind}, ${fmtMs(r.durationMs)} at +${fmtMs(r.startOffsetMs)}${r.instance ? "\n" + r.instance : ""}${r.statusMessage ? "\n" + r.statusMessage : ""}`;
      // Duration label: inside a wide bar, before a narrow one near the right edge, else after it.
      const end = r.offsetPct + r.widthPct;
      const place = r.widthPct > 25 ? "inside" : end > 75 ? "before" : "after";
      const labelStyle = place === "inside" ? { right: 100 - end + "%" } : place === "before" ? { right: 100 - r.offsetPct + "%" } : { left: end + "%" };
      const labelClass = "wf-dur" + (place === "after" ? "" : " " + place) + (place === "inside" && r.kind !== "server" ? " on-light" : "") + (r.status === "error" ? " err" : "");
      return el(
        "div",
        {
          class: "wf-row",
          "data-testid": "span-bar",
          "data-span-id": r.spanId,
          "data-parent-span-id": r.parentSpanId,
          "data-depth": r.depth,
          "data-service": r.service,
          "data-kind": r.kind,
          "data-status": r.status,
          "data-name": r.name,
          title,
        },
        el(
          "div",
          { class: "wf-label", style: { "padding-left": 8 + r.depth * 12 + "px" } },
          r.depth > 0 ? el("span", { class: "elbow", "aria-hidden": "true" }) : null,
          serviceChip(r.service),
          el("span", { class: "kind" }, r.kind),
          el("span", { class: "span-name" }, shortMethod(r.name)),
        ),
        el(
          "div",
          { class: "wf-track" },
          el("div", { class: cls, style: { left: r.offsetPct + "%", width: r.widthPct + "%" } }),
          el("span", { class: labelClass, style: labelStyle }, fmtMs(r.durationMs)),
        ),
      );
    });
    replace(
      "waterfall",
      el(
        "div",
        { "data-testid": "waterfall", "data-trace-id": detail.traceId },
        el(
          "div",
          { class: "wf-head" },
          el("div", {}, el("span", { class: "root-name" }, shortMethod(detail.rootName)), " ", el("span", { class: "badge " + (detail.status === "error" ? "bad" : "ok") }, detail.status)),
          el("div", { class: "small muted" }, el("span", { class: "mono" }, detail.traceId), ` · ${detail.spanCount} spans · ${fmtMs(detail.durationMs)} · ${fmtClock(detail.startTime, true)}`),
        ),
        el("div", { class: "wf-row wf-axis" }, el("div", { class: "wf-label small muted" }, "service · span"), el("div", { class: "wf-track" }, ticks)),
        rows,
        el(
          "div",
          { class: "legend small muted" },
          el("span", { class: "swatch server ok" }), "server ",
          // Client, messaging (producer / consumer) and internal spans share the light bar.
          el("span", { class: "swatch client ok" }), "client · messaging · internal ",
          el("span", { class: "swatch server error" }), "error",
        ),
      ),
    );
  }

  function onTraceActivate(ev) {
    if (ev.type === "keydown" && ev.key !== "Enter" && ev.key !== " ") return;
    const row = ev.target.closest('[data-testid="trace-row"]');
    if (!row) return;
    ev.preventDefault();
    void showTrace(row.getAttribute("data-trace-id"));
  }

  // ---- live updates ---------------------------------------------------------------------------

  function setConnection(s) {
    const dot = byTestId("connection");
    dot.setAttribute("data-state", s);
    dot.setAttribute("title", s);
  }

  function connect() {
    const es = new EventSource("/api/events");
    es.addEventListener("open", () => setConnection("live"));
    es.addEventListener("error", () => setConnection(es.readyState === EventSource.CLOSED ? "closed" : "reconnecting"));
    es.addEventListener("state", (e) => {
      setConnection("live");
      renderState(JSON.parse(e.data));
    });
    es.addEventListener("traces", (e) => renderTraces(JSON.parse(e.data).traces));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const tracesBox = document.getElementById("traces");
    tracesBox.addEventListener("click", onTraceActivate);
    tracesBox.addEventListener("keydown", onTraceActivate);
    connect();
  });
})();
