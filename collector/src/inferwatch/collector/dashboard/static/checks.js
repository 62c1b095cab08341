// What each check's numbers mean: which of score and p-value its threshold is compared with,
// and on which scale, so that a score is never shown beside a threshold of another scale.
// (The outlier check's threshold, for instance, is the cut on one row's outlier score, while its
// score is the share of rows flagged and its decision rests on the p-value.)

import { h } from "./dom.js";
import { DASH, fmtP, fmtPct, fmtScore, isNum } from "./format.js";

// Checks whose threshold is the significance level their p-value is compared with.
const P_TESTS = new Set([
  "univariate_drift",
  "prediction_drift",
  "label_drift",
  "multivariate_drift",
  "correlation_drift",
  "reconstruction_drift",
]);
// Checks whose score is a share compared with a share: [direction that fails].
const SHARES = { error_rate: "above", data_quality: "above", schema: "above", label_coverage: "below" };
const LEVEL_WORDS = { static: "", reference: "calibrated ", history: "learned " };
// "ks": results stored before numeric features also got a Mann-Whitney test ("ks_mw").
const TEST_NAMES = { ks: "KS D", ks_mw: "KS D", chi2: "\u03c7\u00b2", binned_chi2: "\u03c7\u00b2 (binned)" };

const above = (value, limit) => (value > limit ? ">" : "\u2264");
const below = (value, limit) => (value < limit ? "<" : "\u2265");
const versus = (direction, value, limit) =>
  !isNum(value) || !isNum(limit) ? "vs" : direction === "below" ? below(value, limit) : above(value, limit);

/** The name of a result's score: "KS D", "MMD²", "accuracy", "rows flagged", or "score". */
export function scoreName(result) {
  const details = result.details || {};
  if (details.test && TEST_NAMES[details.test]) return TEST_NAMES[details.test];
  if (result.detector === "multivariate_drift") return details.method === "classifier" ? "classifier AUC" : "MMD\u00b2";
  if (result.detector === "label_drift") return "\u03c7\u00b2";
  if (result.detector === "correlation_drift") return "correlation change";
  if (result.detector === "reconstruction_drift") return "mean reconstruction error";
  if (result.detector === "performance" && details.metric) return details.metric;
  if (result.detector === "outliers") return "rows flagged";
  if (result.detector === "error_rate") return "error rate";
  if (result.detector === "label_coverage") return "coverage";
  if (result.detector === "data_quality") return "requests with issues";
  if (result.detector === "schema") return "rows affected";
  if (P_TESTS.has(result.detector) && result.feature === null) return "columns drifted";
  return "score";
}

/** How a result's score reads on its own scale: "0.3730", "25.0%", "2 of 3". */
export function scoreText(result) {
  const details = result.details || {};
  if (!isNum(result.score)) return DASH;
  if (result.detector in SHARES || result.detector === "outliers") return fmtPct(result.score);
  if (P_TESTS.has(result.detector) && result.feature === null && isNum(details.features_tested)) {
    const drifted = (details.features_drifted || []).length;
    return `${drifted} of ${details.features_tested}`;
  }
  return fmtScore(result.score);
}

/** What the threshold of a result is compared with: "p", "score" or null (none shown). */
export function comparedWith(result) {
  const details = result.details || {};
  if (!isNum(result.threshold)) return null;
  if (details.levels) return "score";
  if (P_TESTS.has(result.detector)) return "p";
  if (result.detector === "outliers") return null;
  return "score";
}

/**
 * A result's decisive comparison as text parts: { value, op, limit } such as
 * "p 3.6e-29" "<" "α 0.0500", "25.0%" ">" "max 5.0%", "accuracy 0.8125" "<" "warning 0.9000".
 * limit is null when the check has none to show.
 */
export function reading(result) {
  const details = result.details || {};
  const t = result.threshold;
  if (details.levels) {
    const levels = details.levels;
    const word = LEVEL_WORDS[levels.source] || "";
    const first = isNum(levels.warning) ? "warning" : "critical";
    const value = `${scoreName(result)} ${result.detector in SHARES ? fmtPct(result.score) : fmtScore(result.score)}`;
    const limit = `${word}${first} ${result.detector in SHARES ? fmtPct(t) : fmtScore(t)}`;
    return { value, op: versus(levels.direction, result.score, t), limit };
  }
  if (result.detector === "outliers") {
    const expected = isNum(details.expected_rate) ? `expected ${fmtPct(details.expected_rate)}` : null;
    const parts = { value: `${fmtPct(result.score)} flagged`, op: expected ? "vs" : "", limit: expected };
    if (isNum(result.p_value) && isNum(details.alpha)) {
      parts.extra = `p ${fmtP(result.p_value)} ${below(result.p_value, details.alpha)} \u03b1 ${fmtP(details.alpha)}`;
    }
    return parts;
  }
  if (P_TESTS.has(result.detector) || (isNum(result.p_value) && details.test)) {
    return {
      value: `p ${fmtP(result.p_value)}`,
      op: isNum(t) ? versus("below", result.p_value, t) : "",
      limit: isNum(t) ? `\u03b1 ${fmtP(t)}` : null,
    };
  }
  if (result.detector in SHARES) {
    const direction = SHARES[result.detector];
    return {
      value: fmtPct(result.score),
      op: isNum(t) ? versus(direction, result.score, t) : "",
      limit: isNum(t) ? `${direction === "below" ? "min" : "max"} ${fmtPct(t)}` : null,
    };
  }
  if (result.detector === "performance") {
    const direction = (details.threshold && details.threshold.direction) || "below";
    return {
      value: `${details.metric || "metric"} ${fmtScore(result.score)}`,
      op: isNum(t) ? versus(direction, result.score, t) : "",
      limit: isNum(t) ? `warning ${fmtScore(t)}` : null,
    };
  }
  return {
    value: `${scoreName(result)} ${fmtScore(result.score)}`,
    op: isNum(t) ? "vs" : "",
    limit: isNum(t) ? `threshold ${fmtScore(t)}` : null,
  };
}

export function readingText(result) {
  const parts = reading(result);
  if (!isNum(result.score) && !isNum(result.p_value)) return DASH;
  const main = [parts.value, parts.op, parts.limit].filter(Boolean).join(" ");
  return parts.extra ? `${main}; ${parts.extra}` : main;
}

/** Findings of one window grouped per check: one chip per check, never one per feature. */
export function findingChips(findings) {
  const groups = new Map();
  for (const f of findings) {
    if (!groups.has(f.detector)) groups.set(f.detector, []);
    groups.get(f.detector).push(f);
  }
  return [...groups.entries()].map(([detector, list]) => {
    const features = list.filter((f) => f.feature !== null);
    const own = list.find((f) => f.feature === null);
    const worst = list.find((f) => f.severity === "critical") || list[0];
    let text;
    let title;
    if (features.length) {
      const names = features.slice(0, 3).map((f) => f.feature);
      const more = features.length - names.length;
      text = `${detector}: ${names.join(", ")}${more > 0 ? ` +${more}` : ""}`;
      title = features.map((f) => `${f.feature}: ${describe(f)}`).join("\n");
    } else {
      text = `${detector} ${describe(own)}`;
      title = own.message;
    }
    return h(
      "span",
      { class: `badge badge-${worst.severity === "critical" ? "critical" : worst.decision === "error" ? "error" : "alert"} finding-chip`, "data-check": detector, "data-count": features.length, title },
      text,
    );
  });
}

function describe(result) {
  if (result.decision === "error") return "could not run";
  const parts = reading(result);
  return [parts.value, parts.op, parts.limit].filter(Boolean).join(" ");
}
