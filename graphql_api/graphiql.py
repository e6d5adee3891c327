"""GraphiQL served entirely by this service: no request leaves for unpkg.com or anywhere else.

Strawberry's stock page loads React, GraphiQL and the explorer plugin from unpkg.com, so without
internet access it stays blank. The same files, pinned and copied from npm by
`scripts/vendor_graphiql.sh`, ship in `graphql_api/static/graphiql/` (see docs/graphiql.md) and
are mounted at `/graphiql-static`. Asset URLs carry a content hash (`?v=`), so browsers may cache
them for a year; the page also names each file's SHA-384 (Subresource Integrity) and sets a
Content-Security-Policy that allows scripts, styles and connections from this origin only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from graphql_api.static_assets import fingerprint

STATIC_DIR = Path(__file__).parent / "static" / "graphiql"
STATIC_PREFIX = "/graphiql-static"
IMMUTABLE = "public, max-age=31536000, immutable"

SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
)
STYLESHEETS = ("graphiql.min.css", "plugin-explorer.css")

EXAMPLE_QUERY = """\
# market-graphql. Run: Ctrl-Enter or the pink button.
# Complete: Ctrl-Space. Left sidebar: Docs (every type,
# field and argument) and Explorer (build by clicking).
#
# Demo data: daily bars of AAPL, IBM, MSFT (2000-2013),
# GOOG and FB; one-minute bars of ACME, GLOBX, INITECH
# (synthetic, exchange SYNTH, ten days from 2024-03-04),
# of UMBRL (synthetic NYSE stock with pre/post-market
# trades, 2024-10-28 to 2024-12-06) and COINX (24/7),
# resampled on request to any interval M1 ... MN1.
#
# Charts: /chart?ticker=AAPL&interval=D1 (candles, volume,
# indicators, live bars), or the chart button in the
# toolbar (draws this query's bars and indicators).

query MarketTour {
  # A symbol by ticker: its five newest daily bars, and a
  # cursor to pass as `after:` for the next page.
  apple: symbol(ticker: "AAPL") {
    name
    exchange
    daily: bars(interval: D1, first: 5) {
      edges { node { time open high low close volume } }
      pageInfo { hasNextPage endCursor }
    }
  }

  # A page of symbols; `search` matches a ticker prefix
  # or the start of a word of the name.
  synthetic: symbols(first: 10, filter: { search: "syn" }) {
    totalCount
    edges {
      node {
        ticker
        name
        storedTimeframes { interval firstBarTime lastBarTime }
      }
    }
    pageInfo { hasNextPage endCursor }
  }

  acme: symbol(ticker: "ACME") {
    # Hourly bars resampled from one-minute bars;
    # `closed` is false for a bar still forming.
    hourly: bars(interval: H1, first: 5) {
      edges { node { time open high low close volume closed } }
    }
    # Columns for a chart. With more than maxPoints bars
    # in the range, the server coarsens the interval.
    chart: series(
      interval: M15
      from: "2024-03-04T00:00:00+00:00"
      to: "2024-03-06T00:00:00+00:00"
      maxPoints: 40
    ) {
      requestedInterval
      interval
      time
      close
    }
  }

  # Trading sessions from the exchange calendar (NYSE):
  # daily bars of regular hours (the default for stocks)
  # against pre- and post-market included, around
  # Thanksgiving (closed) and its half day (13:00 close).
  umbrella: symbol(ticker: "UMBRL") {
    calendar
    defaultSession
    regular: bars(
      interval: D1
      from: "2024-11-26T00:00:00Z"
      to: "2024-12-03T00:00:00Z"
    ) {
      nodes { time sessionOpen sessionClose open close volume }
    }
    extended: bars(
      interval: D1
      session: EXTENDED
      from: "2024-11-26T00:00:00Z"
      to: "2024-12-03T00:00:00Z"
    ) {
      nodes { time open close volume }
    }
    # Hourly bars from the 09:30 open; every hour of the
    # extended session gets a bar (`filled` where nothing
    # traded: the previous close, volume 0).
    hourly: series(
      interval: H1
      session: EXTENDED
      fill: PREVIOUS
      from: "2024-11-29T00:00:00Z"
      to: "2024-11-30T00:00:00Z"
    ) {
      time
      close
      volume
      filled
    }
  }

  # Corporate actions: AAPL split 2-for-1 on 2005-02-28.
  # RAW (the default) is the bars as printed: the close
  # halves overnight. ALL is split- and dividend-adjusted
  # (earlier bars times each later action's factor), so
  # charts and indicators see no crash; `asOf` applies
  # only the actions known at a date.
  appleSplit: symbol(ticker: "AAPL") {
    raw: series(
      interval: D1
      from: "2005-02-23T00:00:00+00:00"
      to: "2005-03-03T00:00:00+00:00"
    ) { time close volume }
    adjusted: series(
      interval: D1
      from: "2005-02-23T00:00:00+00:00"
      to: "2005-03-03T00:00:00+00:00"
      adjustment: ALL
    ) { time close volume }
    corporateActions(from: "2000-01-01") {
      kind exDate ratio amount
    }
  }
}
"""

_PAGE = """\
<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta http-equiv="Content-Security-Policy" content="{csp}" />
    <title>market-graphql · GraphiQL</title>
    <link rel="icon" href="{favicon}" />
{stylesheets}
    <style>
      body {{ height: 100%; margin: 0; width: 100%; overflow: hidden; }}
      #graphiql {{ height: 100vh; display: flex; }}
      .graphiql-explorer-actions select {{ margin-left: 4px; }}
      .market-chart-this {{ display: flex; align-items: center; justify-content: center; }}
    </style>
  </head>
  <body>
    <div id="graphiql" class="graphiql-container">Loading GraphiQL…</div>
{scripts}
    <script>{inline}</script>
  </body>
</html>
"""

# The page logic, adapted from Strawberry's template (strawberry/static/graphiql.html): queries
# go to this page's own URL, subscriptions to the same URL over WebSocket, the editor state is
# shareable through ?q=…&variables=… in the address bar.
_INLINE = """
const EXAMPLE_QUERY = {example};
const parameters = {{}};
for (const entry of window.location.search.slice(1).split("&")) {{
  const eq = entry.indexOf("=");
  if (eq >= 0) {{
    parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(entry.slice(eq + 1));
  }}
}}
function updateURL(data) {{
  Object.assign(parameters, data);
  const search = Object.keys(parameters)
    .filter((key) => Boolean(parameters[key]))
    .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
    .join("&");
  history.replaceState(null, null, "?" + search);
}}
const fetchURL = window.location.href.split("?")[0].split("#")[0];
function toWebSocketURL(url) {{
  const parsed = new URL(url);
  parsed.protocol = parsed.protocol === "https:" ? "wss:" : "ws:";
  parsed.hash = "";
  return parsed.toString();
}}
const fetcher = GraphiQL.createFetcher({{
  url: fetchURL,
  subscriptionUrl: toWebSocketURL(fetchURL),
}});
const explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();
// "Chart this": the editor's query on /chart, which runs it and draws the bars, series and
// indicators in its result (graphql_api/static/chart/chart.js, query mode).
function chartURL(query, variables) {{
  const search = new URLSearchParams({{ query: query || "" }});
  if (variables && variables.trim()) search.set("variables", variables);
  return "/chart?" + search.toString();
}}
function MarketGraphiQL() {{
  const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
  const [variables, setVariables] = React.useState(parameters.variables);
  const [headers, setHeaders] = React.useState(parameters.headers);
  const chartThis = React.createElement(
    "a",
    {{
      className: "graphiql-toolbar-button market-chart-this",
      href: chartURL(query, variables),
      target: "_blank",
      rel: "noopener",
      title: "Chart this: draw the bars, series and indicators of this query on /chart",
      "aria-label": "Chart this",
    }},
    React.createElement(
      "svg",
      {{
        className: "graphiql-toolbar-icon",
        viewBox: "0 0 24 24",
        fill: "none",
        stroke: "currentColor",
        strokeWidth: 1.5,
        "aria-hidden": "true",
      }},
      React.createElement("path", {{ d: "M3 3v18h18" }}),
      React.createElement("path", {{ d: "M6 16l4-5 4 3 6-8" }}),
    ),
  );
  return React.createElement(GraphiQL, {{
    toolbar: {{ additionalContent: chartThis }},
    fetcher: fetcher,
    defaultEditorToolsVisibility: true,
    plugins: [explorerPlugin],
    query: query,
    variables: variables,
    headers: headers,
    onEditQuery: (value) => {{ setQuery(value); updateURL({{ q: value }}); }},
    onEditVariables: (value) => {{ setVariables(value); updateURL({{ variables: value }}); }},
    onEditHeaders: (value) => setHeaders(value),
    inputValueDeprecation: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
  }});
}}
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(MarketGraphiQL),
);
"""

_MISSING = """\
<!doctype html>
<html lang="en">
  <head><meta charset="utf-8" /><title>market-graphql · GraphiQL unavailable</title></head>
  <body>
    <h1>GraphiQL is not installed</h1>
    <p>The GraphiQL files ({files}) are missing from {directory}. The package was built without
    its package data: reinstall it, or run <code>scripts/vendor_graphiql.sh</code> in a checkout.
    The API itself works: POST queries to this URL.</p>
  </body>
</html>
"""

_FAVICON = (
    "data:image/svg+xml,<svg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 100 100%22>"
    "<text y=%22.9em%22 font-size=%2280%22>%F0%9F%93%88</text></svg>"
)


def _asset(name: str) -> tuple[str, str]:
    """(content-hash version, SRI value) of a vendored file."""
    return fingerprint(STATIC_DIR / name)


def _asset_tag(name: str, static_url: str) -> str:
    version, integrity = _asset(name)
    url = f"{static_url}/{name}?v={version}"
    if name.endswith(".css"):
        return f'    <link rel="stylesheet" href="{url}" integrity="{integrity}" />'
    return f'    <script src="{url}" integrity="{integrity}"></script>'


def _script_literal(text: str) -> str:
    """`text` as a JavaScript string literal that is safe inside a <script> element."""
    return (
        json.dumps(text)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def graphiql_html(example_query: str, *, static_url: str = STATIC_PREFIX) -> str:
    """The GraphiQL page (with the explorer plugin), `example_query` preloaded in its editor.

    Every asset comes from `static_url` on this service; the page queries its own URL.
    """
    missing = [name for name in (*STYLESHEETS, *SCRIPTS) if not (STATIC_DIR / name).is_file()]
    if missing:
        return _MISSING.format(directory=html.escape(str(STATIC_DIR)), files=", ".join(missing))
    inline = _INLINE.format(example=_script_literal(example_query))
    inline_hash = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    csp = "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'sha256-{inline_hash}'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "object-src 'none'",
        )
    )
    return _PAGE.format(
        csp=csp,
        favicon=_FAVICON,
        stylesheets="\n".join(_asset_tag(name, static_url) for name in STYLESHEETS),
        scripts="\n".join(_asset_tag(name, static_url) for name in SCRIPTS),
        inline=inline,
    )


class VendoredFiles(StaticFiles):
    """StaticFiles that lets browsers keep content-addressed URLs (`?v=<hash>`) for a year."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = IMMUTABLE if versioned else "no-cache"
        return response


def mount_static(app: FastAPI) -> None:
    """Serve the vendored GraphiQL files at `/graphiql-static`."""
    app.mount(STATIC_PREFIX, VendoredFiles(directory=STATIC_DIR), name="graphiql-static")
