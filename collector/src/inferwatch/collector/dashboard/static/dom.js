// Building DOM and SVG nodes; API text is only ever set as text, never parsed as HTML.

// Results as alerting reads them (docs/alerts.md): warnings and alerts fail, with a severity;
// ok passes; not enough data and errors are neutral.
const FAILURES = new Set(["alert", "warning"]);
// A window "has findings" when a check failed or could not run.
export const isFinding = (result) => FAILURES.has(result.decision) || result.decision === "error";

function build(node, props, children) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.setAttribute("class", value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const h = (tag, props, ...children) => build(document.createElement(tag), props, children);
export const svg = (tag, props, ...children) =>
  build(document.createElementNS("http://www.w3.org/2000/svg", tag), props, children);

export function clickable(props, onActivate) {
  return {
    ...props,
    tabindex: 0,
    onclick: onActivate,
    onkeydown: (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onActivate();
      }
    },
  };
}

export function badge(text, kind) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

export function resultKind(result) {
  if (FAILURES.has(result.decision)) return result.severity === "critical" ? "critical" : "alert";
  if (result.decision === "ok") return "ok";
  if (result.decision === "error") return "error";
  return "neutral";
}

// Failures first (critical before others), then errors, then undecided, then passes.
const KIND_ORDER = { critical: 0, alert: 1, error: 2, neutral: 3, ok: 4 };
export const resultRank = (result) => KIND_ORDER[resultKind(result)];

export function resultBadge(result) {
  const text = result.severity === "critical" ? "critical" : result.decision;
  return badge(String(text).replaceAll("_", " "), resultKind(result));
}
