// Inline SVG charts: a timeline strip per metric, and small bars against the reference.

import { h, svg } from "./dom.js";
import { DASH, fmtPct, fmtTime, isNum } from "./format.js";

/**
 * One metric over the windows (oldest left), windows with findings shaded.
 * options: format, bars, max, threshold, empty (text when there is no value), selectedId,
 * onSelect(windowId) for a click on a window.
 */
export function chart(title, rows, series, options) {
  const W = 560;
  const H = 130;
  const left = 56;
  const right = 10;
  const top = 10;
  const bottom = 22;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const n = rows.length;
  const step = plotW / n;
  const x = (i) => left + (i + 0.5) * step;
  const values = series.flatMap((s) => s.values.filter(isNum));
  const threshold = isNum(options.threshold) ? options.threshold : null;
  const latest = series.map((s) => [s.name, [...s.values].reverse().find(isNum)]);
  const head = h(
    "div",
    { class: "chart-head" },
    h("span", { class: "chart-title" }, title),
    h(
      "span",
      { class: "chart-latest" },
      latest.map(([name, value], i) =>
        h(
          "span",
          { class: `latest ${series[i].cls}` },
          name ? `${name} ` : "",
          value === undefined ? DASH : options.format(value),
        ),
      ),
    ),
  );
  if (values.length === 0) {
    return h("figure", { class: "chart card" }, head, h("p", { class: "chart-empty muted" }, options.empty || "no data yet"));
  }
  let yMax = Math.max(...values, threshold === null ? 0 : threshold * 1.15);
  if (isNum(options.max)) yMax = Math.max(options.max, yMax);
  if (yMax <= 0) yMax = 1;
  const yMin = 0;
  const y = (v) => top + plotH - ((v - yMin) / (yMax - yMin)) * plotH;

  const marks = [];
  rows.forEach((r, i) => {
    if (r.findings.length) {
      marks.push(svg("rect", { class: "band-finding", x: x(i) - step / 2, y: top, width: step, height: plotH }));
    }
    if (r.id === options.selectedId) {
      marks.push(svg("rect", { class: "band-selected", x: x(i) - step / 2, y: top, width: step, height: plotH }));
    }
  });
  const grid = [0, 0.5, 1].map((f) => {
    const v = yMin + f * (yMax - yMin);
    return [
      svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
      svg("text", { class: "axis", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, options.format(v)),
    ];
  });
  const shapes = series.map((s) => {
    if (options.bars) {
      const width = Math.min(Math.max(1, step * 0.7), 48);
      return s.values.map((v, i) =>
        isNum(v)
          ? svg("rect", { class: `bar ${s.cls}`, x: x(i) - width / 2, y: y(v), width, height: y(yMin) - y(v) })
          : null,
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
    const dots = n <= 80 ? s.values.map((v, i) => (isNum(v) ? svg("circle", { class: `dot ${s.cls}`, cx: x(i), cy: y(v), r: 2.5 }) : null)) : [];
    return [svg("path", { class: `line ${s.cls}`, d }), dots];
  });
  const limit =
    threshold !== null
      ? svg("line", { class: "threshold", x1: left, x2: W - right, y1: y(threshold), y2: y(threshold) }, svg("title", {}, `threshold ${options.format(threshold)}`))
      : null;
  const xLabels = [
    svg("text", { class: "axis", x: left, y: H - 6, "text-anchor": "start" }, fmtTime(rows[0].start)),
    n > 1 ? svg("text", { class: "axis", x: W - right, y: H - 6, "text-anchor": "end" }, fmtTime(rows[n - 1].start)) : null,
  ];
  const hits = rows.map((r, i) =>
    svg(
      "rect",
      {
        class: "hit",
        x: x(i) - step / 2,
        y: top,
        width: step,
        height: plotH,
        onclick: () => options.onSelect(r.id),
      },
      svg(
        "title",
        {},
        `${fmtTime(r.start)}: ${series
          .map((s) => `${s.name || title} ${isNum(s.values[i]) ? options.format(s.values[i]) : DASH}`)
          .join(", ")}${r.findings.length ? ` \u2014 ${r.findings.length} finding(s)` : ""}`,
      ),
    ),
  );
  const picture = svg(
    "svg",
    { class: "chart-svg", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title },
    marks,
    grid,
    shapes,
    limit,
    xLabels,
    hits,
  );
  return h("figure", { class: "chart card" }, head, picture);
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
        { class: "hit" , x, y: 0, width: step, height: H },
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
