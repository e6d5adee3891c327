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
    storedTimeframes { interval }
    recent: bars(interval: D1, first: 50) { nodes { open high low close volume } }
  }
}`;

export const SEARCH_QUERY = `query DatafeedSearch($first: Int!, $filter: SymbolFilter) {
  symbols(first: $first, filter: $filter) { nodes { ticker name exchange assetClass } }
}`;

export const COUNTBACK_QUERY = `query DatafeedCountback($ticker: String!, $interval: Interval!, $to: DateTime!, $first: Int!) {
  symbol(ticker: $ticker) { bars(interval: $interval, to: $to, first: $first) { nodes { ${BAR} } } }
}`;

export const RANGE_QUERY = `query DatafeedRange($ticker: String!, $interval: Interval!, $from: DateTime!, $to: DateTime!, $first: Int!, $after: String) {
  symbol(ticker: $ticker) {
    bars(interval: $interval, from: $from, to: $to, first: $first, after: $after, order: OLDEST_FIRST) {
      nodes { ${BAR} }
      pageInfo { hasNextPage endCursor }
    }
    older: bars(interval: $interval, to: $from, first: 1) { nodes { time } }
  }
}`;

export const BARS_SUBSCRIPTION = `subscription DatafeedBars($ticker: String!, $interval: Interval!) {
  barUpdates(tickers: [$ticker], interval: $interval) { bar { ${BAR} closed } }
}`;

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
   */
  constructor({ url, wsUrl, apiKey, pageSize = 5000, fetch: fetchImpl, webSocketImpl } = {}) {
    if (!url) throw new Error("createDatafeed: `url` (the GraphQL endpoint) is required");
    this.url = new URL(url, globalThis.location ? globalThis.location.href : undefined).toString();
    const ws = new URL(wsUrl || this.url);
    if (!wsUrl) ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
    this.wsUrl = ws.toString();
    this.apiKey = apiKey;
    this.pageSize = pageSize;
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
        supports_marks: false, // corporate actions are not served yet (docs/tradingview.md)
        supports_timescale_marks: false,
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
          // Bars align to UTC and cover the whole day until trading sessions exist.
          session: "24x7",
          timezone: "Etc/UTC",
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
  async loadBars(ticker, resolution, { from, to, countBack }) {
    const interval = RESOLUTIONS[resolution];
    if (!interval) throw new Error(`unsupported resolution ${resolution}`);
    const toBar = (n) => ({ time: barTime(n.time, interval), open: n.open, high: n.high, low: n.low, close: n.close, volume: n.volume });
    if (countBack) {
      // countBack wins over `from`: the newest countBack bars before `to`.
      const data = await this.query(COUNTBACK_QUERY, { ticker, interval, to: isoOf(to), first: Math.min(countBack, this.pageSize) });
      if (!data.symbol) throw new Error(`unknown symbol ${ticker}`);
      const bars = data.symbol.bars.nodes.map(toBar).reverse();
      return { bars, meta: { noData: bars.length === 0 } };
    }
    const bars = [];
    let after = null;
    let older = [];
    for (;;) {
      const data = await this.query(RANGE_QUERY, { ticker, interval, from: isoOf(from), to: isoOf(to), first: this.pageSize, after });
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

  getBars(symbolInfo, resolution, periodParams, onResult, onError) {
    const ticker = symbolInfo.ticker || symbolInfo.name;
    this.loadBars(ticker, resolution, periodParams).then(
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
      { query: BARS_SUBSCRIPTION, operationName: "DatafeedBars", variables: { ticker, interval } },
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
