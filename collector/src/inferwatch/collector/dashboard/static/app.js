// The inferwatch dashboard: reads the collector's JSON API (docs/http-api.md) and draws it.
// Plain DOM and inline SVG, no dependencies, no build step: the browser loads these modules.

import { chart } from "./charts.js";
import { findingChips } from "./checks.js";
import { windowDetail } from "./detail.js";
import { metricCell, windowEstimate } from "./estimate.js";
import { badge, clickable, h, isFinding } from "./dom.js";
import { featureList, featureView } from "./features.js";
import { fmtAgo, fmtInt, fmtMs, fmtPct, fmtScore, fmtTime, isNum } from "./format.js";

const REFRESH_MS = 5000;
const KEY_STORAGE = "inferwatch.apiKey";
const RESOLVED_ALERTS_SHOWN = 20;
// Time ranges, counted back from the end of the version's newest window.
const RANGES = [
  ["1h", "last hour", 3600],
  ["6h", "last 6 hours", 6 * 3600],
  ["24h", "last 24 hours", 86400],
  ["7d", "last 7 days", 7 * 86400],
  ["30d", "last 30 days", 30 * 86400],
  ["all", "all windows", null],
];
// The charts draw at most the newest this many windows of the range.
const CHART_WINDOWS = 1000;
const TABLE_PAGE = 25;

const state = {
  models: null,
  openAlerts: {},
  model: null,
  version: null,
  windowId: null,
  windows: [],
  metrics: null,
  alerts: [],
  reference: undefined, // undefined: not asked yet; null: the version has none
  referenceFor: null,
  detail: null,
  range: "all",
  feature: null, // {name, role}
  featureHistory: null,
  featureHistoryFor: null,
  pickId: null, // the window drawn against the reference in the feature view
  pick: null, // {id, detail}
  featureSort: { key: "drift", descending: false },
  tableShown: TABLE_PAGE,
  scrollTo: null, // "window" or "feature": where a link or a click points, once it is drawn
  paused: false,
  busy: false,
  again: false,
  error: null,
  needsKey: false,
  updatedAt: null,
  showResolved: false,
  actionError: null,
};
let drawn = "";

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// A request to the collector's API with the dashboard's key; answers the JSON body, or throws
// an ApiError with the collector's own sentence.
async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, `cannot reach the collector (${error.message})`);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch (_) {
      // Not JSON: keep the status line.
    }
    throw new ApiError(response.status, message);
  }
  return response.json();
}

const api = (path) => request("GET", path);

const enc = encodeURIComponent;
const modelPath = (model) => `v1/models/${enc(model)}`;

// ---------------------------------------------------------------- loading

async function refresh() {
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  try {
    await load();
    state.error = null;
    state.needsKey = false;
  } catch (error) {
    state.error = error.message;
    state.needsKey = error.status === 401;
  } finally {
    state.busy = false;
    state.updatedAt = new Date();
    render();
  }
  if (state.again) {
    state.again = false;
    refresh();
  }
}

async function load() {
  const { models } = await api("v1/models");
  const counts = await Promise.all(
    models.map((m) =>
      api(`${modelPath(m.model)}/alerts?state=open`).then(
        (body) => body.alerts.length,
        () => null,
      ),
    ),
  );
  state.models = models;
  state.openAlerts = Object.fromEntries(models.map((m, i) => [m.model, counts[i]]));
  chooseSelection();
  if (state.model === null) return;
  const model = state.model;
  const version = state.version;
  const query = new URLSearchParams();
  if (version !== null) query.set("version", version);
  const start = rangeStart();
  if (start !== null) query.set("start", start);
  const [windows, metrics, alerts] = await Promise.all([
    api(`${modelPath(model)}/windows?${query}`),
    api(`${modelPath(model)}/metrics`),
    api(`${modelPath(model)}/alerts`),
  ]);
  state.windows = windows.windows;
  state.metrics = metrics;
  state.alerts = alerts.alerts;
  await loadReference(model, version);
  await Promise.all([loadDetail(model), loadFeature(model, version)]);
}

// The start of the chosen range (ISO), or null for every window.
function rangeStart() {
  const range = RANGES.find(([key]) => key === state.range);
  if (!range || range[2] === null || state.version === null || !state.models) return null;
  const entry = state.models.find((m) => m.model === state.model);
  const version = entry && entry.versions.find((v) => v.version === state.version);
  if (!version || !version.last) return null;
  return new Date(new Date(version.last).getTime() - range[2] * 1000).toISOString();
}

async function loadFeature(model, version) {
  if (state.feature === null || version === null) {
    state.featureHistory = null;
    state.pick = null;
    return;
  }
  const query = new URLSearchParams({ feature: state.feature.name, role: state.feature.role });
  const start = rangeStart();
  if (start !== null) query.set("start", start);
  const key = JSON.stringify([model, version, state.feature, start]);
  if (state.featureHistoryFor !== key) state.featureHistory = null;
  state.featureHistory = await api(`${modelPath(model)}/versions/${enc(version)}/feature-history?${query}`);
  state.featureHistoryFor = key;
  // The window drawn against the reference: the one picked, else the selected one, else the
  // newest with a summary of the column.
  const listed = state.featureHistory.windows.filter((w) => w.column);
  const wanted = [state.pickId, state.windowId].find((id) => id !== null && listed.some((w) => w.id === id));
  const id = wanted !== undefined ? wanted : listed.length ? listed[listed.length - 1].id : null;
  if (id === null) {
    state.pick = null;
  } else if (state.detail && state.detail.id === id) {
    state.pick = { id, detail: state.detail };
  } else if (!state.pick || state.pick.id !== id || !state.pick.detail.evaluated_at) {
    state.pick = { id, detail: await api(`${modelPath(model)}/windows/${id}`) };
  }
}

async function loadReference(model, version) {
  const key = JSON.stringify([model, version]);
  if (state.referenceFor === key && state.reference) return;
  state.referenceFor = key;
  state.reference = null;
  if (version === null) return;
  try {
    state.reference = await api(`${modelPath(model)}/versions/${enc(version)}/reference`);
  } catch (error) {
    if (error.status !== 404) throw error;
  }
}

async function loadDetail(model) {
  if (state.windowId === null) {
    state.detail = null;
    return;
  }
  try {
    state.detail = await api(`${modelPath(model)}/windows/${state.windowId}`);
  } catch (error) {
    if (error.status !== 404) throw error;
    state.windowId = null;
    state.detail = null;
    writeHash();
  }
}

function chooseSelection() {
  const models = state.models;
  const entry = models.find((m) => m.model === state.model) || models[0] || null;
  if (entry === null) {
    select(null, null, null);
    return;
  }
  if (entry.model !== state.model) {
    state.windowId = null;
    state.feature = null;
  }
  const versions = entry.versions;
  let version = versions.find((v) => v.version === state.version);
  if (!version && versions.length) {
    version = versions.reduce((a, b) => ((b.last || "") > (a.last || "") ? b : a));
    state.windowId = null;
    state.feature = null;
  }
  state.model = entry.model;
  state.version = version ? version.version : null;
}

function select(model, version, windowId) {
  if (model !== state.model || version !== state.version) {
    state.windows = [];
    state.metrics = null;
    state.alerts = [];
    state.detail = null;
    state.feature = null;
    state.featureHistory = null;
    state.pick = null;
    state.pickId = null;
  }
  state.model = model;
  state.version = version;
  state.windowId = windowId;
  if (windowId === null) state.detail = null;
  writeHash();
}

function selectAndLoad(model, version, windowId) {
  select(model, version, windowId);
  state.scrollTo = windowId !== null ? "window" : null;
  render();
  refresh();
}

function openFeature(name, role) {
  state.feature = name === null ? null : { name, role: role || "feature" };
  state.pickId = null;
  state.scrollTo = name === null ? null : "feature";
  writeHash();
  render();
  refresh();
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.model !== null) params.set("model", state.model);
  if (state.version !== null) params.set("version", state.version);
  if (state.range !== "all") params.set("range", state.range);
  if (state.feature !== null) {
    params.set("feature", state.feature.name);
    if (state.feature.role !== "feature") params.set("role", state.feature.role);
  }
  if (state.windowId !== null) params.set("window", String(state.windowId));
  const hash = `#${params}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

// The selection from the URL; a link that names a window or a feature opens there.
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const windowId = params.get("window");
  const feature = params.get("feature");
  const role = params.get("role");
  const range = params.get("range");
  state.model = params.get("model");
  state.version = params.get("version");
  state.windowId = windowId && /^\d+$/.test(windowId) ? Number(windowId) : null;
  state.feature = feature ? { name: feature, role: ["output", "label"].includes(role) ? role : "feature" } : null;
  state.range = RANGES.some(([key]) => key === range) ? range : "all";
  state.scrollTo = state.feature !== null ? "feature" : state.windowId !== null ? "window" : null;
}



// ---------------------------------------------------------------- page

function render() {
  renderChrome();
  const picture = JSON.stringify([
    state.models,
    state.openAlerts,
    state.model,
    state.version,
    state.windowId,
    state.windows,
    state.metrics,
    state.alerts,
    state.actionError,
    state.detail,
    state.reference ? state.reference.created_at : null,
    state.range,
    state.feature,
    state.featureHistory,
    state.pick ? [state.pick.id, state.pick.detail.evaluated_at] : null,
    state.featureSort,
    state.tableShown,
    // Relative times ("3 min ago") move on even when the data does not.
    Math.floor(Date.now() / 60000),
  ]);
  if (picture === drawn) return;
  drawn = picture;
  document.getElementById("models").replaceChildren(...sidebar());
  document.getElementById("main").replaceChildren(...mainView());
  scrollToTarget();
}

// Once what a link or a click points at is drawn, bring it to the top of the page (once: the
// refreshes after that leave the reader where they scrolled).
function scrollToTarget() {
  const target =
    state.scrollTo === "window" && state.detail
      ? document.getElementById("window-detail")
      : state.scrollTo === "feature" && state.featureHistory
        ? document.getElementById("feature-view")
        : null;
  if (!target) return;
  state.scrollTo = null;
  target.scrollIntoView({ block: "start" });
}

function renderChrome() {
  const banner = document.getElementById("banner");
  if (state.needsKey) {
    banner.textContent =
      "This collector needs an API key: paste it in the API key field above " +
      `(the collector said: ${state.error}).`;
  } else if (state.error) {
    banner.textContent = `Could not load data: ${state.error}. Retrying every ${REFRESH_MS / 1000} s.`;
  }
  banner.hidden = !state.error;
  const health = document.getElementById("health");
  health.textContent = state.error ? "offline" : state.models ? "live" : "";
  health.className = `health ${state.error ? "health-bad" : "health-ok"}`;
  const updated = document.getElementById("updated");
  updated.textContent = state.updatedAt
    ? `${state.paused ? "paused, " : ""}updated ${state.updatedAt.toLocaleTimeString()}`
    : "";
  const toggle = document.getElementById("refresh-toggle");
  toggle.textContent = state.paused ? "Resume" : "Pause";
  toggle.setAttribute("aria-pressed", String(state.paused));
  document.getElementById("key-forget").hidden = !sessionStorage.getItem(KEY_STORAGE);
}

// ---------------------------------------------------------------- sidebar

// When the model's newest window ended; one that ends later is still being filled.
function lastWindow(end) {
  if (end && new Date(end).getTime() > Date.now()) return "a window open now";
  return `last window ${fmtAgo(end || null)}`;
}

function sidebar() {
  if (state.models === null) return [];
  const items = state.models.map((entry) => {
    const selected = entry.model === state.model;
    const open = state.openAlerts[entry.model];
    const last = entry.versions.reduce((a, v) => ((v.last || "") > a ? v.last : a), "");
    return h(
      "li",
      { class: selected ? "model selected" : "model" },
      h(
        "button",
        {
          type: "button",
          class: "model-name",
          "aria-current": selected ? "true" : null,
          onclick: () => selectAndLoad(entry.model, null, null),
        },
        h("span", { class: "model-title" }, entry.model),
        open ? badge(`${open} open`, "alert") : null,
      ),
      h(
        "div",
        { class: "model-meta muted" },
        entry.versions.length
          ? `${entry.versions.length} version${entry.versions.length === 1 ? "" : "s"}, ${lastWindow(last)}`
          : "no windows yet",
      ),
      h(
        "div",
        { class: "versions" },
        entry.versions.map((v) =>
          h(
            "button",
            {
              type: "button",
              class: selected && v.version === state.version ? "chip chip-on" : "chip",
              title: `${fmtInt(v.windows)} windows, ${fmtInt(v.rows)} rows, last ends ${v.last}`,
              onclick: () => selectAndLoad(entry.model, v.version, null),
            },
            v.version === "" ? "(no version)" : `v${v.version}`,
          ),
        ),
      ),
    );
  });
  return [h("h2", { class: "sidebar-title" }, "Models"), h("ul", { class: "model-list" }, items)];
}

// ---------------------------------------------------------------- main view

function mainView() {
  if (state.models === null) {
    return [h("p", { class: "muted" }, state.error ? "No data loaded." : "Loading\u2026")];
  }
  if (state.models.length === 0) return [emptyState()];
  if (state.model === null) return [];
  const entry = state.models.find((m) => m.model === state.model);
  const rows = timelineRows();
  const parts = [modelHeader(entry, rows)];
  if (rows.length === 0) {
    parts.push(
      h(
        "section",
        { class: "card empty" },
        state.range !== "all"
          ? h("p", {}, `No windows for ${state.model} in this range: choose a longer one.`)
          : [
              h("p", {}, `No windows for ${state.model} yet.`),
              h(
                "p",
                { class: "muted" },
                "Windows appear as soon as the collector receives a prediction for this model.",
              ),
            ],
      ),
    );
    return parts;
  }
  const drawn = rows.slice(-CHART_WINDOWS);
  parts.push(alertsPanel(), charts(drawn, rows.length), featuresPanel(rows));
  if (state.feature) parts.push(featurePanel());
  parts.push(windowsTable(rows));
  if (state.detail) {
    const close = () => selectAndLoad(state.model, state.version, null);
    parts.push(windowDetail(state.detail, referenceColumns(), close, openFeature));
  }
  return parts;
}

function featuresPanel(rows) {
  const evaluated = rows.filter((r) => r.evaluated_at);
  const focus = evaluated.find((r) => r.id === state.windowId) || evaluated[evaluated.length - 1] || null;
  return featureList({
    rows,
    focus,
    sort: state.featureSort,
    selected: state.feature,
    onSort: (key) => {
      const same = state.featureSort.key === key;
      state.featureSort = { key, descending: same ? !state.featureSort.descending : false };
      render();
    },
    onOpen: openFeature,
  });
}

function featurePanel() {
  const ref = state.reference && state.reference.summary ? state.reference.summary.columns : [];
  const reference = ref.find((c) => c.name === state.feature.name && c.role === state.feature.role) || null;
  return featureView({
    feature: state.feature,
    history: state.featureHistory,
    pick: state.pick,
    reference,
    selectedId: state.windowId,
    onPick: (id) => {
      state.pickId = id;
      refresh();
    },
    onSelect: (id) => selectAndLoad(state.model, state.version, id),
    onClose: () => openFeature(null),
  });
}

function emptyState() {
  const endpoint = location.origin;
  const snippet = [
    "import inferwatch",
    "",
    `inferwatch.init(endpoint="${endpoint}")  # api_key="..." if the collector has keys`,
    "",
    '@inferwatch.monitor(model="credit", version="1", task="classification")',
    "def predict(features):",
    "    return model.predict(features)",
  ].join("\n");
  return h(
    "section",
    { class: "card empty" },
    h("h2", {}, "No models yet"),
    h(
      "p",
      {},
      "This collector has not received any prediction. In your model server, point the " +
        "inferwatch SDK at it and decorate the prediction function:",
    ),
    h("pre", { class: "code" }, snippet),
    h(
      "p",
      { class: "muted" },
      "Each call is then recorded (inputs summarised per window, never stored raw in the " +
        "dashboard) and shows up here within seconds. Ground truth comes later with " +
        "inferwatch.log_labels, a reference with inferwatch.set_reference.",
    ),
  );
}

function performanceKind(rows) {
  if (rows.some((r) => isNum(r.performance.accuracy) || windowEstimate(r.results, "accuracy"))) return "accuracy";
  if (rows.some((r) => isNum(r.performance.mae) || windowEstimate(r.results, "mae"))) return "mae";
  const task = rows.map((r) => r.performance.task).find(Boolean);
  return task === "regression" ? "mae" : "accuracy";
}

function timelineRows() {
  const byId = new Map(((state.metrics && state.metrics.windows) || []).map((w) => [w.id, w]));
  return state.windows.map((w) => {
    const extra = byId.get(w.id) || {};
    const results = w.results || [];
    return {
      ...w,
      latency: extra.latency || null,
      performance: extra.performance || {},
      findings: results.filter(isFinding),
    };
  });
}

function modelHeader(entry, rows) {
  const version = entry.versions.find((v) => v.version === state.version);
  const lifetime =
    state.metrics && state.version !== null
      ? state.metrics.lifetime.versions[state.version] || {}
      : {};
  const open = state.alerts.filter((a) => a.state === "open" && a.version === state.version);
  const stats = [
    ["windows", fmtInt(version ? version.windows : rows.length)],
    ["rows", fmtInt(version ? version.rows : null)],
    ["labelled", fmtInt(version ? version.labelled : null)],
    isNum(lifetime.accuracy) ? ["lifetime accuracy", fmtScore(lifetime.accuracy)] : null,
    isNum(lifetime.mae) ? ["lifetime MAE", fmtScore(lifetime.mae)] : null,
    ["open alerts", String(open.length)],
    ["windows with findings in range", fmtInt(rows.filter((r) => r.findings.length).length)],
  ].filter(Boolean);
  return h(
    "section",
    { class: "model-header" },
    h(
      "div",
      { class: "heading-row" },
      h(
        "h1",
        {},
        h("span", { class: "model-heading" }, state.model),
        state.version !== null
          ? h("span", { class: "muted version-heading" }, ` v${state.version}`)
          : null,
      ),
      rangeChooser(),
    ),
    h(
      "dl",
      { class: "stats" },
      stats.map(([name, value]) => h("div", { class: "stat" }, h("dt", {}, name), h("dd", {}, value))),
    ),
  );
}

// ---------------------------------------------------------------- charts

function charts(rows, total) {
  const pick = { selectedId: state.windowId, onSelect: (id) => selectAndLoad(state.model, state.version, id) };
  const perf = performanceKind(rows);
  const perfResult = latestResult(rows, (r) => r.detector === "performance" && (r.details || {}).metric === perf);
  const errorResult = latestResult(rows, (r) => r.detector === "error_rate");
  const list = [
    chart("Rows per window", rows, [{ values: rows.map((r) => r.rows), cls: "s-rows" }], {
      ...pick,
      name: "rows",
      bars: true,
      kind: "count",
      format: fmtInt,
    }),
    chart("Error rate", rows, [{ values: rows.map((r) => r.error_rate), cls: "s-error" }], {
      ...pick,
      name: "error_rate",
      kind: "pct",
      format: fmtPct,
      max: 1,
      threshold: errorResult ? errorResult.threshold : null,
      thresholdLabel: errorResult && isNum(errorResult.threshold) ? `max ${fmtPct(errorResult.threshold)}` : null,
    }),
  ];
  if (rows.some((r) => r.latency && isNum(r.latency.p50_ms))) {
    list.push(
      chart(
        "Latency",
        rows,
        [
          { name: "p50", values: rows.map((r) => r.latency && r.latency.p50_ms), cls: "s-p50" },
          { name: "p95", values: rows.map((r) => r.latency && r.latency.p95_ms), cls: "s-p95" },
        ],
        { ...pick, name: "latency", kind: "ms", format: fmtMs },
      ),
    );
  }
  list.push(
    chart("Label coverage", rows, [{ values: rows.map((r) => r.label_coverage), cls: "s-cov" }], {
      ...pick,
      name: "label_coverage",
      kind: "pct",
      format: fmtPct,
      max: 1,
    }),
    chart(
      perf === "accuracy" ? "Accuracy" : "MAE",
      rows,
      performanceSeries(rows, perf),
      {
        ...pick,
        name: perf,
        kind: "score",
        format: fmtScore,
        max: perf === "accuracy" ? 1 : null,
        threshold: perfResult ? perfResult.threshold : null,
        thresholdLabel: perfResult && isNum(perfResult.threshold) ? `warning ${fmtScore(perfResult.threshold)}` : null,
        empty: "no labelled or estimated windows yet",
      },
    ),
  );
  return h(
    "section",
    { class: "timeline" },
    h(
      "div",
      { class: "section-head" },
      h("h2", {}, "Timeline"),
      h(
        "span",
        { class: "legend muted" },
        total > rows.length ? `the newest ${fmtInt(rows.length)} of ${fmtInt(total)} windows in range; ` : "",
        h("span", { class: "swatch swatch-finding" }),
        "window with findings",
        h("span", { class: "swatch swatch-selected" }),
        "selected window",
      ),
    ),
    h("div", { class: "charts" }, list),
  );
}

/** The realized metric and, when the windows have one, its estimate with the band. */
function performanceSeries(rows, perf) {
  const realized = { name: "realized", values: rows.map((r) => r.performance[perf]), cls: "s-perf" };
  const estimates = rows.map((r) => windowEstimate(r.results, perf));
  if (!estimates.some(Boolean)) return [{ ...realized, name: undefined }];
  const estimated = {
    name: "estimated",
    values: estimates.map((e) => (e ? e.value : null)),
    lower: estimates.map((e) => (e ? e.lower : null)),
    upper: estimates.map((e) => (e ? e.upper : null)),
    cls: "s-est",
  };
  return [realized, estimated];
}

function latestResult(rows, wanted) {
  for (let i = rows.length - 1; i >= 0; i--) {
    const found = (rows[i].results || []).find((r) => wanted(r) && isNum(r.threshold));
    if (found) return found;
  }
  return null;
}

function rangeChooser() {
  return h(
    "label",
    { class: "range" },
    "Range ",
    h(
      "select",
      {
        id: "range",
        "aria-label": "time range",
        onchange: (event) => {
          state.range = event.target.value;
          state.tableShown = TABLE_PAGE;
          writeHash();
          refresh();
        },
      },
      RANGES.map(([key, text]) => h("option", { value: key, selected: key === state.range }, text)),
    ),
  );
}

// ---------------------------------------------------------------- windows table

function windowsTable(rows) {
  const perf = performanceKind(rows);
  const newestFirst = [...rows].reverse();
  // The selected window is always listed, however far back it is.
  const shown = newestFirst.filter((r, i) => i < state.tableShown || r.id === state.windowId);
  const body = shown.map((r) => {
    const classes = ["window-row"];
    if (r.findings.length) classes.push("has-findings");
    if (r.id === state.windowId) classes.push("selected");
    const lat = r.latency || {};
    return h(
      "tr",
      clickable(
        { class: classes.join(" "), "data-window": r.id, title: `${r.start} \u2013 ${r.end} (UTC)` },
        () => selectAndLoad(state.model, state.version, r.id),
      ),
      h("td", {}, fmtTime(r.start), r.closed ? null : badge("open", "open")),
      h("td", { class: "num" }, fmtInt(r.requests)),
      h("td", { class: "num" }, fmtInt(r.rows)),
      h("td", { class: "num" }, fmtPct(r.error_rate)),
      h("td", { class: "num" }, fmtMs(lat.p50_ms)),
      h("td", { class: "num" }, fmtMs(lat.p95_ms)),
      h("td", { class: "num" }, fmtPct(r.label_coverage)),
      h("td", { class: "num metric" }, metricCell(r.performance[perf], windowEstimate(r.results, perf))),
      h(
        "td",
        { class: "findings" },
        r.findings.length
          ? findingChips(r.findings)
          : r.evaluated_at
            ? h("span", { class: "muted" }, "none")
            : h("span", { class: "muted" }, "not evaluated"),
      ),
    );
  });
  const hidden = newestFirst.length - shown.length;
  const more =
    hidden > 0
      ? h(
          "div",
          { class: "table-more" },
          h(
            "button",
            {
              type: "button",
              class: "show-more",
              onclick: () => {
                state.tableShown += TABLE_PAGE * 4;
                render();
              },
            },
            `Show ${fmtInt(Math.min(hidden, TABLE_PAGE * 4))} more`,
          ),
          h("span", { class: "muted" }, ` ${fmtInt(hidden)} older windows not listed`),
        )
      : null;
  return h(
    "section",
    { class: "card windows", id: "windows" },
    h(
      "div",
      { class: "section-head" },
      h("h2", {}, "Windows"),
      h("span", { class: "muted" }, `${fmtInt(shown.length)} of ${fmtInt(rows.length)} in range, newest first`),
    ),
    h(
      "table",
      { class: "table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "Start"),
          h("th", { class: "num" }, "Requests"),
          h("th", { class: "num" }, "Rows"),
          h("th", { class: "num" }, "Errors"),
          h("th", { class: "num" }, "p50"),
          h("th", { class: "num" }, "p95"),
          h("th", { class: "num" }, "Labelled"),
          h("th", { class: "num" }, perf === "accuracy" ? "Accuracy" : "MAE"),
          h("th", {}, "Findings (per check)"),
        ),
      ),
      h("tbody", {}, body),
    ),
    more,
  );
}

// ---------------------------------------------------------------- alerts

function alertsPanel() {
  const mine = state.alerts.filter((a) => state.version === null || a.version === state.version);
  const byNewest = (a, b) => (b.opened_at > a.opened_at ? 1 : -1);
  const open = mine.filter((a) => a.state === "open").sort(byNewest);
  const resolved = mine.filter((a) => a.state !== "open").sort(byNewest);
  const severityKind = (a) =>
    a.state !== "open" ? "resolved" : a.severity === "critical" ? "critical" : "warning";
  const item = (a) =>
    h(
      "li",
      { class: `alert alert-${a.state} alert-${a.severity}` },
      h(
        "div",
        { class: "alert-head" },
        badge(a.severity, severityKind(a)),
        h("strong", {}, a.check),
        a.state === "open" ? null : badge("resolved", "resolved"),
      ),
      h("p", { class: "alert-message" }, a.message),
      a.features && a.features.length
        ? h(
            "p",
            { class: "alert-features" },
            "Features: ",
            a.features.map((f) => h("span", { class: "column-name" }, f)),
          )
        : null,
      alertStatus(a),
      a.state === "open" ? alertActions(a) : null,
      h(
        "div",
        { class: "alert-foot muted" },
        h("span", { title: a.opened_at }, `opened ${fmtTime(a.opened_at)} (${fmtAgo(a.opened_at)})`),
        a.resolved_at
          ? h("span", { title: a.resolved_at }, `resolved ${fmtTime(a.resolved_at)}`)
          : null,
        windowLink("opened by window", a.version, a.window_id),
        a.last_window_id !== undefined && a.last_window_id !== a.window_id
          ? windowLink("last failing", a.version, a.last_window_id)
          : null,
      ),
    );
  const toggle =
    resolved.length > 0
      ? h(
          "button",
          {
            type: "button",
            "aria-expanded": String(state.showResolved),
            onclick: () => {
              state.showResolved = !state.showResolved;
              drawn = "";
              render();
            },
          },
          `${state.showResolved ? "Hide" : "Show"} resolved (${resolved.length})`,
        )
      : h("span", { class: "muted" }, "none resolved");
  const hidden = resolved.length - RESOLVED_ALERTS_SHOWN;
  return h(
    "section",
    { class: `card alerts${open.length ? " alerts-firing" : ""}` },
    h(
      "div",
      { class: "section-head" },
      h("h2", {}, `Alerts: ${open.length} open`),
      toggle,
    ),
    state.actionError ? h("p", { class: "alert-error", role: "alert" }, state.actionError) : null,
    open.length
      ? h("ul", { class: "alert-list" }, open.map(item))
      : h("p", { class: "muted quiet" }, "No open alerts for this version."),
    state.showResolved && resolved.length
      ? h("ul", { class: "alert-list resolved-list" }, resolved.slice(0, RESOLVED_ALERTS_SHOWN).map(item))
      : null,
    state.showResolved && hidden > 0 ? h("p", { class: "muted" }, `and ${hidden} older`) : null,
  );
}

const SILENCES = [
  ["1h", "Silence 1 h"],
  ["1d", "Silence 1 day"],
];

function alertStatus(a) {
  const parts = [];
  if (a.acknowledged_at) {
    const by = a.acknowledged_by ? ` by ${a.acknowledged_by}` : "";
    parts.push(h("span", { class: "alert-acknowledged" }, `acknowledged${by} ${fmtTime(a.acknowledged_at)}`));
  }
  // The collector clears silenced_until once the silence is over.
  if (a.silenced_until) {
    parts.push(
      h("span", { class: "alert-silenced", title: a.silenced_until }, `silenced until ${fmtTime(a.silenced_until)}`),
    );
  }
  if (a.resolution === "stale") parts.push(h("span", {}, "resolved as stale: no traffic"));
  return parts.length ? h("p", { class: "alert-status muted" }, parts) : null;
}

function alertActions(a) {
  const path = `v1/alerts/${a.id}`;
  const run = (method, suffix, body) => async () => {
    try {
      await request(method, `${path}/${suffix}`, body);
      state.actionError = null;
    } catch (error) {
      state.actionError = `Alert ${a.id}: ${error.message}`;
    }
    refresh();
  };
  const silenced = Boolean(a.silenced_until);
  return h(
    "div",
    { class: "alert-actions" },
    a.acknowledged_at
      ? null
      : h("button", { type: "button", class: "alert-acknowledge", onclick: run("POST", "acknowledge", {}) }, "Acknowledge"),
    silenced
      ? h("button", { type: "button", class: "alert-unsilence", onclick: run("DELETE", "silence") }, "End silence")
      : SILENCES.map(([duration, text]) =>
          h(
            "button",
            { type: "button", class: "alert-silence", "data-for": duration, onclick: run("POST", "silence", { for: duration }) },
            text,
          ),
        ),
  );
}

function windowLink(text, version, windowId) {
  if (windowId === null || windowId === undefined) return null;
  return h(
    "a",
    {
      href: "#",
      onclick: (event) => {
        event.preventDefault();
        selectAndLoad(state.model, version, windowId);
      },
    },
    `${text} #${windowId}`,
  );
}


function referenceColumns() {
  const ref = state.reference;
  const matches = ref && ref.summary && state.detail && state.detail.version === ref.version;
  return new Map(matches ? ref.summary.columns.map((c) => [`${c.role}/${c.name}`, c]) : []);
}

// ---------------------------------------------------------------- controls

function setUpControls() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    input.value = "";
    input.placeholder = key ? "key in use" : "paste to use";
    refresh();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    input.placeholder = "paste to use";
    refresh();
  });
  if (sessionStorage.getItem(KEY_STORAGE)) input.placeholder = "key in use";
  document.getElementById("refresh-toggle").addEventListener("click", () => {
    state.paused = !state.paused;
    renderChrome();
  });
  document.getElementById("refresh-now").addEventListener("click", () => refresh());
  window.addEventListener("hashchange", () => {
    readHash();
    refresh();
  });
  setInterval(() => {
    if (!state.paused && !document.hidden) refresh();
  }, REFRESH_MS);
}

readHash();
setUpControls();
refresh();
