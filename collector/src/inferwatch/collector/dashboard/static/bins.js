// A column summary's distribution as bars: numeric bins over the cuts frozen on the reference,
// or category counts, lined up with the reference's.

import { fmtScore } from "./format.js";

const MAX_CATEGORIES_DRAWN = 12;

function sameCuts(a, b) {
  return a && b && a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * { labels, edges, window, reference } for a column (counts), or null when the window has no
 * bins. Bins are (-inf, c0), [c0, c1), ..., [c_last, inf) (docs/windows-and-summaries.md).
 * reference is null when there is none or its cuts differ.
 */
export function distribution(column, reference) {
  if (column.kind === "numeric") {
    if (!column.bin_counts) return null;
    const cuts = column.cuts || [];
    const edges = cuts.map(fmtScore);
    const last = column.bin_counts.length - 1;
    const labels = column.bin_counts.map((_, i) =>
      i === 0 ? `< ${edges[0]}` : i === last ? `\u2265 ${edges[last - 1]}` : `[${edges[i - 1]}, ${edges[i]})`,
    );
    const ref = reference && sameCuts(reference.cuts, column.cuts) ? reference.bin_counts : null;
    return { labels, edges, window: column.bin_counts, reference: ref };
  }
  const here = column.counts || {};
  const there = (reference && reference.counts) || {};
  const names = [...new Set([...Object.keys(there), ...Object.keys(here)])].sort(
    (a, b) => (there[b] || 0) - (there[a] || 0) || (here[b] || 0) - (here[a] || 0) || a.localeCompare(b),
  );
  const drawn = names.slice(0, MAX_CATEGORIES_DRAWN);
  // Categories past the drawn ones, and those the summary itself lumped together.
  const rest = (counts, other) => names.slice(MAX_CATEGORIES_DRAWN).reduce((a, n) => a + (counts[n] || 0), other || 0);
  const restHere = rest(here, column.other);
  const restThere = reference ? rest(there, reference.other) : 0;
  const withRest = restHere > 0 || restThere > 0;
  const values = (counts, restCount) => [...drawn.map((n) => counts[n] || 0), ...(withRest ? [restCount] : [])];
  return {
    labels: [...drawn, ...(withRest ? ["(other)"] : [])],
    edges: null,
    window: values(here, restHere),
    reference: reference ? values(there, restThere) : null,
  };
}

export function shares(counts) {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (total ? c / total : 0));
}
