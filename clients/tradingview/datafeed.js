// A TradingView datafeed (Charting Library / Trading Platform JS API, `IBasicDataFeed`) over
// market-graphql's GraphQL API: bars from `Symbol.bars` over HTTP, live bars from the
// `barUpdates` subscription over graphql-transport-ws (the `graphql-ws` package).
//
//   import { createDatafeed } from "./datafeed.js";
//   new TradingView.widget({ datafeed: createDatafeed({ url: "https://host/graphql" }), ... });
//
// A plain ES module with one import, `graphql-ws` (npm; resolve it with your bundler or an
// import map). Types: datafeed.d.ts. Contract and choices: docs/tradingview.md.

import { createClient } from "graphql-ws";

/** TradingView resolution -> market-graphql interval. */
export const RESOLUTIONS = Object.freeze({
  1: "M1",
  5: "M5",
  15: "M15",
  30: "M30",
  60: "H1",
  240: "H4",
  "1D": "D1",
  D: "D1",
  "1W": "W1",
  W: "W1",
  "1M": "MN1",
  M: "MN1",
});
export const SUPPORTED_RESOLUTIONS = Object.freeze(["1", "5", "15", "30", "60", "240", "1D", "1W", "1M"]);
const INTERVAL_SECONDS = { M1: 60, M5: 300, M15: 900, M30: 1800, H1: 3600, H4: 14400, D1: 86400, W1: 604800, MN1: 2678400 };
const INTRADAY = new Set(["M1", "M5", "M15", "M30", "H1", "H4"]);

const BAR = "time open high low close volume";

export const SYMBOL_QUERY = `query DatafeedSymbol($ticker: String!) {
  symbol(ticker: $ticker) {
    ticker name exchange assetClass currency active
    tradingHours { timezone regular extended }
    storedTimeframes { interval }
    recent: bars(interval: D1, first: 50) { nodes { open high low close volume } }
  }
}`;

export const SEARCH_QUERY = `query DatafeedSearch($first: Int!, $filter: SymbolFilter) {
  symbols(first: $first, filter: $filter) { nodes { ticker name exchange assetClass } }
}`;

// `session` (null: the symbol's default) and `adjustment` (default RAW) of every bar read.
const OPTIONS = "session: $session, adjustment: $adjustment";
const OPTION_VARIABLES = "$session: Session, $adjustment: Adjustment! = RAW";

export const COUNTBACK_QUERY = `query DatafeedCountback($ticker: String!, $interval: Interval!, $to: DateTime!, $first: Int!, ${OPTION_VARIABLES}) {
  symbol(ticker: $ticker) { bars(interval: $interval, to: $to, first: $first, ${OPTIONS}) { nodes { ${BAR} } } }
}`;

export const RANGE_QUERY = `query DatafeedRange($ticker: String!, $interval: Interval!, $from: DateTime!, $to: DateTime!, $first: Int!, $after: String, ${OPTION_VARIABLES}) {
  symbol(ticker: $ticker) {
    bars(interval: $interval, from: $from, to: $to, first: $first, after: $after, order: OLDEST_FIRST, ${OPTIONS}) {
      nodes { ${BAR} }
      pageInfo { hasNextPage endCursor }
    }
    older: bars(interval: $interval, to: $from, first: 1, ${OPTIONS}) { nodes { time } }
  }
}`;

export const BARS_SUBSCRIPTION = `subscription DatafeedBars($ticker: String!, $interval: Interval!, ${OPTION_VARIABLES}) {
  barUpdates(tickers: [$ticker], interval: $interval, ${OPTIONS}) { bar { ${BAR} closed } }
}`;

export const ACTIONS_QUERY = `query DatafeedActions($ticker: String!, $from: Date!, $to: Date!) {
  symbol(ticker: $ticker) { corporateActions(from: $from, to: $to) { kind exDate ratio amount currency } }
}`;

const MARK_COLORS = { SPLIT: "#1565c0", DIVIDEND: "#2e7d32" };

/** One line describing a corporate action ("Split 2:1, ex-date 2005-02-28"). */
export function actionText(action) {
  let what;
  if (action.kind === "SPLIT") {
    // new shares per old share as n:d (2 -> 2:1, 0.1 -> 1:10)
    let d = 1;
    while (d < 1000 && Math.abs(action.ratio * d - Math.round(action.ratio * d)) > 1e-9) d += 1;
    what = `Split ${Math.round(action.ratio * d)}:${d}`;
  } else {
    what = `Dividend ${action.amount} ${action.currency}`;
  }
  return `${what}, ex-date ${action.exDate}`;
}

/** Unix seconds of wall-clock `hhmm` on date `day` (YYYY-MM-DD) in IANA zone `timeZone`. */
export function zonedSeconds(day, hhmm, timeZone) {
  const guess = Date.parse(`${day}T${hhmm.slice(0, 2)}:${hhmm.slice(2, 4)}:00Z`);
  // The zone's offset at that moment, read back through Intl (no time zone library needed).
  const offsetAt = (ms) => {
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
        .formatToParts(new Date(ms))
        .map((p) => [p.type, p.value]),
    );
    return Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second) - ms;
  };
  let ms = guess - offsetAt(guess);
  ms = guess - offsetAt(ms); // once more, for a DST change between the guess and the answer
  return ms / 1000;
}

/** Where a mark goes: 00:00 UTC of the ex-date on daily and coarser bars (how they are
 * stamped), the ex-date's session open on intraday ones (from the symbol's session string and
 * time zone: 09:30 New York for US stocks), so it sits on that day's first bar. */
export function markTime(exDate, resolution, symbolInfo) {
  const midnight = Date.parse(`${exDate}T00:00:00Z`) / 1000;
  const interval = RESOLUTIONS[resolution];
  const session = symbolInfo && symbolInfo.session;
  if (!interval || !INTRADAY.has(interval) || !session || session === "24x7") return midnight;
  const match = /^(\d{4})-(\d{4})/.exec(session);
  if (!match) return midnight;
  const open = zonedSeconds(exDate, match[1], symbolInfo.timezone || "Etc/UTC");
  // An open after the close spans midnight: the session opened the evening before.
  return match[1] > match[2] ? open - 86400 : open;
}

/** The first date (YYYY-MM-DD) whose 00:00 UTC is at or after `seconds`. */
const dayAtOrAfter = (seconds) => new Date(Math.ceil(seconds / 86400) * 86400 * 1000).toISOString().slice(0, 10);

/** Milliseconds of a bar's start; daily and coarser bars at 00:00 UTC of their date. */
export function barTime(iso, interval) {
  const ms = Date.parse(iso);
  if (INTRADAY.has(interval)) return ms;
  const day = new Date(ms);
  return Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate());
}

function decimals(values, most) {
  let needed = 0;
  for (const value of values) {
    if (!Number.isFinite(value)) continue;
    while (needed < most && Math.abs(Math.round(value * 10 ** needed) - value * 10 ** needed) > 1e-6) needed += 1;
  }
  return needed;
}

const isoOf = (seconds) => new Date(seconds * 1000).toISOString();
const later = (fn) => setTimeout(fn, 0); // the library wants callbacks asynchronously

export class GraphQLDatafeed {
  /**
   * @param {object} options
   * @param {string} options.url GraphQL endpoint over HTTP, e.g. "https://host/graphql".
   * @param {string} [options.wsUrl] its WebSocket URL (default: `url` with ws:/wss:).
   * @param {string} [options.apiKey] sent as `authorization: Bearer …` (HTTP and connection_init).
   * @param {number} [options.pageSize] bars per request (the server's maximum is 10,000).
   * @param {string} [options.session] REGULAR, EXTENDED or ALL for every bar read (default: the
   *   symbol's default session, or EXTENDED when the chart's subsession is "extended").
   * @param {string} [options.adjustment] RAW (default), SPLIT, DIVIDEND or ALL.
   */
  constructor({ url, wsUrl, apiKey, pageSize = 5000, session = null, adjustment = "RAW", fetch: fetchImpl, webSocketImpl } = {}) {
    if (!url) throw new Error("createDatafeed: `url` (the GraphQL endpoint) is required");
    this.url = new URL(url, globalThis.location ? globalThis.location.href : undefined).toString();
    const ws = new URL(wsUrl || this.url);
    if (!wsUrl) ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
    this.wsUrl = ws.toString();
    this.apiKey = apiKey;
    this.pageSize = pageSize;
    this.session = session;
    this.adjustment = adjustment;
    this.fetch = fetchImpl || globalThis.fetch.bind(globalThis);
    this.webSocketImpl = webSocketImpl;
    this.client = null;
    this.subscriptions = new Map(); // listenerGuid -> { dispose, lastTime }
    this.lastBarTimes = new Map(); // "TICKER|resolution" -> newest bar time getBars returned
  }

  async query(document, variables) {
    const headers = { "content-type": "application/json", accept: "application/graphql-response+json, application/json" };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    const response = await this.fetch(this.url, {
      method: "POST",
      headers,
      body: JSON.stringify({ query: document, variables }),
    });
    let body;
    try {
      body = await response.json();
    } catch {
      throw new Error(`market-graphql answered ${response.status} without JSON`);
    }
    if (body.errors && body.errors.length) throw new Error(body.errors.map((e) => e.message).join("; "));
    if (!response.ok) throw new Error(`market-graphql answered ${response.status}`);
    return body.data;
  }

  onReady(callback) {
    later(() =>
      callback({
        supported_resolutions: [...SUPPORTED_RESOLUTIONS],
        supports_marks: true, // corporate actions (Symbol.corporateActions)
        supports_timescale_marks: true,
        supports_time: false,
        exchanges: [],
        symbols_types: [],
      }),
    );
  }

  searchSymbols(userInput, exchange, symbolType, onResult) {
    const filter = {};
    if (userInput) filter.search = userInput.split(":").pop();
    if (exchange) filter.exchange = exchange;
    if (symbolType) filter.assetClass = symbolType;
    this.query(SEARCH_QUERY, { first: 30, filter }).then(
      (data) =>
        onResult(
          data.symbols.nodes.map((s) => ({
            symbol: s.ticker,
            full_name: `${s.exchange}:${s.ticker}`,
            description: s.name,
            exchange: s.exchange,
            ticker: s.ticker,
            type: s.assetClass,
          })),
        ),
      () => onResult([]),
    );
  }

  resolveSymbol(symbolName, onResolve, onError) {
    const ticker = symbolName.split(":").pop().trim();
    this.query(SYMBOL_QUERY, { ticker }).then(
      (data) => {
        const s = data.symbol;
        if (!s) return onError(`unknown symbol ${ticker}`);
        const stored = s.storedTimeframes.map((t) => t.interval);
        const finest = stored.sort((a, b) => INTERVAL_SECONDS[a] - INTERVAL_SECONDS[b])[0] || "D1";
        // Bars finer than the finest stored timeframe cannot be made; coarser ones are resampled.
        const resolutions = SUPPORTED_RESOLUTIONS.filter((r) => {
          const seconds = INTERVAL_SECONDS[RESOLUTIONS[r]];
          return seconds >= INTERVAL_SECONDS[finest] && (seconds % INTERVAL_SECONDS[finest] === 0 || !INTRADAY.has(RESOLUTIONS[r]));
        });
        const recent = s.recent.nodes;
        const prices = recent.flatMap((b) => [b.open, b.high, b.low, b.close]);
        onResolve({
          name: s.ticker,
          ticker: s.ticker,
          full_name: `${s.exchange}:${s.ticker}`,
          description: s.name,
          type: s.assetClass,
          exchange: s.exchange,
          listed_exchange: s.exchange,
          currency_code: s.currency,
          // The calendar's hours (Symbol.tradingHours); bars are bucketed from its session open.
          session: s.tradingHours.regular,
          timezone: s.tradingHours.timezone,
          ...(s.tradingHours.extended
            ? {
                subsession_id: "regular",
                subsessions: [
                  { id: "regular", description: "Regular Trading Hours", session: s.tradingHours.regular },
                  { id: "extended", description: "Extended Trading Hours", session: s.tradingHours.extended },
                ],
              }
            : {}),
          minmov: 1,
          pricescale: 10 ** Math.max(decimals(prices, 8), 2),
          format: "price",
          has_intraday: INTRADAY.has(finest),
          has_daily: true,
          has_weekly_and_monthly: true,
          supported_resolutions: resolutions,
          intraday_multipliers: resolutions.filter((r) => INTRADAY.has(RESOLUTIONS[r])),
          volume_precision: decimals(recent.map((b) => b.volume), 8),
          data_status: s.active ? "streaming" : "endofday",
        });
      },
      (error) => onError(error.message),
    );
  }

  /** Bars for TradingView (`periodParams`: from/to in seconds, to exclusive; countBack). */
  async loadBars(ticker, resolution, { from, to, countBack }, options = this.barOptions()) {
    const interval = RESOLUTIONS[resolution];
    if (!interval) throw new Error(`unsupported resolution ${resolution}`);
    const toBar = (n) => ({ time: barTime(n.time, interval), open: n.open, high: n.high, low: n.low, close: n.close, volume: n.volume });
    if (countBack) {
      // countBack wins over `from`: the newest countBack bars before `to`.
      const data = await this.query(COUNTBACK_QUERY, { ticker, interval, to: isoOf(to), first: Math.min(countBack, this.pageSize), ...options });
      if (!data.symbol) throw new Error(`unknown symbol ${ticker}`);
      const bars = data.symbol.bars.nodes.map(toBar).reverse();
      return { bars, meta: { noData: bars.length === 0 } };
    }
    const bars = [];
    let after = null;
    let older = [];
    for (;;) {
      const data = await this.query(RANGE_QUERY, { ticker, interval, from: isoOf(from), to: isoOf(to), first: this.pageSize, after, ...options });
      if (!data.symbol) throw new Error(`unknown symbol ${ticker}`);
      bars.push(...data.symbol.bars.nodes.map(toBar));
      older = data.symbol.older.nodes;
      if (!data.symbol.bars.pageInfo.hasNextPage) break;
      after = data.symbol.bars.pageInfo.endCursor;
    }
    if (bars.length) return { bars, meta: { noData: false } };
    const meta = { noData: true };
    if (older.length) meta.nextTime = barTime(older[0].time, interval) / 1000;
    return { bars, meta };
  }

  /** `bars` variables: the datafeed's options, else the chart's subsession (extended hours). */
  barOptions(symbolInfo) {
    const options = { adjustment: this.adjustment };
    const session = this.session || (symbolInfo && symbolInfo.subsession_id === "extended" ? "EXTENDED" : null);
    if (session) options.session = session;
    return options;
  }

  getBars(symbolInfo, resolution, periodParams, onResult, onError) {
    const ticker = symbolInfo.ticker || symbolInfo.name;
    this.loadBars(ticker, resolution, periodParams, this.barOptions(symbolInfo)).then(
      ({ bars, meta }) => {
        const key = `${ticker}|${resolution}`;
        if (bars.length) {
          const newest = bars[bars.length - 1].time;
          if (periodParams.firstDataRequest || newest > (this.lastBarTimes.get(key) ?? -Infinity)) this.lastBarTimes.set(key, newest);
        }
        onResult(bars, meta);
      },
      (error) => onError(error.message),
    );
  }

  /** Corporate actions with an ex-date whose 00:00 UTC lies in [from, to) (seconds). */
  async loadActions(symbolInfo, from, to, resolution) {
    const ticker = symbolInfo.ticker || symbolInfo.name;
    const data = await this.query(ACTIONS_QUERY, { ticker, from: dayAtOrAfter(from), to: dayAtOrAfter(to) });
    if (!data.symbol) throw new Error(`unknown symbol ${ticker}`);
    return data.symbol.corporateActions.map((a) => ({ ...a, time: markTime(a.exDate, resolution, symbolInfo) }));
  }

  getMarks(symbolInfo, from, to, onDataCallback, resolution) {
    this.loadActions(symbolInfo, from, to, resolution).then(
      (actions) =>
        onDataCallback(
          actions.map((a) => ({
            id: `${a.kind.toLowerCase()}-${a.exDate}`,
            time: a.time,
            color: MARK_COLORS[a.kind],
            text: actionText(a),
            label: a.kind[0],
            labelFontColor: "#ffffff",
            minSize: 14,
          })),
        ),
      () => onDataCallback([]),
    );
  }

  getTimescaleMarks(symbolInfo, from, to, onDataCallback, resolution) {
    this.loadActions(symbolInfo, from, to, resolution).then(
      (actions) =>
        onDataCallback(
          actions.map((a) => ({
            id: `${a.kind.toLowerCase()}-${a.exDate}`,
            time: a.time,
            color: MARK_COLORS[a.kind],
            label: a.kind[0],
            tooltip: [actionText(a)],
          })),
        ),
      () => onDataCallback([]),
    );
  }

  wsClient() {
    if (!this.client) {
      this.client = createClient({
        url: this.wsUrl,
        lazy: true,
        retryAttempts: Infinity,
        connectionParams: this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : undefined,
        webSocketImpl: this.webSocketImpl,
      });
    }
    return this.client;
  }

  subscribeBars(symbolInfo, resolution, onTick, listenerGuid, onResetCacheNeeded) {
    const ticker = symbolInfo.ticker || symbolInfo.name;
    const interval = RESOLUTIONS[resolution];
    const key = `${ticker}|${resolution}`;
    const entry = { lastTime: this.lastBarTimes.get(key) ?? -Infinity, dispose: null };
    entry.dispose = this.wsClient().subscribe(
      { query: BARS_SUBSCRIPTION, operationName: "DatafeedBars", variables: { ticker, interval, ...this.barOptions(symbolInfo) } },
      {
        next: ({ data }) => {
          if (!data || !data.barUpdates) return;
          const n = data.barUpdates.bar;
          const bar = { time: barTime(n.time, interval), open: n.open, high: n.high, low: n.low, close: n.close, volume: n.volume };
          if (bar.time >= entry.lastTime) {
            // The forming bar (same time) is replaced in place; a later one starts a new bar.
            entry.lastTime = bar.time;
            this.lastBarTimes.set(key, bar.time);
            onTick(bar);
          } else if (onResetCacheNeeded) {
            // A revision of an older bar: the library reloads its bars through getBars.
            onResetCacheNeeded();
          }
        },
        error: () => {},
        complete: () => {},
      },
    );
    this.subscriptions.set(listenerGuid, entry);
  }

  unsubscribeBars(listenerGuid) {
    const entry = this.subscriptions.get(listenerGuid);
    if (entry) entry.dispose();
    this.subscriptions.delete(listenerGuid);
  }

  /** Close the WebSocket (the library never calls this; for pages that drop the chart). */
  dispose() {
    for (const guid of [...this.subscriptions.keys()]) this.unsubscribeBars(guid);
    if (this.client) this.client.dispose();
    this.client = null;
  }
}

/** A datafeed for `new TradingView.widget({ datafeed })`. */
export function createDatafeed(options) {
  return new GraphQLDatafeed(options);
}
