// Inline SVG charts: a timeline strip per metric, a histogram of a column against the
// reference, and small bars in tables.

import { h, svg } from "./dom.js";
import { axisTicks, DASH, fmtInt, fmtPct, fmtTime, isNum, niceCeil, niceTicks, tickFormatter } from "./format.js";

// p-values below this are drawn at the bottom of a log axis (their value is in the tooltip).
const LOG_FLOOR = 1e-12;

/**
 * One metric over the windows (oldest left), windows with findings shaded.
 * options: format (a value's text), kind (its axis: "count", "pct", "score", "ms", "p"),
 * log (log axis, for p-values), bars, max (the quantity's bound, e.g. 1 for a rate), threshold,
 * thresholdLabel, empty (text when there is no value), selectedId, onSelect(windowId), name
 * (data-chart attribute). A series with lower and upper (one per window, like values) is
 * drawn with its band shaded behind it.
 */
export function chart(title, rows, series, options) {
  const W = 560;
  const H = 140;
  const left = 58;
  const right = 12;
  const top = 10;
  const bottom = 24;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const n = rows.length;
  const step = plotW / Math.max(n, 1);
  const x = (i) => left + (i + 0.5) * step;
  const values = series.flatMap((s) => [...s.values, ...(s.lower || []), ...(s.upper || [])].filter(isNum));
  const threshold = isNum(options.threshold) ? options.threshold : null;
  const latest = series.map((s) => [s.name, [...s.values].reverse().find(isNum)]);
  const head = h(
    "div",
    { class: "chart-head" },
    h("span", { class: "chart-title" }, title),
    h(
      "span",
      { class: "chart-latest", title: "the latest window's value" },
      latest.map(([name, value], i) =>
        h("span", { class: `latest ${series[i].cls}` }, name ? `${name} ` : "", value === undefined ? DASH : options.format(value)),
      ),
    ),
  );
  const figure = (...body) => h("figure", { class: "chart card", "data-chart": options.name || null }, head, ...body);
  if (values.length === 0) return figure(h("p", { class: "chart-empty muted" }, options.empty || "no data yet"));

  let y;
  let ticks;
  let axisFormat;
  if (options.log) {
    const smallest = Math.max(LOG_FLOOR, Math.min(...values.filter((v) => v > 0), threshold || 1, 0.01));
    const decades = Math.ceil(-Math.log10(smallest));
    const lo = -decades;
    y = (v) => top + (-Math.log10(Math.max(v, 10 ** lo)) / decades) * plotH;
    const every = Math.max(1, Math.ceil(decades / 4));
    ticks = [];
    for (let d = 0; d <= decades; d += every) ticks.push(10 ** -d);
    axisFormat = tickFormatter("p", ticks);
  } else {
    const bound = isNum(options.max) ? options.max : null;
    let yMax = niceCeil(Math.max(...values, threshold === null ? 0 : threshold * 1.1));
    // A bounded quantity's axis never passes its bound (an accuracy axis stops at 1).
    if (bound !== null && Math.max(...values, threshold || 0) <= bound) yMax = Math.min(yMax, bound);
    const yMin = Math.min(0, ...values);
    ticks = axisTicks(options.kind, yMin, yMax, 4);
    axisFormat = tickFormatter(options.kind, ticks);
    y = (v) => top + plotH - ((v - yMin) / (yMax - yMin)) * plotH;
  }

  const marks = [];
  rows.forEach((r, i) => {
    if (r.findings && r.findings.length) {
      marks.push(svg("rect", { class: "band-finding", x: x(i) - step / 2, y: top, width: step, height: plotH }));
    }
    if (r.id === options.selectedId) {
      marks.push(svg("rect", { class: "band-selected", x: x(i) - step / 2, y: top, width: step, height: plotH }));
    }
  });
  const grid = ticks.map((v) => [
    svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
    svg("text", { class: "axis axis-y", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, axisFormat(v)),
  ]);
  const base = options.log ? top + plotH : y(Math.max(0, ticks[0]));
  const bands = series.filter((s) => s.lower && s.upper).map((s) => bandShape(s, x, y, step));
  const shapes = series.map((s) => {
    if (options.bars) {
      const width = Math.min(Math.max(1, step * 0.7), 48);
      return s.values.map((v, i) =>
        isNum(v) ? svg("rect", { class: `bar ${s.cls}`, x: x(i) - width / 2, y: y(v), width, height: Math.max(0, base - y(v)) }) : null,
      );
    }
    let d = "";
    let pen = false;
    s.values.forEach((v, i) => {
      if (!isNum(v)) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    const dots = n <= 120 ? s.values.map((v, i) => (isNum(v) ? svg("circle", { class: `dot ${s.cls}`, cx: x(i), cy: y(v), r: 2.5 }) : null)) : [];
    return [svg("path", { class: `line ${s.cls}`, d }), dots];
  });
  const limit =
    threshold !== null
      ? [
          svg("line", { class: "threshold", x1: left, x2: W - right, y1: y(threshold), y2: y(threshold) }),
          svg(
            "text",
            { class: "threshold-label", x: W - right - 2, y: y(threshold) - 3, "text-anchor": "end" },
            options.thresholdLabel || `threshold ${options.format(threshold)}`,
          ),
        ]
      : null;
  const xLabels = [
    svg("text", { class: "axis", x: left, y: H - 6, "text-anchor": "start" }, fmtTime(rows[0].start)),
    n > 2 ? svg("text", { class: "axis", x: x(Math.floor((n - 1) / 2)), y: H - 6, "text-anchor": "middle" }, fmtTime(rows[Math.floor((n - 1) / 2)].start)) : null,
    n > 1 ? svg("text", { class: "axis", x: W - right, y: H - 6, "text-anchor": "end" }, fmtTime(rows[n - 1].start)) : null,
  ];
  const hits = rows.map((r, i) =>
    svg(
      "rect",
      {
        class: "hit",
        "data-window": r.id,
        x: x(i) - step / 2,
        y: top,
        width: step,
        height: plotH,
        onclick: options.onSelect ? () => options.onSelect(r.id) : null,
      },
      svg(
        "title",
        {},
        `${fmtTime(r.start)}: ${series
          .map((s) => `${s.name || title} ${isNum(s.values[i]) ? options.format(s.values[i]) : DASH}${bandOf(s, i, options.format)}`)
          .join(", ")}${r.findings && r.findings.length ? ` \u2014 ${r.findings.length} finding(s)` : ""}`,
      ),
    ),
  );
  const picture = svg(
    "svg",
    { class: "chart-svg", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title },
    marks,
    grid,
    bands,
    shapes,
    limit,
    xLabels,
    hits,
  );
  return figure(picture);
}

/** The band of a series: one shaded path per run of windows that have both ends (a lone
 * window's band is a bar of its own width). */
function bandShape(s, x, y, step) {
  const runs = [];
  let run = [];
  s.values.forEach((_, i) => {
    if (isNum(s.lower[i]) && isNum(s.upper[i])) {
      run.push(i);
    } else if (run.length) {
      runs.push(run);
      run = [];
    }
  });
  if (run.length) runs.push(run);
  return runs.map((r) => {
    const pad = r.length === 1 ? step * 0.3 : 0;
    const upper = r.map((i, k) => `${k ? "L" : "M"}${(x(i) - (k === 0 ? pad : 0)).toFixed(1)},${y(s.upper[i]).toFixed(1)}`);
    if (pad) upper.push(`L${(x(r[0]) + pad).toFixed(1)},${y(s.upper[r[0]]).toFixed(1)}`);
    const lower = [...r].reverse().map((i) => `L${(x(i) + (pad && i === r[0] ? pad : 0)).toFixed(1)},${y(s.lower[i]).toFixed(1)}`);
    if (pad) lower.push(`L${(x(r[0]) - pad).toFixed(1)},${y(s.lower[r[0]]).toFixed(1)}`);
    return svg("path", { class: `band-estimate ${s.cls}`, d: `${upper.join("")}${lower.join("")}Z` });
  });
}

const bandOf = (s, i, format) =>
  s.lower && isNum(s.lower[i]) && isNum(s.upper[i]) ? ` (${format(s.lower[i])}–${format(s.upper[i])})` : "";

/**
 * A column of one window against the reference, as shares of their rows: bins (labels, one
 * per bin, and edges, the bin boundaries printed under the axis) for numbers, one bar pair per
 * category otherwise. window and reference are counts (reference may be null).
 */
export function histogram(title, { labels, edges, window, reference, windowName }) {
  const W = 720;
  const H = 240;
  const left = 52;
  const right = 12;
  const top = 14;
  const bottom = edges ? 44 : 70;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const n = labels.length;
  const step = plotW / n;
  const share = (counts) => {
    const total = counts.reduce((a, b) => a + b, 0);
    return counts.map((c) => (total ? c / total : 0));
  };
  const here = share(window);
  const there = reference ? share(reference) : null;
  const yMax = Math.min(1, niceCeil(Math.max(...here, ...(there || [0]), 0.01)));
  const ticks = niceTicks(0, yMax, 4);
  const axisFormat = tickFormatter("pct", ticks);
  const y = (v) => top + plotH - (v / yMax) * plotH;
  const grid = ticks.map((v) => [
    svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
    svg("text", { class: "axis axis-y", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, axisFormat(v)),
  ]);
  const pair = there ? 0.42 : 0.8;
  const bars = labels.map((label, i) => {
    const x0 = left + i * step;
    const barW = step * pair;
    const pad = (step - barW * (there ? 2 : 1)) / 2;
    return [
      there
        ? svg("rect", { class: "hist-ref", x: x0 + pad, y: y(there[i]), width: barW, height: top + plotH - y(there[i]) })
        : null,
      svg("rect", {
        class: "hist-win",
        x: x0 + pad + (there ? barW : 0),
        y: y(here[i]),
        width: barW,
        height: top + plotH - y(here[i]),
      }),
      svg(
        "rect",
        { class: "hit", "data-bin": i, x: x0, y: top, width: step, height: plotH },
        svg(
          "title",
          {},
          `${label}: ${windowName} ${fmtPct(here[i])} (${fmtInt(window[i])} rows)` +
            (there ? `, reference ${fmtPct(there[i])} (${fmtInt(reference[i])} rows)` : ""),
        ),
      ),
    ];
  });
  const axis = svg("line", { class: "axis-line", x1: left, x2: W - right, y1: top + plotH, y2: top + plotH });
  // Numbers: the bin edges under the boundaries (every k-th, so they do not overlap).
  // Categories: each name under its bars, slanted.
  let xLabels;
  if (edges) {
    const every = Math.max(1, Math.ceil(edges.length / 10));
    xLabels = edges.map((edge, i) =>
      i % every === 0 || i === edges.length - 1
        ? svg("text", { class: "axis axis-x", x: left + (i + 1) * step, y: top + plotH + 14, "text-anchor": "middle" }, edge)
        : null,
    );
  } else {
    xLabels = labels.map((label, i) => {
      const cx = left + (i + 0.5) * step;
      const cy = top + plotH + 12;
      const shown = label.length > 14 ? `${label.slice(0, 13)}\u2026` : label;
      return svg("text", { class: "axis axis-x", x: cx, y: cy, "text-anchor": "end", transform: `rotate(-35 ${cx} ${cy})` }, shown);
    });
  }
  const caption = svg(
    "text",
    { class: "axis", x: left + plotW / 2, y: H - 4, "text-anchor": "middle" },
    edges ? "value (bin edges frozen on the reference)" : "category",
  );
  const yCaption = svg("text", { class: "axis", x: 12, y: top + plotH / 2, transform: `rotate(-90 12 ${top + plotH / 2})`, "text-anchor": "middle" }, "share of rows");
  return h(
    "figure",
    { class: "chart card histogram" },
    h(
      "div",
      { class: "chart-head" },
      h("span", { class: "chart-title" }, title),
      h(
        "span",
        { class: "legend muted" },
        h("span", { class: "swatch swatch-window" }),
        windowName,
        there ? [h("span", { class: "swatch swatch-reference" }), "reference"] : " (no reference)",
      ),
    ),
    svg("svg", { class: "chart-svg", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title }, grid, bars, axis, xLabels, caption, yCaption),
  );
}

export function miniBars(labels, window, reference) {
  const W = 220;
  const H = 40;
  const n = labels.length;
  const step = W / n;
  const top = Math.max(...window, ...(reference || [0]), 1e-9);
  const bars = labels.map((label, i) => {
    const x = i * step;
    const tall = (p) => (p / top) * (H - 2);
    const ref = reference ? reference[i] : null;
    return [
      ref !== null
        ? [
            svg("rect", { class: "mini-ref", x: x + step * 0.05, y: H - tall(ref), width: step * 0.9, height: tall(ref) }),
            // A tick at the reference's height stays visible when the bar is short.
            svg("line", { class: "mini-ref-top", x1: x + step * 0.05, x2: x + step * 0.95, y1: H - tall(ref), y2: H - tall(ref) }),
          ]
        : null,
      svg("rect", { class: "mini-win", x: x + step * 0.25, y: H - tall(window[i]), width: step * 0.5, height: tall(window[i]) }),
      svg(
        "rect",
        { class: "hit", x, y: 0, width: step, height: H },
        svg("title", {}, `${label}: this window ${fmtPct(window[i])}${ref !== null ? `, reference ${fmtPct(ref)}` : ""}`),
      ),
    ];
  });
  return h(
    "span",
    { class: "mini" },
    svg("svg", { class: "mini-svg", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "distribution" }, bars),
    reference ? null : h("span", { class: "muted mini-note" }, " no reference"),
  );
}
