// One window: its facts, every check result (failures first) and its column summaries.

import { distribution, shares } from "./bins.js";
import { miniBars } from "./charts.js";
import { readingText, scoreName, scoreText } from "./checks.js";
import { badge, h, resultBadge, resultKind, resultRank } from "./dom.js";
import { estimateFacts, shiftFact } from "./estimate.js";
import { DASH, fmtInt, fmtMs, fmtP, fmtPct, fmtScore, fmtSeconds, fmtTime, isNum } from "./format.js";

/** references: the version's reference columns by "role/name"; onClose(): hide the detail;
 * onFeature(name, role): open a column's view. */
export function windowDetail(detail, references, onClose, onFeature) {
  const summary = detail.summary || {};
  const latency = summary.latency || {};
  const perf = summary.performance || {};
  const delay = perf.label_delay_seconds || {};
  const errorsByType = Object.entries(summary.errors_by_type || {})
    .map(([type, count]) => `${type} \u00d7${count}`)
    .join(", ");
  const issues = Object.entries(summary.issues || {})
    .map(([issue, count]) => `${issue} \u00d7${count}`)
    .join(", ");
  const facts = [
    ["requests", fmtInt(detail.requests)],
    ["rows", fmtInt(detail.rows)],
    ["errors", `${fmtInt(summary.errors)} (${fmtPct(detail.error_rate)})${errorsByType ? `: ${errorsByType}` : ""}`],
    ["latency p50 / p95 / p99 / max", [latency.p50_ms, latency.p95_ms, latency.p99_ms, latency.max_ms].map(fmtMs).join(" / ")],
    ["labelled", `${fmtInt(detail.labelled)} (${fmtPct(detail.label_coverage)})`],
    isNum(perf.accuracy) ? ["accuracy", `${fmtScore(perf.accuracy)} on ${fmtInt(perf.scored)} rows`] : null,
    isNum(perf.mae) ? ["MAE / RMSE", `${fmtScore(perf.mae)} / ${fmtScore(perf.rmse)}`] : null,
    ...estimateFacts(summary),
    shiftFact(detail.shift),
    isNum(delay.p50) ? ["label delay p50 / p95 / max", [delay.p50, delay.p95, delay.max].map(fmtSeconds).join(" / ")] : null,
    ["batches with issues", `${fmtInt(summary.batches_with_issues)}${issues ? `: ${issues}` : ""}`],
    ["reference", summary.reference === true ? "yes" : summary.reference === false ? "none yet" : DASH],
    ["evaluated", detail.evaluated_at ? fmtTime(detail.evaluated_at) : "not yet (running state)"],
  ].filter(Boolean);
  return h(
    "section",
    { class: "card detail", id: "window-detail" },
    h(
      "div",
      { class: "section-head" },
      h(
        "h2",
        {},
        `Window #${detail.id}: ${fmtTime(detail.start)} \u2013 ${fmtTime(detail.end)}`,
        detail.closed ? null : badge("open", "open"),
      ),
      h("button", { type: "button", onclick: onClose }, "Close"),
    ),
    h("p", { class: "muted" }, `${detail.start} \u2013 ${detail.end} (UTC), version ${detail.version}`),
    h(
      "dl",
      { class: "facts" },
      facts.map(([name, value]) => h("div", { class: "fact" }, h("dt", {}, name), h("dd", {}, value))),
    ),
    h("h3", {}, "Checks"),
    resultsTable(detail.results || []),
    schemaNotes(summary.columns),
    h("h3", {}, "Feature summaries"),
    columnsTable(summary.columns, references, onFeature),
  );
}

function resultsTable(results) {
  if (results.length === 0) return h("p", { class: "muted" }, "No check results yet: the window is evaluated when it closes.");
  const sorted = [...results].sort(
    (a, b) =>
      resultRank(a) - resultRank(b) ||
      a.detector.localeCompare(b.detector) ||
      (a.feature || "").localeCompare(b.feature || ""),
  );
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "table results" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Decision", "Check", "Column", "Against its threshold", "Score", "p-value", "Message"].map((t) =>
            h("th", { class: ["Score", "p-value"].includes(t) ? "num" : null }, t),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        sorted.map((r) =>
          h(
            "tr",
            { class: `result result-${resultKind(r)}`, "data-check": r.detector, "data-feature": r.feature },
            h("td", {}, resultBadge(r)),
            h("td", {}, r.detector),
            h("td", {}, r.feature === null ? h("span", { class: "muted" }, "(window)") : r.feature),
            h("td", { class: "reading" }, readingText(r)),
            h("td", { class: "num", title: scoreName(r) }, isNum(r.score) ? `${scoreName(r)} ${scoreText(r)}` : DASH),
            h("td", { class: "num" }, fmtP(r.p_value)),
            h("td", { class: "message" }, r.message),
          ),
        ),
      ),
    ),
  );
}

function schemaNotes(columns) {
  if (!columns) return null;
  const notes = [
    ["type mismatch", columns.type_mismatch],
    ["missing (in the reference, not here)", columns.absent],
    ["new (not in the reference)", columns.new],
  ].filter(([, names]) => names && names.length);
  if (!notes.length) return null;
  return h(
    "ul",
    { class: "schema-notes" },
    notes.map(([what, names]) =>
      h("li", {}, h("strong", {}, `${what}: `), names.map((n) => (Array.isArray(n) ? n.join(" ") : n)).join(", ")),
    ),
  );
}

function columnsTable(columns, references, onFeature) {
  const list = (columns && columns.columns) || [];
  if (list.length === 0) return h("p", { class: "muted" }, "No column summaries in this window.");
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "table columns" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "Column"),
          h("th", { class: "num" }, "Count"),
          h("th", { class: "num" }, "Missing"),
          h("th", { class: "num" }, "Mean \u00b1 sd"),
          h("th", { class: "num" }, "Min"),
          h("th", { class: "num" }, "Max"),
          h(
            "th",
            {},
            "Distribution ",
            h("span", { class: "swatch swatch-window" }),
            " this window ",
            h("span", { class: "swatch swatch-reference" }),
            " reference",
          ),
        ),
      ),
      h("tbody", {}, list.map((c) => columnRow(c, references.get(`${c.role}/${c.name}`), onFeature))),
    ),
  );
}

function columnRow(column, reference, onFeature) {
  const name = h(
    "td",
    {},
    h("button", { type: "button", class: "link column-name", title: "open this column's history", onclick: () => onFeature(column.name, column.role) }, column.name),
    " ",
    h("span", { class: "tag" }, `${column.role}, ${column.kind}`),
  );
  if (column.kind === "numeric") {
    const sd = column.count > 1 && isNum(column.m2) ? Math.sqrt(column.m2 / (column.count - 1)) : null;
    const missing = (column.missing || 0) + (column.non_finite || 0);
    return h(
      "tr",
      {},
      name,
      h("td", { class: "num" }, fmtInt(column.count)),
      h("td", { class: "num", title: column.non_finite ? `${column.non_finite} not finite` : null }, fmtInt(missing)),
      h("td", { class: "num" }, isNum(column.mean) ? `${fmtScore(column.mean)} \u00b1 ${fmtScore(sd)}` : DASH),
      h("td", { class: "num" }, fmtScore(column.min)),
      h("td", { class: "num" }, fmtScore(column.max)),
      h("td", {}, bars(column, reference)),
    );
  }
  const counts = column.counts || {};
  const seen = Object.values(counts).reduce((a, b) => a + b, 0) + (column.other || 0);
  const categories = Object.keys(counts).length + (column.other_distinct || 0);
  const top = Object.entries(counts).sort((a, b) => b[1] - a[1])[0];
  return h(
    "tr",
    {},
    name,
    h("td", { class: "num" }, fmtInt(seen)),
    h("td", { class: "num" }, fmtInt(column.missing)),
    h(
      "td",
      { class: "num", colspan: 3 },
      `${fmtInt(categories)} categories${top ? `, most: ${top[0]} (${fmtPct(top[1] / seen)})` : ""}`,
      column.unseen ? `, ${fmtInt(column.unseen)} rows of unseen categories` : "",
    ),
    h("td", {}, bars(column, reference)),
  );
}

function bars(column, reference) {
  const drawn = distribution(column, reference);
  if (drawn === null) return h("span", { class: "muted" }, "no bins (no reference when the window opened)");
  return miniBars(drawn.labels, shares(drawn.window), drawn.reference ? shares(drawn.reference) : null);
}
