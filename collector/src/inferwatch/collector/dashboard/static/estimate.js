// Performance estimated before labels (the estimated_performance check, CBPE or DLE), shown
// as an estimate: marked "est", with its band, beside the realized value once labels land.

import { h } from "./dom.js";
import { DASH, fmtScore, isNum } from "./format.js";

const CHECK = "estimated_performance";
const METHODS = { cbpe: "CBPE", dle: "DLE" };

/** A window's estimate of one metric from its result rows (the list's), or null: value,
 * lower, upper, realized (null before labels), decision, handedOver (labels replaced it). */
export function windowEstimate(results, metric) {
  const row = (results || []).find((r) => r.detector === CHECK && (r.details || {}).metric === metric);
  if (!row || !isNum(row.score)) return null;
  const d = row.details;
  return {
    value: row.score,
    lower: isNum(d.lower) ? d.lower : null,
    upper: isNum(d.upper) ? d.upper : null,
    realized: isNum(d.realized) ? d.realized : null,
    decision: row.decision,
    handedOver: d.labels_suffice === true,
  };
}

export const bandText = (e) =>
  isNum(e.lower) && isNum(e.upper) ? `${fmtScore(e.lower)}\u2013${fmtScore(e.upper)}` : DASH;

/** The windows table's metric cell: the realized value, and the estimate beside it (marked
 * "est"); the estimate alone before labels. */
export function metricCell(realized, estimate) {
  const est = estimate
    ? h(
        "span",
        { class: "estimate", title: `estimated without labels, band ${bandText(estimate)}` },
        `~${fmtScore(estimate.value)} est`,
      )
    : null;
  if (!isNum(realized)) return est || DASH;
  return est ? [h("span", { class: "realized" }, fmtScore(realized)), " ", est] : fmtScore(realized);
}

/** The window detail's facts: each estimated metric with its band and, once labels give it, the
 * realized value; or why there is no estimate. */
export function estimateFacts(summary) {
  const est = summary && summary.estimated_performance;
  if (!est) return [];
  const by = METHODS[est.method] || est.method || "the estimator";
  if (!est.trusted) {
    const why = (est.reasons || []).join("; ") || "the estimate cannot be trusted";
    return [["estimated performance", h("span", { class: "muted estimate-none" }, `none: ${why}`)]];
  }
  const level = isNum(est.confidence) ? `${Math.round(est.confidence * 100)}% band` : "band";
  return Object.entries(est.metrics || {}).map(([metric, m]) => [
    `estimated ${metric}`,
    h(
      "span",
      { class: "estimate-fact", "data-metric": metric },
      h("span", { class: "estimate" }, `~${fmtScore(m.value)} est`),
      ` (${level} ${bandText(m)}; ${by} on ${(est.rows || 0).toLocaleString("en-US")} unlabelled rows)`,
      isNum(m.realized)
        ? h("span", { class: "realized-beside" }, `, realized ${fmtScore(m.realized)}${est.labels_suffice ? " (replaces it)" : ""}`)
        : h("span", { class: "muted" }, ", no labels yet"),
    ),
  ]);
}

/** The shift verdict sentence, as the window's shift_verdict result says it. */
export function shiftFact(shift) {
  if (!shift) return null;
  return ["shift verdict", h("span", { class: `shift shift-${shift.verdict}` }, shift.message)];
}
