// Numbers and times as the dashboard shows them: one format per kind of number, so that two
// numbers of one kind always read alike. A missing value is a dash.
//
//   counts       fmtInt     12,345
//   rates        fmtPct     25.0%  (<0.1% for a small non-zero share)
//   p-values     fmtP       0.0123, 1.0000, 3.6e-29 (4 decimals, scientific below 0.0001)
//   scores       fmtScore   0.3730, 1.000, 125.7 (statistics, metrics, feature values:
//                           4 significant digits, scientific outside 0.001 to 1e6)
//   durations    fmtMs      850 ms, 1.20 s, 3.5 min (fmtSeconds for seconds)

export const DASH = "\u2014";
export const isNum = (x) => typeof x === "number" && Number.isFinite(x);

export function fmtInt(x) {
  return isNum(x) ? Math.round(x).toLocaleString("en-US") : DASH;
}

export function fmtPct(x) {
  if (!isNum(x)) return DASH;
  if (x > 0 && x < 0.0005) return "<0.1%";
  return `${(x * 100).toFixed(1)}%`;
}

export function fmtP(x) {
  if (!isNum(x)) return DASH;
  if (x > 0 && x < 1e-4) return x.toExponential(1);
  return x.toFixed(4);
}

const SIGNIFICANT = new Intl.NumberFormat("en-US", {
  minimumSignificantDigits: 4,
  maximumSignificantDigits: 4,
});

export function fmtScore(x) {
  if (!isNum(x)) return DASH;
  const size = Math.abs(x);
  if (size !== 0 && (size < 1e-3 || size >= 1e6)) return x.toExponential(3);
  if (size === 0) return "0";
  return SIGNIFICANT.format(x);
}

export function fmtMs(x) {
  if (!isNum(x)) return DASH;
  if (x < 1000) return `${Number(x.toPrecision(3))} ms`;
  const seconds = x / 1000;
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export const fmtSeconds = (x) => (isNum(x) ? fmtMs(x * 1000) : DASH);

// Axis ticks: round values (1, 2 or 5 times a power of ten) between lo and hi; with ``whole``
// only whole steps (a count of rows is never 0.5, nor 2.5).
export function niceTicks(lo, hi, count = 4, whole = false) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const steps = [1, 2, 2.5, 5, 10].map((m) => m * power).filter((s) => !whole || (s >= 1 && Number.isInteger(s)));
  const step = steps.find((s) => s >= raw) ?? (whole ? 1 : 10 * power);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

// An axis's ticks in its kind: a count's are whole numbers (rows 0 to 2 are 0, 1, 2, never the
// 0.5 and 1.5 that would be written as 1 and 2 again).
export const axisTicks = (kind, lo, hi, count = 4) => niceTicks(lo, hi, count, kind === "count");

// The smallest round value at or above x (the top of an axis).
export function niceCeil(x) {
  if (!(x > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(x));
  const top = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map((m) => m * power).find((v) => v >= x * (1 - 1e-12));
  return Number(top.toPrecision(12));
}

// Tick labels of one axis share their decimals ("0.00", "0.25", "0.50"), in the axis's kind.
export function tickFormatter(kind, ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(ticks[0]) || 1;
  // As many decimals as the step needs to be written exactly (0.25: two).
  const decimals = (scale) => {
    for (let d = 0; d < 6; d++) {
      const shifted = step * scale * 10 ** d;
      if (Math.abs(shifted - Math.round(shifted)) < 1e-6) return d;
    }
    return 6;
  };
  if (kind === "pct") return (v) => `${(v * 100).toFixed(decimals(100))}%`;
  if (kind === "count") return fmtInt;
  if (kind === "ms") return fmtMs;
  if (kind === "p") return (v) => (v >= 0.01 ? String(Number(v.toPrecision(2))) : `1e${Math.round(Math.log10(v))}`);
  return (v) => (Math.abs(v) >= 1e6 ? v.toExponential(1) : v.toFixed(decimals(1)));
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

export function fmtTime(iso) {
  return iso ? timeFormat.format(new Date(iso)) : DASH;
}

export function fmtAgo(iso) {
  if (!iso) return DASH;
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (seconds < 0) return "in the future";
  const steps = [
    [60, "s", 1],
    [3600, "min", 60],
    [86400, "h", 3600],
    [86400 * 365, "d", 86400],
    [Infinity, "y", 86400 * 365],
  ];
  const [, unit, size] = steps.find(([limit]) => seconds < limit);
  return `${Math.floor(seconds / size)} ${unit} ago`;
}
