// The features: a list of the columns the drift checks test, sortable by drift, and one
// column's view: its p-value and score over the windows with their thresholds, its mean (or
// unseen share), and its distribution in a chosen window against the reference.

import { distribution } from "./bins.js";
import { chart, histogram } from "./charts.js";
import { comparedWith, reading, scoreName, scoreText } from "./checks.js";
import { clickable, h, isFinding, resultBadge } from "./dom.js";
import { DASH, fmtInt, fmtP, fmtPct, fmtScore, fmtTime, isNum } from "./format.js";

// The per-column checks a feature's drift is read from, inputs first.
export const DRIFT_CHECKS = ["univariate_drift", "prediction_drift"];
const ROLE_OF = { univariate_drift: "feature", prediction_drift: "output" };

const SORTS = {
  drift: (a, b) => rank(a) - rank(b) || pOf(a) - pOf(b) || a.name.localeCompare(b.name),
  name: (a, b) => a.name.localeCompare(b.name),
  score: (a, b) => (b.result.score ?? -Infinity) - (a.result.score ?? -Infinity),
  psi: (a, b) => psiOf(b) - psiOf(a),
  windows: (a, b) => b.drifted - a.drifted || pOf(a) - pOf(b),
};
const pOf = (row) => (isNum(row.result.p_value) ? row.result.p_value : 2);
const psiOf = (row) => {
  const psi = ((row.result.details || {}).effect_sizes || {}).psi;
  return isNum(psi) ? psi : -Infinity;
};
const rank = (row) => (isFinding(row.result) ? 0 : 1);

/** One row per tested column of ``focus`` (a window), with how many of ``rows`` it drifted in. */
export function featureRows(rows, focus) {
  if (!focus) return [];
  const drifted = new Map();
  for (const w of rows) {
    for (const r of w.results || []) {
      if (r.feature !== null && DRIFT_CHECKS.includes(r.detector) && isFinding(r)) {
        const key = `${r.detector}/${r.feature}`;
        drifted.set(key, (drifted.get(key) || 0) + 1);
      }
    }
  }
  return (focus.results || [])
    .filter((r) => r.feature !== null && DRIFT_CHECKS.includes(r.detector))
    .map((r) => ({
      name: r.feature,
      role: ROLE_OF[r.detector],
      result: r,
      drifted: drifted.get(`${r.detector}/${r.feature}`) || 0,
    }));
}

/**
 * The list. options: rows (windows in range), focus (the window it describes), sort
 * ({key, descending}), selected ({name, role} or null), onSort(key), onOpen(name, role).
 */
export function featureList({ rows, focus, sort, selected, onSort, onOpen }) {
  const list = featureRows(rows, focus);
  const head = h(
    "div",
    { class: "section-head" },
    h("h2", {}, "Features"),
    h(
      "span",
      { class: "muted" },
      focus ? `drift in window #${focus.id} (${fmtTime(focus.start)}); ${rows.length} windows in range` : "",
    ),
  );
  if (list.length === 0) {
    return h(
      "section",
      { class: "card features", id: "features" },
      head,
      h("p", { class: "muted quiet" }, "No drift results yet: the drift checks need a reference and a closed window."),
    );
  }
  const order = SORTS[sort.key] || SORTS.drift;
  const sorted = [...list].sort(order);
  if (sort.descending) sorted.reverse();
  const column = (key, text, numeric) =>
    h(
      "th",
      {
        class: numeric ? "num sortable" : "sortable",
        "data-sort": key,
        "aria-sort": sort.key === key ? (sort.descending ? "descending" : "ascending") : "none",
      },
      h("button", { type: "button", class: "sort", onclick: () => onSort(key) }, text, sort.key === key ? (sort.descending ? " \u25b4" : " \u25be") : ""),
    );
  const body = sorted.map((row) => {
    const r = row.result;
    const effects = (r.details || {}).effect_sizes || {};
    const parts = reading(r);
    const isSelected = selected && selected.name === row.name && selected.role === row.role;
    return h(
      "tr",
      clickable(
        { class: `feature-row${isFinding(r) ? " has-findings" : ""}${isSelected ? " selected" : ""}`, "data-feature": row.name, "data-role": row.role },
        () => onOpen(row.name, row.role),
      ),
      h("td", {}, h("span", { class: "column-name" }, row.name), " ", h("span", { class: "tag" }, row.role === "output" ? "output" : "input")),
      h("td", {}, resultBadge(r)),
      h("td", { class: "num" }, `${scoreName(r)} ${scoreText(r)}`),
      h("td", { class: "num p" }, fmtP(r.p_value)),
      h("td", { class: "num" }, parts.limit || DASH),
      h("td", { class: "num" }, fmtScore(effects.psi)),
      h("td", { class: "num" }, `${fmtInt(row.drifted)} of ${fmtInt(rows.length)}`),
    );
  });
  return h(
    "section",
    { class: "card features", id: "features" },
    head,
    h(
      "table",
      { class: "table feature-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          column("name", "Column"),
          column("drift", "Decision"),
          column("score", "Score", true),
          column("drift", "p-value", true),
          h("th", { class: "num" }, "Threshold"),
          column("psi", "PSI", true),
          column("windows", "Drifted in", true),
        ),
      ),
      h("tbody", {}, body),
    ),
  );
}

/**
 * One column's view. history: the feature-history answer (or null while it loads); pick: the
 * window drawn against the reference ({id, detail}); reference: the version's reference column
 * (or null); onPick(windowId), onSelect(windowId), onClose().
 */
export function featureView({ feature, history, pick, reference, selectedId, onPick, onSelect, onClose }) {
  const title = h(
    "div",
    { class: "section-head" },
    h("h2", {}, `Feature ${feature.name}`, h("span", { class: "tag" }, feature.role === "output" ? "output" : "input")),
    h("button", { type: "button", onclick: onClose }, "Close"),
  );
  if (!history) {
    return h("section", { class: "card feature-view", id: "feature-view" }, title, h("p", { class: "muted" }, "Loading\u2026"));
  }
  const check = feature.role === "output" ? "prediction_drift" : "univariate_drift";
  const rows = history.windows.map((w) => {
    const result = (w.results || []).find((r) => r.detector === check) || null;
    return { ...w, result, findings: (w.results || []).filter(isFinding) };
  });
  const latest = [...rows].reverse().find((r) => r.result && isNum(r.result.threshold));
  const latestResult = latest ? latest.result : null;
  const onThreshold = latestResult ? comparedWith(latestResult) : null;
  const name = latestResult ? scoreName(latestResult) : "score";
  const pick_ = { selectedId, onSelect };
  const charts = [
    chart("p-value (log scale)", rows, [{ values: rows.map((r) => r.result && r.result.p_value), cls: "s-p" }], {
      ...pick_,
      name: "p-value",
      log: true,
      kind: "p",
      format: fmtP,
      threshold: onThreshold === "p" ? latestResult.threshold : null,
      thresholdLabel: onThreshold === "p" ? `\u03b1 ${fmtP(latestResult.threshold)}` : null,
      empty: "no drift test yet",
    }),
    chart(`Score: ${name}`, rows, [{ values: rows.map((r) => r.result && r.result.score), cls: "s-score" }], {
      ...pick_,
      name: "score",
      kind: "score",
      format: fmtScore,
      threshold: onThreshold === "score" ? latestResult.threshold : null,
      thresholdLabel: onThreshold === "score" ? reading(latestResult).limit : null,
      empty: "no drift test yet",
    }),
  ];
  const numeric = rows.some((r) => r.column && r.column.kind === "numeric");
  if (numeric) {
    charts.push(
      chart("Mean", rows, [{ values: rows.map((r) => r.column && r.column.mean), cls: "s-mean" }], {
        ...pick_,
        name: "mean",
        kind: "score",
        format: fmtScore,
        threshold: isNum(reference && reference.mean) ? reference.mean : null,
        thresholdLabel: isNum(reference && reference.mean) ? `reference ${fmtScore(reference.mean)}` : null,
      }),
    );
  } else {
    charts.push(
      chart(
        "Unseen categories",
        rows,
        [{ values: rows.map((r) => (r.column && r.column.count ? r.column.unseen / r.column.count : null)), cls: "s-error" }],
        { ...pick_, name: "unseen", kind: "pct", format: fmtPct, max: 1 },
      ),
    );
  }
  const truncated = history.truncated
    ? h("p", { class: "muted" }, `Only the oldest ${fmtInt(history.windows.length)} windows of the range are drawn.`)
    : null;
  return h(
    "section",
    { class: "card feature-view", id: "feature-view", "data-feature": feature.name },
    title,
    latestResult ? h("p", { class: "feature-reading" }, `Latest test (window ${fmtTime(latest.start)}): `, resultBadge(latestResult), " ", latestResult.message) : null,
    truncated,
    h("div", { class: "charts" }, charts),
    distributionPanel(rows, pick, reference, feature, onPick),
  );
}

function distributionPanel(rows, pick, reference, feature, onPick) {
  const choices = [...rows].reverse().filter((r) => r.column);
  const chooser = h(
    "select",
    { "aria-label": "window drawn against the reference", class: "hist-window", onchange: (event) => onPick(Number(event.target.value)) },
    choices.map((r) => h("option", { value: r.id, selected: pick && r.id === pick.id }, `window #${r.id}, ${fmtTime(r.start)}`)),
  );
  const head = h("div", { class: "section-head" }, h("h3", {}, "Distribution against the reference"), choices.length ? chooser : null);
  if (!pick || !pick.detail) return h("div", { class: "distribution" }, head, h("p", { class: "muted" }, choices.length ? "Loading\u2026" : "No evaluated window yet."));
  const columns = ((pick.detail.summary || {}).columns || {}).columns || [];
  const column = columns.find((c) => c.name === feature.name && c.role === feature.role);
  if (!column) return h("div", { class: "distribution" }, head, h("p", { class: "muted" }, `Window #${pick.id} has no column ${feature.name}.`));
  const drawn = distribution(column, reference);
  if (drawn === null) {
    return h("div", { class: "distribution" }, head, h("p", { class: "muted" }, "No bins: the window opened before the version had a reference."));
  }
  const figure = histogram(`${feature.name} in window #${pick.id} (${fmtInt(drawn.window.reduce((a, b) => a + b, 0))} rows)`, {
    ...drawn,
    windowName: `window #${pick.id}`,
  });
  return h("div", { class: "distribution" }, head, figure);
}
