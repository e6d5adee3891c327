// Example: node dist/example.js [http://127.0.0.1:8000/graphql] after `npx tsc`.
import { CandlesDocument, ChartDocument, LastPriceDocument } from "./gql/graphql.js";
import { request } from "./request.js";

const url = process.argv[2] ?? "http://127.0.0.1:8000/graphql";

const last = await request(url, LastPriceDocument, { ticker: "AAPL", interval: "D1" });
console.log("latest", last.symbol?.ticker, last.symbol?.latestBar?.time, last.symbol?.latestBar?.close);

const candles = await request(url, CandlesDocument, {
  ticker: "ACME",
  interval: "M5",
  from: "2024-03-05T14:30:00Z",
  to: "2024-03-05T15:00:00Z",
});
for (const bar of candles.symbol?.bars.nodes ?? []) {
  console.log("M5", bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume);
}

const chart = await request(url, ChartDocument, { ticker: "AAPL", interval: "D1", maxPoints: 1000 });
const series = chart.symbol?.series;
const rsi = chart.symbol?.indicators.rsi.value ?? [];
console.log("series", series?.requestedInterval, "->", series?.interval, series?.time.length, "points");
console.log("RSI(14) of the newest bar", rsi[rsi.length - 1]);
