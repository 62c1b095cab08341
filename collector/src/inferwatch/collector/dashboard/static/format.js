// Numbers and times as the dashboard shows them; a missing value is a dash.

export const DASH = "\u2014";
export const isNum = (x) => typeof x === "number" && Number.isFinite(x);

export function fmtInt(x) {
  return isNum(x) ? Math.round(x).toLocaleString("en-US") : DASH;
}

export function fmtNum(x) {
  if (!isNum(x)) return DASH;
  if (Number.isInteger(x) && Math.abs(x) < 1e6) return x.toLocaleString("en-US");
  const size = Math.abs(x);
  if (size !== 0 && (size < 1e-3 || size >= 1e6)) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}

export function fmtPct(x) {
  if (!isNum(x)) return DASH;
  if (x > 0 && x < 0.001) return "<0.1%";
  return `${(x * 100).toFixed(1)}%`;
}

export function fmtMs(x) {
  if (!isNum(x)) return DASH;
  if (x >= 1000) return `${(x / 1000).toPrecision(3)} s`;
  return `${Number(x.toPrecision(3))} ms`;
}

export function fmtP(x) {
  if (!isNum(x)) return DASH;
  if (x < 1e-4) return x.toExponential(1);
  return x.toFixed(4);
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
