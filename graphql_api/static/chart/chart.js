// The /chart page (graphql_api/chart.py serves it; docs/chart.md describes it).
//
// Candlesticks and volume from `Symbol.bars` (oldest first, `last` + `before` keyset pages
// going back in time as the user scrolls left), indicator overlays from `Symbol.indicators`,
// live bars from the `barUpdates` subscription over graphql-transport-ws. Every read is a
// fixed GraphQL document sent with GET (automatic persisted queries when the server has them),
// so the service's response cache and ETags serve repeated views. `window.chartState` exposes
// what the page holds and did, for tests and for anyone scripting the page.
import {
  CandlestickSeries,
  HistogramSeries,
  LineSeries,
  createChart,
  createSeriesMarkers,
} from "lightweight-charts";
import { createClient } from "graphql-ws";

const INTERVALS = ["M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1"];
const SESSIONS = ["REGULAR", "EXTENDED", "ALL"];
const ADJUSTMENTS = ["RAW", "SPLIT", "DIVIDEND", "ALL"];
const MARKER_COLORS = { SPLIT: "#1565c0", DIVIDEND: "#2e7d32" };
const PAGE_SIZE = 500;
const UP = "#26a69a";
const DOWN = "#ef5350";

// Every bar read names the same hours and adjustment: null session is the symbol's default.
const BARS_QUERY = `query ChartBars($ticker: String!, $interval: Interval!, $last: Int!, $before: String,
  $session: Session, $adjustment: Adjustment!, $actions: Boolean!) {
  symbol(ticker: $ticker) {
    ticker
    name
    exchange
    currency
    defaultSession
    tradingHours { timezone }
    bars(interval: $interval, order: OLDEST_FIRST, last: $last, before: $before,
         session: $session, adjustment: $adjustment) {
      nodes { time open high low close volume closed }
      pageInfo { hasPreviousPage startCursor }
    }
    corporateActions @include(if: $actions) { kind exDate ratio amount currency }
  }
}`;

const INDICATORS_QUERY = `query ChartIndicators($ticker: String!, $interval: Interval!, $from: DateTime,
  $session: Session, $adjustment: Adjustment!,
  $sma: Boolean!, $ema: Boolean!, $bbands: Boolean!, $rsi: Boolean!, $macd: Boolean!) {
  symbol(ticker: $ticker) {
    indicators(interval: $interval, from: $from, session: $session, adjustment: $adjustment) {
      sma(period: 20) @include(if: $sma) { time value }
      ema(period: 50) @include(if: $ema) { time value }
      bbands(period: 20) @include(if: $bbands) { time upper middle lower }
      rsi(period: 14) @include(if: $rsi) { time value }
      macd @include(if: $macd) { time macd signal histogram }
    }
  }
}`;

const SYMBOLS_QUERY = `query ChartSymbols($search: String) {
  symbols(first: 20, filter: { search: $search }) { nodes { ticker name exchange } }
}`;

const LIVE_SUBSCRIPTION = `subscription ChartLive($ticker: String!, $interval: Interval!, $since: DateTime,
  $session: Session, $adjustment: Adjustment!) {
  barUpdates(tickers: [$ticker], interval: $interval, since: $since, session: $session,
             adjustment: $adjustment) {
    interval
    version
    bar { time open high low close volume closed }
  }
}`;

// name -> how it is drawn: lines on the price pane (0) or in a pane of its own below.
const INDICATORS = {
  sma: { label: "SMA 20", pane: "price", lines: { value: "#f5a623" } },
  ema: { label: "EMA 50", pane: "price", lines: { value: "#7b61ff" } },
  bbands: {
    label: "BB 20",
    pane: "price",
    lines: { upper: "#90a4ae", middle: "#b0bec5", lower: "#90a4ae" },
  },
  rsi: { label: "RSI 14", pane: "lower", lines: { value: "#ab47bc" } },
  macd: {
    label: "MACD",
    pane: "lower",
    lines: { macd: "#2962ff", signal: "#ff6d00" },
    histogram: "histogram",
  },
};

const root = document.getElementById("chart");
const graphqlURL = new URL(root.dataset.graphql || "/graphql", location.href);
const params = new URLSearchParams(location.search);

/** What the page shows and did; read by the browser tests (tests/browser/test_chart.py). */
const state = {
  ticker: (params.get("ticker") || "AAPL").toUpperCase(),
  interval: INTERVALS.includes(params.get("interval")) ? params.get("interval") : "D1",
  indicators: (params.get("indicators") || "")
    .split(",")
    .filter((name) => name in INDICATORS),
  // null: the symbol's default session (Symbol.defaultSession); shown in the picker once known.
  session: SESSIONS.includes(params.get("session")) ? params.get("session") : null,
  adjustment: ADJUSTMENTS.includes(params.get("adjustment")) ? params.get("adjustment") : "RAW",
  query: params.get("query"),
  symbol: null,
  timezone: "UTC", // the exchange's time zone the axis shows intraday times in
  actions: [], // the symbol's corporate actions (Symbol.corporateActions)
  markers: [], // what the price series shows for them: {time, position, shape, color, text, id}
  bars: [], // {time (seconds), open, high, low, close, volume, closed}, oldest first
  hasOlder: false,
  olderCursor: null,
  loading: false,
  requests: [], // {operation, variables, status, ms}
  updates: [], // live bars received: {time, open, …, closed, version, receivedAt (epoch ms)}
  errors: [],
  firstCandleMs: null, // performance.now() at the first frame after the first candles were set
  timings: { module: performance.now() }, // milestones of the first load, same clock
  generation: 0, // bumped on every ticker/interval change: late answers are dropped
  chart: null,
  series: {},
  data: () => (state.series.candles ? state.series.candles.data() : []),
  visibleRange: () => state.chart.timeScale().getVisibleRange(),
  lastBar: () => state.bars[state.bars.length - 1] || null,
  /** The session and adjustment arguments every read sends. */
  options: () => ({ session: state.session, adjustment: state.adjustment }),
};
window.chartState = state;

// --- GraphQL over GET, with automatic persisted queries when the server offers them --------

let persisted = Boolean(globalThis.crypto && crypto.subtle);
// An API key, when the service needs one for reads (REQUIRE_READ_KEY): asked for on a 401 and
// kept for this tab only.
const KEY_STORAGE = "market-graphql-api-key";
let apiKey = sessionStorage.getItem(KEY_STORAGE);
const hashes = new Map();

async function sha256(text) {
  if (!hashes.has(text)) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    hashes.set(
      text,
      Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(""),
    );
  }
  return hashes.get(text);
}

function operationName(document) {
  const match = /^\s*(?:query|subscription)\s+(\w+)/.exec(document);
  return match ? match[1] : undefined;
}

async function get(search) {
  const url = new URL(graphqlURL);
  for (const [key, value] of Object.entries(search)) {
    if (value !== undefined) url.searchParams.set(key, value);
  }
  const headers = { accept: "application/graphql-response+json, application/json" };
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  const response = await fetch(url, { headers });
  if (response.status === 401 || response.status === 403) askForKey();
  return { status: response.status, body: await response.json() };
}

function codes(body) {
  return (body.errors || []).map((e) => e.extensions && e.extensions.code);
}

/** Run a query with GET; the data, or an Error carrying the GraphQL errors. */
async function query(document, variables) {
  const started = performance.now();
  if (state.timings.firstRequest === undefined) state.timings.firstRequest = started;
  const base = {
    variables: JSON.stringify(variables),
    operationName: operationName(document),
  };
  let answer = null;
  if (persisted) {
    const extensions = JSON.stringify({
      persistedQuery: { version: 1, sha256Hash: await sha256(document) },
    });
    answer = await get({ ...base, extensions });
    const found = codes(answer.body);
    if (found.includes("PERSISTED_QUERY_NOT_FOUND")) {
      answer = await get({ ...base, extensions, query: document });
    } else if (answer.status === 400 && found.includes("BAD_REQUEST") && !answer.body.data) {
      persisted = false; // the server has persisted queries off: send the text from now on
      answer = null;
    }
  }
  if (answer === null) answer = await get({ ...base, query: document });
  if (state.timings.firstResponse === undefined) state.timings.firstResponse = performance.now();
  state.requests.push({
    operation: base.operationName,
    variables,
    status: answer.status,
    ms: performance.now() - started,
  });
  if (answer.body.errors && answer.body.errors.length) {
    const error = new Error(answer.body.errors.map((e) => e.message).join("; "));
    error.errors = answer.body.errors;
    throw error;
  }
  return answer.body.data;
}

function askForKey() {
  const form = document.getElementById("key-form");
  if (!form.hidden) return;
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = document.getElementById("api-key").value.trim() || null;
    if (apiKey) sessionStorage.setItem(KEY_STORAGE, apiKey);
    else sessionStorage.removeItem(KEY_STORAGE);
    form.hidden = true;
    if (wsClient) wsClient.dispose();
    wsClient = null;
    if (state.query) runQueryMode();
    else loadLatest();
  }, { once: true });
}

// --- The chart --------------------------------------------------------------------------

const seconds = (iso) => Date.parse(iso) / 1000;

function toBar(node) {
  return {
    time: seconds(node.time),
    open: node.open,
    high: node.high,
    low: node.low,
    close: node.close,
    volume: node.volume,
    closed: node.closed,
  };
}

const volumeOf = (bar) => ({
  time: bar.time,
  value: bar.volume,
  color: bar.close >= bar.open ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)",
});

function buildChart() {
  const chart = createChart(root, {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#333", panes: { separatorColor: "#ddd" } },
    grid: { vertLines: { color: "#f0f0f0" }, horzLines: { color: "#f0f0f0" } },
    timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 3 },
    crosshair: { mode: 0 },
    localization: { timeFormatter: formatTime },
  });
  chart.timeScale().applyOptions({ tickMarkFormatter: formatTick });
  const candles = chart.addSeries(CandlestickSeries, {
    upColor: UP,
    downColor: DOWN,
    borderVisible: false,
    wickUpColor: UP,
    wickDownColor: DOWN,
  });
  const volume = chart.addSeries(HistogramSeries, {
    priceFormat: { type: "volume" },
    priceScaleId: "volume",
    lastValueVisible: false,
    priceLineVisible: false,
  });
  chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
  // Near the left edge, load older bars. Checked a frame later against the range then: a
  // switch of symbol or interval reports the old view's range before it scrolls to the end.
  let pendingCheck = false;
  chart.timeScale().subscribeVisibleLogicalRangeChange(() => {
    if (pendingCheck || state.query) return;
    pendingCheck = true;
    requestAnimationFrame(() => {
      pendingCheck = false;
      const range = chart.timeScale().getVisibleLogicalRange();
      if (range && range.from < 10) loadOlder();
    });
  });
  chart.subscribeCrosshairMove((param) => {
    const bar = param.seriesData && param.seriesData.get(candles);
    showLegend(bar || state.lastBar());
  });
  state.chart = chart;
  state.series = { candles, volume, indicators: [] };
  state.markerPlugin = createSeriesMarkers(candles, []);
}

/** One line describing a corporate action ("Split 2:1, ex-date 2005-02-28"). */
function actionText(action) {
  if (action.kind === "SPLIT") {
    let d = 1;
    while (d < 1000 && Math.abs(action.ratio * d - Math.round(action.ratio * d)) > 1e-9) d += 1;
    return `Split ${Math.round(action.ratio * d)}:${d}`;
  }
  return `Div ${action.amount} ${action.currency}`;
}

/** Markers for the corporate actions on the loaded bars: each on the first bar starting at
 * or after 00:00 UTC of its ex-date (the ex-date's bar on D1, its first session bar intraday). */
function drawMarkers() {
  const markers = [];
  const bars = state.bars;
  for (const action of state.actions) {
    const exDay = Date.parse(`${action.exDate}T00:00:00Z`) / 1000;
    if (!bars.length || exDay < bars[0].time || exDay > bars[bars.length - 1].time) continue;
    let lo = 0;
    let hi = bars.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (bars[mid].time < exDay) lo = mid + 1;
      else hi = mid;
    }
    // A weekly or monthly bar starting before the ex-date holds it: the bar before `lo`.
    const coarse = state.interval === "W1" || state.interval === "MN1";
    const index = coarse && (lo >= bars.length || bars[lo].time > exDay) ? lo - 1 : lo;
    if (index < 0 || index >= bars.length) continue;
    markers.push({
      id: `${action.kind.toLowerCase()}-${action.exDate}`,
      time: bars[index].time,
      position: "belowBar",
      shape: action.kind === "SPLIT" ? "square" : "circle",
      color: MARKER_COLORS[action.kind],
      text: actionText(action),
      exDate: action.exDate,
      kind: action.kind,
    });
  }
  markers.sort((a, b) => a.time - b.time);
  state.markers = markers;
  state.markerPlugin.setMarkers(markers.map(({ exDate, kind, ...marker }) => marker));
}

// Times on the axis and crosshair in the exchange's time zone (Symbol.tradingHours.timezone):
// an H1 bar of a New York stock reads 09:30, not 14:30 UTC. Daily and coarser bars are stamped
// 00:00 UTC of their trading date, so their dates are read in UTC. The data keeps UTC seconds.
const COARSE = new Set(["D1", "W1", "MN1"]);
const formatters = new Map();

function formatter(timeZone, options) {
  const key = `${timeZone}|${JSON.stringify(options)}`;
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.DateTimeFormat("en-CA", { timeZone, hourCycle: "h23", ...options }));
  }
  return formatters.get(key);
}

function zoneOf() {
  return COARSE.has(state.interval) ? "UTC" : state.timezone || "UTC";
}

function formatTime(time) {
  const date = new Date(time * 1000);
  const day = formatter(zoneOf(), { year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
  if (COARSE.has(state.interval)) return day;
  return `${day} ${formatter(zoneOf(), { hour: "2-digit", minute: "2-digit" }).format(date)}`;
}

// lightweight-charts' TickMarkType: 0 year, 1 month, 2 day of month, 3 time, 4 time with seconds.
function formatTick(time, type) {
  const date = new Date(time * 1000);
  const zone = zoneOf();
  if (type === 0) return formatter(zone, { year: "numeric" }).format(date);
  if (type === 1) return formatter(zone, { month: "short" }).format(date);
  if (type === 2) return formatter(zone, { day: "numeric" }).format(date);
  return formatter(zone, { hour: "2-digit", minute: "2-digit" }).format(date);
}
state.formatTime = formatTime;

function precisionOf(bars) {
  let decimals = 2;
  for (const bar of bars.slice(-50)) {
    for (const price of [bar.open, bar.high, bar.low, bar.close]) {
      let d = 0;
      while (d < 8 && Math.abs(Math.round(price * 10 ** d) - price * 10 ** d) > 1e-6) d += 1;
      decimals = Math.max(decimals, d);
    }
  }
  return decimals;
}

function drawBars() {
  const { candles, volume } = state.series;
  const precision = precisionOf(state.bars);
  candles.applyOptions({ priceFormat: { type: "price", precision, minMove: 10 ** -precision } });
  candles.setData(state.bars.map(({ time, open, high, low, close }) => ({ time, open, high, low, close })));
  volume.setData(state.bars.map(volumeOf));
  drawMarkers();
  showLegend(state.lastBar());
}

function showLegend(bar) {
  const legend = document.getElementById("legend");
  if (!bar) {
    legend.textContent = "";
    return;
  }
  const adjusted = state.adjustment === "RAW" ? "" : ` · adj. ${state.adjustment}`;
  const name = state.symbol ? `${state.symbol.ticker} · ${state.interval}${adjusted}` : state.interval;
  const f = (v) => (v === undefined ? "" : Number(v).toLocaleString(undefined, { maximumFractionDigits: 8 }));
  legend.textContent = `${name}  O ${f(bar.open)} H ${f(bar.high)} L ${f(bar.low)} C ${f(bar.close)}`;
}

function setStatus(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
  if (isError) state.errors.push(text);
}

// --- Loading bars -----------------------------------------------------------------------

async function loadLatest(pending = null) {
  const generation = ++state.generation;
  state.bars = [];
  state.hasOlder = false;
  state.olderCursor = null;
  state.symbol = null;
  state.actions = [];
  state.loading = true;
  setStatus("loading…");
  try {
    const data = await (pending || latestPage());
    if (generation !== state.generation) return;
    if (!data.symbol) {
      drawBars();
      setStatus(`unknown symbol ${state.ticker}`, true);
      return;
    }
    const { bars, corporateActions, ...symbol } = data.symbol;
    state.symbol = symbol;
    state.actions = corporateActions || [];
    state.timezone = symbol.tradingHours.timezone;
    showDefaultSession();
    state.bars = bars.nodes.map(toBar);
    state.hasOlder = bars.pageInfo.hasPreviousPage;
    state.olderCursor = bars.pageInfo.startCursor;
    drawBars();
    // Not scrollToRealTime(): it animates, and on the way the view passes the left edge
    // (after a scroll back), which would load older bars no one asked for.
    state.chart.timeScale().scrollToPosition(3, false);
    if (state.firstCandleMs === null && state.bars.length) {
      requestAnimationFrame(() => {
        state.firstCandleMs = performance.now();
      });
    }
    state.timings.drawn = performance.now();
    setStatus(state.bars.length ? `${symbol.name} · ${symbol.exchange}` : "no bars at this interval");
    subscribeLive(generation);
    loadIndicators(generation);
  } catch (error) {
    if (generation === state.generation) setStatus(error.message, true);
  } finally {
    if (generation === state.generation) state.loading = false;
  }
}

function latestPage() {
  return query(BARS_QUERY, {
    ticker: state.ticker,
    interval: state.interval,
    last: PAGE_SIZE,
    ...state.options(),
    actions: true,
  });
}

async function loadOlder() {
  if (state.loading || !state.hasOlder || !state.olderCursor) return;
  const generation = state.generation;
  state.loading = true;
  setStatus("loading older bars…");
  try {
    const data = await query(BARS_QUERY, {
      ticker: state.ticker,
      interval: state.interval,
      last: PAGE_SIZE,
      before: state.olderCursor,
      ...state.options(),
      actions: false,
    });
    if (generation !== state.generation || !data.symbol) return;
    const { bars } = data.symbol;
    const older = bars.nodes.map(toBar);
    const first = state.bars.length ? state.bars[0].time : Infinity;
    state.bars = older.filter((bar) => bar.time < first).concat(state.bars);
    state.hasOlder = bars.pageInfo.hasPreviousPage;
    state.olderCursor = bars.pageInfo.startCursor;
    drawBars();
    setStatus(`${state.bars.length} bars`);
    loadIndicators(generation);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    if (generation === state.generation) state.loading = false;
  }
}

// --- Indicators -------------------------------------------------------------------------

function clearIndicators() {
  for (const series of state.series.indicators) state.chart.removeSeries(series);
  state.series.indicators = [];
}

function lineData(times, values) {
  const points = [];
  for (let i = 0; i < times.length; i += 1) {
    if (values[i] !== null && values[i] !== undefined) points.push({ time: seconds(times[i]), value: values[i] });
  }
  return points;
}

const PALETTE = ["#00897b", "#f4511e", "#3949ab", "#c0ca33", "#8e24aa"];
// Indicators in price units, drawn over the candles when a query from GraphiQL has them.
const PRICE_OVERLAYS = new Set(["sma", "ema", "wma", "bbands", "vwap"]);

/** How to draw an indicator result we have no preset for: every value column a line. */
function genericSpec(name, result) {
  const fields = Object.keys(result).filter((key) => key !== "time" && Array.isArray(result[key]));
  const lines = Object.fromEntries(fields.map((field, i) => [field, PALETTE[i % PALETTE.length]]));
  const base = name.replace(/^.*\./, "").replace(/\[.*$/, "");
  return { label: name, pane: PRICE_OVERLAYS.has(base) ? "price" : "lower", lines };
}

/** Draw indicator results (`IndicatorSet` fields by name) over the loaded bars. */
function drawIndicators(results) {
  clearIndicators();
  let nextPane = 1;
  for (const [name, result] of Object.entries(results)) {
    if (!result) continue;
    const spec = INDICATORS[name] || genericSpec(name, result);
    const pane = spec.pane === "price" ? 0 : nextPane++;
    for (const [field, color] of Object.entries(spec.lines)) {
      const series = state.chart.addSeries(
        LineSeries,
        {
          color,
          lineWidth: 1.5,
          priceLineVisible: false,
          lastValueVisible: false,
          // A query from GraphiQL names its own parameters: label by field, not by our presets.
          title: field === "value" ? (state.query ? name : spec.label || name) : field,
        },
        pane,
      );
      series.setData(lineData(result.time, result[field]));
      state.series.indicators.push(series);
    }
    if (spec.histogram) {
      const histogram = state.chart.addSeries(HistogramSeries, { color: "#b0bec5", priceLineVisible: false, lastValueVisible: false }, pane);
      histogram.setData(lineData(result.time, result[spec.histogram]));
      state.series.indicators.push(histogram);
    }
  }
  const panes = state.chart.panes();
  panes.forEach((p, i) => p.setStretchFactor(i === 0 ? 4 : 1));
}

async function loadIndicators(generation) {
  if (!state.indicators.length || !state.bars.length) {
    clearIndicators();
    return;
  }
  const variables = {
    ticker: state.ticker,
    interval: state.interval,
    from: new Date(state.bars[0].time * 1000).toISOString(),
    ...state.options(),
  };
  for (const name of Object.keys(INDICATORS)) variables[name] = state.indicators.includes(name);
  try {
    const data = await query(INDICATORS_QUERY, variables);
    if (generation !== state.generation || !data.symbol) return;
    const { interval, ...results } = data.symbol.indicators;
    drawIndicators(results);
  } catch (error) {
    setStatus(error.message, true);
  }
}

// --- Live bars --------------------------------------------------------------------------

let wsClient = null;
let unsubscribe = null;
let indicatorTimer = null;

function subscribeLive(generation) {
  if (unsubscribe) unsubscribe();
  unsubscribe = null;
  if (!wsClient) {
    const url = new URL(graphqlURL);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    wsClient = createClient({
      url: url.toString(),
      lazy: true,
      retryAttempts: 1e9,
      connectionParams: () => (apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
    });
  }
  const last = state.lastBar();
  unsubscribe = wsClient.subscribe(
    {
      query: LIVE_SUBSCRIPTION,
      operationName: "ChartLive",
      variables: {
        ticker: state.ticker,
        interval: state.interval,
        // From the newest loaded bar on: the subscription replays it and anything after it,
        // so nothing written between the page's read and the subscription is missed.
        since: last ? new Date(last.time * 1000).toISOString() : null,
        ...state.options(),
      },
    },
    {
      next: ({ data, errors }) => {
        if (generation !== state.generation) return;
        if (errors && errors.length) setStatus(errors.map((e) => e.message).join("; "), true);
        if (data && data.barUpdates) applyUpdate(data.barUpdates);
      },
      error: (error) => setStatus(`live updates stopped: ${error.message || error.reason || error}`, true),
      complete: () => {},
    },
  );
}

function applyUpdate(update) {
  const bar = toBar(update.bar);
  const bars = state.bars;
  const { candles, volume } = state.series;
  const last = bars[bars.length - 1];
  state.updates.push({ ...bar, version: update.version, receivedAt: Date.now() });
  const same = (a) =>
    a && a.time === bar.time && a.open === bar.open && a.high === bar.high && a.low === bar.low &&
    a.close === bar.close && a.volume === bar.volume && a.closed === bar.closed;
  // The replay from `since` repeats the newest loaded bar: nothing to redraw.
  if (same(last)) return;
  const candle = { time: bar.time, open: bar.open, high: bar.high, low: bar.low, close: bar.close };
  if (!last || bar.time >= last.time) {
    // The forming bar grows in place (same time) or a new bar starts.
    if (last && bar.time === last.time) bars[bars.length - 1] = bar;
    else bars.push(bar);
    candles.update(candle);
    volume.update(volumeOf(bar));
  } else {
    // A revision of an older bar: replace it where it stands (or insert it) and redraw.
    let lo = 0;
    let hi = bars.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (bars[mid].time < bar.time) lo = mid + 1;
      else hi = mid;
    }
    if (lo < bars.length && bars[lo].time === bar.time) bars[lo] = bar;
    else if (lo > 0) bars.splice(lo, 0, bar); // older than the loaded range: not shown
    drawBars();
  }
  showLegend(state.lastBar());
  if (state.indicators.length) {
    clearTimeout(indicatorTimer);
    const generation = state.generation;
    indicatorTimer = setTimeout(() => loadIndicators(generation), 1000);
  }
}

// --- A query from GraphiQL ("chart this"): draw whatever bars and indicators it returns ---

function findDrawables(value, path, found) {
  if (!value || typeof value !== "object") return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => findDrawables(item, `${path}[${i}]`, found));
    return;
  }
  const isColumns = Array.isArray(value.time) && Array.isArray(value.close) && Array.isArray(value.open);
  const nodes = value.nodes || (value.edges && value.edges.map((e) => e && e.node));
  const isBars =
    Array.isArray(nodes) && nodes.length && nodes[0] && "time" in nodes[0] && "close" in nodes[0] && "open" in nodes[0];
  if (isColumns && !found.bars) {
    found.bars = value.time.map((time, i) => ({
      time: seconds(time),
      open: value.open[i],
      high: (value.high || value.close)[i],
      low: (value.low || value.close)[i],
      close: value.close[i],
      volume: value.volume ? value.volume[i] : 0,
    }));
    found.barsPath = path;
    return;
  }
  if (isBars && !found.bars) {
    found.bars = nodes
      .map((n) => ({ ...n, high: n.high ?? n.close, low: n.low ?? n.close, volume: n.volume ?? 0, time: seconds(n.time) }))
      .sort((a, b) => a.time - b.time);
    found.barsPath = path;
    return;
  }
  if (Array.isArray(value.time) && !isColumns) {
    const name = path.split(".").pop().replace(/\[.*$/, "");
    found.indicators[name in found.indicators ? path : name] = value;
    return;
  }
  for (const [key, child] of Object.entries(value)) findDrawables(child, path ? `${path}.${key}` : key, found);
}

async function runQueryMode() {
  document.body.classList.add("query-mode");
  if (!document.querySelector(".query-panel")) {
    const panel = document.createElement("details");
    panel.className = "query-panel";
    panel.innerHTML = "<summary>query</summary><pre></pre>";
    panel.querySelector("pre").textContent = state.query;
    document.querySelector(".toolbar").append(panel);
  }
  const link = document.getElementById("graphiql-link");
  link.href = `/graphql?q=${encodeURIComponent(state.query)}${params.get("variables") ? `&variables=${encodeURIComponent(params.get("variables"))}` : ""}`;
  let variables = {};
  try {
    variables = params.get("variables") ? JSON.parse(params.get("variables")) : {};
  } catch {
    setStatus("the variables are not valid JSON", true);
    return;
  }
  try {
    const data = await query(state.query, variables);
    const found = { bars: null, indicators: {} };
    findDrawables(data, "", found);
    if (!found.bars && !Object.keys(found.indicators).length) {
      setStatus("the result holds no bars, series or indicators to draw", true);
      return;
    }
    state.bars = found.bars || [];
    drawBars();
    drawIndicators(found.indicators);
    state.chart.timeScale().fitContent();
    if (state.bars.length) {
      requestAnimationFrame(() => {
        state.firstCandleMs = performance.now();
      });
    }
    setStatus(`${found.barsPath || "indicators"}: ${state.bars.length} bars`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

// --- Controls ---------------------------------------------------------------------------

function syncAddress() {
  const search = new URLSearchParams({ ticker: state.ticker, interval: state.interval });
  if (state.session) search.set("session", state.session);
  if (state.adjustment !== "RAW") search.set("adjustment", state.adjustment);
  if (state.indicators.length) search.set("indicators", state.indicators.join(","));
  history.replaceState(null, "", `?${search}`);
}

function buildControls() {
  const symbolInput = document.getElementById("symbol");
  symbolInput.value = state.ticker;
  const intervalSelect = document.getElementById("interval");
  for (const interval of INTERVALS) intervalSelect.add(new Option(interval, interval));
  intervalSelect.value = state.interval;
  const sessionSelect = document.getElementById("session");
  sessionSelect.add(new Option("default session", ""));
  for (const session of SESSIONS) sessionSelect.add(new Option(session.toLowerCase(), session));
  sessionSelect.value = state.session || "";
  sessionSelect.addEventListener("change", () => setOptions({ session: sessionSelect.value || null }));
  const adjustmentSelect = document.getElementById("adjustment");
  const adjustmentLabels = { RAW: "as printed", SPLIT: "split-adjusted", DIVIDEND: "dividend-adjusted", ALL: "adjusted" };
  for (const adjustment of ADJUSTMENTS) adjustmentSelect.add(new Option(adjustmentLabels[adjustment], adjustment));
  adjustmentSelect.value = state.adjustment;
  adjustmentSelect.addEventListener("change", () => setOptions({ adjustment: adjustmentSelect.value }));
  const box = document.getElementById("indicators");
  for (const [name, spec] of Object.entries(INDICATORS)) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = name;
    input.checked = state.indicators.includes(name);
    label.append(input, ` ${spec.label}`);
    box.append(label);
    input.addEventListener("change", () => {
      state.indicators = Object.keys(INDICATORS).filter((n) => box.querySelector(`input[value=${n}]`).checked);
      syncAddress();
      loadIndicators(state.generation);
    });
  }
  intervalSelect.addEventListener("change", () => setView(state.ticker, intervalSelect.value));
  document.getElementById("symbol-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setView(symbolInput.value, state.interval);
  });
  let searchTimer = null;
  symbolInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(async () => {
      const text = symbolInput.value.trim();
      if (!text) return;
      try {
        const data = await query(SYMBOLS_QUERY, { search: text });
        const list = document.getElementById("symbol-list");
        list.replaceChildren(
          ...data.symbols.nodes.map((s) => new Option(`${s.name} · ${s.exchange}`, s.ticker)),
        );
      } catch (error) {
        setStatus(error.message, true);
      }
    }, 150);
  });
  // Picking a suggestion from the list sets the whole ticker at once: show it.
  symbolInput.addEventListener("change", () => {
    const options = Array.from(document.getElementById("symbol-list").options, (o) => o.value);
    if (options.includes(symbolInput.value.trim().toUpperCase())) setView(symbolInput.value, state.interval);
  });
}

/** Show another symbol or interval (also what the controls call). */
function setView(ticker, interval) {
  state.ticker = ticker.trim().toUpperCase();
  state.interval = interval;
  document.getElementById("symbol").value = state.ticker;
  document.getElementById("interval").value = state.interval;
  syncAddress();
  return loadLatest();
}
state.setView = setView;
state.loadOlder = loadOlder;

/** Name the symbol's default session in the picker's first entry ("default (regular)"). */
function showDefaultSession() {
  const first = document.querySelector("#session option[value='']");
  if (first && state.symbol) first.textContent = `default (${state.symbol.defaultSession.toLowerCase()})`;
}

/** Switch session (null: the symbol's default) and/or adjustment, and reload. */
function setOptions({ session = state.session, adjustment = state.adjustment } = {}) {
  state.session = SESSIONS.includes(session) ? session : null;
  state.adjustment = ADJUSTMENTS.includes(adjustment) ? adjustment : "RAW";
  document.getElementById("session").value = state.session || "";
  document.getElementById("adjustment").value = state.adjustment;
  syncAddress();
  return loadLatest();
}
state.setOptions = setOptions;
state.setIndicators = (names) => {
  state.indicators = names.filter((name) => name in INDICATORS);
  for (const input of document.querySelectorAll("#indicators input")) input.checked = state.indicators.includes(input.value);
  syncAddress();
  return loadIndicators(state.generation);
};

// The first page is asked for before the chart is built: the two overlap.
const firstPage = state.query ? null : latestPage();
buildChart();
state.timings.chartBuilt = performance.now();
if (state.query) {
  runQueryMode();
} else {
  buildControls();
  loadLatest(firstPage);
}
