// Types of datafeed.js: a TradingView JS API datafeed (IBasicDataFeed) over market-graphql.
// The shapes follow the Charting Library's own typings (charting_library.d.ts), restated here
// for the members this datafeed uses, so the module type-checks without the library.

export type Resolution = "1" | "5" | "15" | "30" | "60" | "240" | "1D" | "D" | "1W" | "W" | "1M" | "M";
export type Interval = "M1" | "M5" | "M15" | "M30" | "H1" | "H4" | "D1" | "W1" | "MN1";

export declare const RESOLUTIONS: Readonly<Record<Resolution, Interval>>;
export declare const SUPPORTED_RESOLUTIONS: readonly Resolution[];
export declare const SYMBOL_QUERY: string;
export declare const SEARCH_QUERY: string;
export declare const COUNTBACK_QUERY: string;
export declare const RANGE_QUERY: string;
export declare const BARS_SUBSCRIPTION: string;
export declare const ACTIONS_QUERY: string;

export type Session = "REGULAR" | "EXTENDED" | "ALL";
export type Adjustment = "RAW" | "SPLIT" | "DIVIDEND" | "ALL";

/** A corporate action as `Symbol.corporateActions` answers it. */
export interface CorporateAction {
  kind: "SPLIT" | "DIVIDEND";
  exDate: string;
  ratio: number | null;
  amount: number | null;
  currency: string;
}

export interface Mark {
  id: string;
  /** Unix seconds: 00:00 UTC of the ex-date (D/W/M), its session open (intraday). */
  time: number;
  color: string;
  text: string;
  label: string;
  labelFontColor: string;
  minSize: number;
}

export interface TimescaleMark {
  id: string;
  time: number;
  color: string;
  label: string;
  tooltip: string[];
}

export interface Subsession {
  id: "regular" | "extended";
  description: string;
  session: string;
}

export interface DatafeedConfiguration {
  supported_resolutions: Resolution[];
  supports_marks: boolean;
  supports_timescale_marks: boolean;
  supports_time: boolean;
  exchanges: { value: string; name: string; desc: string }[];
  symbols_types: { name: string; value: string }[];
}

export interface SearchSymbolResultItem {
  symbol: string;
  full_name: string;
  description: string;
  exchange: string;
  ticker: string;
  type: string;
}

export interface LibrarySymbolInfo {
  name: string;
  ticker: string;
  full_name: string;
  description: string;
  type: string;
  exchange: string;
  listed_exchange: string;
  currency_code: string;
  /** Regular hours as a session string (`0930-1600:23456`, `24x7`) from Symbol.tradingHours. */
  session: string;
  /** The calendar's time zone (Etc/UTC for 24/7 and FX). */
  timezone: string;
  /** "regular" when the calendar has extended hours; "extended" selects EXTENDED bars. */
  subsession_id?: "regular" | "extended";
  subsessions?: Subsession[];
  minmov: number;
  pricescale: number;
  format: "price";
  has_intraday: boolean;
  has_daily: boolean;
  has_weekly_and_monthly: boolean;
  supported_resolutions: Resolution[];
  intraday_multipliers: string[];
  volume_precision: number;
  data_status: "streaming" | "endofday";
}

/** A bar as the library takes it: `time` in milliseconds (00:00 UTC of the date for D/W/M). */
export interface Bar {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export interface PeriodParams {
  /** Unix seconds, inclusive. */
  from: number;
  /** Unix seconds, exclusive. */
  to: number;
  /** Bars wanted before `to`; wins over `from` when given. */
  countBack?: number;
  firstDataRequest: boolean;
}

export interface HistoryMetadata {
  noData: boolean;
  /** Unix seconds of the newest bar before the range, when the range is empty. */
  nextTime?: number;
}

export interface DatafeedOptions {
  /** The GraphQL endpoint over HTTP, e.g. "https://host/graphql". */
  url: string;
  /** Its WebSocket URL (default: `url` with ws:/wss:). */
  wsUrl?: string;
  /** Sent as `authorization: Bearer <key>` over HTTP and in `connection_init`. */
  apiKey?: string;
  /** Bars per request (default 5000; the server's maximum is 10,000). */
  pageSize?: number;
  /** Session of every bar read (default: the symbol's, or EXTENDED for the "extended" subsession). */
  session?: Session | null;
  /** Adjustment of every bar read (default RAW). */
  adjustment?: Adjustment;
  fetch?: typeof fetch;
  webSocketImpl?: unknown;
}

export declare class GraphQLDatafeed {
  constructor(options: DatafeedOptions);
  readonly url: string;
  readonly wsUrl: string;
  query<T = unknown>(document: string, variables: Record<string, unknown>): Promise<T>;
  onReady(callback: (configuration: DatafeedConfiguration) => void): void;
  searchSymbols(
    userInput: string,
    exchange: string,
    symbolType: string,
    onResult: (items: SearchSymbolResultItem[]) => void,
  ): void;
  resolveSymbol(
    symbolName: string,
    onResolve: (symbolInfo: LibrarySymbolInfo) => void,
    onError: (reason: string) => void,
  ): void;
  loadBars(
    ticker: string,
    resolution: Resolution,
    periodParams: Omit<PeriodParams, "firstDataRequest">,
    options?: { session?: Session; adjustment?: Adjustment },
  ): Promise<{ bars: Bar[]; meta: HistoryMetadata }>;
  barOptions(symbolInfo?: Partial<LibrarySymbolInfo>): { session?: Session; adjustment: Adjustment };
  getBars(
    symbolInfo: Pick<LibrarySymbolInfo, "ticker" | "name"> & Partial<LibrarySymbolInfo>,
    resolution: Resolution,
    periodParams: PeriodParams,
    onResult: (bars: Bar[], meta: HistoryMetadata) => void,
    onError: (reason: string) => void,
  ): void;
  subscribeBars(
    symbolInfo: Pick<LibrarySymbolInfo, "ticker" | "name">,
    resolution: Resolution,
    onTick: (bar: Bar) => void,
    listenerGuid: string,
    onResetCacheNeeded?: () => void,
  ): void;
  unsubscribeBars(listenerGuid: string): void;
  loadActions(
    symbolInfo: Pick<LibrarySymbolInfo, "ticker" | "name"> & Partial<LibrarySymbolInfo>,
    from: number,
    to: number,
    resolution?: Resolution,
  ): Promise<(CorporateAction & { time: number })[]>;
  /** Corporate actions with an ex-date whose 00:00 UTC lies in [from, to) (seconds). */
  getMarks(
    symbolInfo: Pick<LibrarySymbolInfo, "ticker" | "name"> & Partial<LibrarySymbolInfo>,
    from: number,
    to: number,
    onDataCallback: (marks: Mark[]) => void,
    resolution?: Resolution,
  ): void;
  getTimescaleMarks(
    symbolInfo: Pick<LibrarySymbolInfo, "ticker" | "name"> & Partial<LibrarySymbolInfo>,
    from: number,
    to: number,
    onDataCallback: (marks: TimescaleMark[]) => void,
    resolution?: Resolution,
  ): void;
  dispose(): void;
}

export declare function actionText(action: CorporateAction): string;
/** Unix seconds of wall-clock `hhmm` (e.g. "0930") on `day` (YYYY-MM-DD) in `timeZone`. */
export declare function zonedSeconds(day: string, hhmm: string, timeZone: string): number;
/** Where a mark goes: 00:00 UTC of the ex-date on D/W/M, the ex-date's session open intraday. */
export declare function markTime(
  exDate: string,
  resolution: Resolution,
  symbolInfo?: Partial<LibrarySymbolInfo>,
): number;
export declare function barTime(iso: string, interval: Interval): number;
export declare function createDatafeed(options: DatafeedOptions): GraphQLDatafeed;
