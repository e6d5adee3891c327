"""The chart page at /chart: candlesticks, volume, indicators and live bars, served offline.

The page is plain ES modules with no bundler: `static/chart/chart.js` (ours) imports
`lightweight-charts` and `graphql-ws` by name, and an import map names the vendored copies
(`static/chart/vendor/`, pinned and copied from npm by `scripts/vendor_chart.sh`). As for
GraphiQL (graphql_api/graphiql.py), every asset comes from this service under a content-hash
URL, each module carries a Subresource Integrity hash (the entry module in its tag, the others
in the import map's `integrity` table), and a Content-Security-Policy allows scripts and
connections from this origin only. The page reads and writes data through ordinary GraphQL
documents sent as GET requests, so the response cache and ETags apply to them (docs/chart.md).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse

from graphql_api.graphiql import VendoredFiles
from graphql_api.static_assets import fingerprint

STATIC_DIR = Path(__file__).parent / "static" / "chart"
STATIC_PREFIX = "/chart-static"

#: The page's own module, then the modules the import map names (bare name -> file).
ENTRY = "chart.js"
STYLESHEET = "chart.css"
IMPORTS = {
    "lightweight-charts": "vendor/lightweight-charts.mjs",
    "graphql-ws": "vendor/graphql-ws.js",
}

_PAGE = """\
<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta http-equiv="Content-Security-Policy" content="{csp}" />
    <title>market-graphql · chart</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="{css_url}" integrity="{css_integrity}" />
    <script type="importmap">{import_map}</script>
{preloads}
    <script type="module" src="{entry_url}" integrity="{entry_integrity}"></script>
  </head>
  <body>
    <header class="toolbar">
      <form id="symbol-form" autocomplete="off">
        <input id="symbol" list="symbol-list" placeholder="Symbol" aria-label="Symbol" />
        <datalist id="symbol-list"></datalist>
      </form>
      <select id="interval" aria-label="Interval"></select>
      <select id="session" aria-label="Session"></select>
      <select id="adjustment" aria-label="Adjustment"></select>
      <fieldset id="indicators" aria-label="Indicators"></fieldset>
      <span id="legend" class="legend"></span>
      <span id="status" class="status" role="status"></span>
      <form id="key-form" hidden>
        <input id="api-key" type="password" placeholder="API key" aria-label="API key" />
        <button type="submit">Use key</button>
      </form>
      <a class="graphiql" id="graphiql-link" href="/graphql">GraphiQL</a>
    </header>
    <main id="chart" data-graphql="{graphql_url}"></main>
  </body>
</html>
"""

_MISSING = """\
<!doctype html>
<html lang="en">
  <head><meta charset="utf-8" /><title>market-graphql · chart unavailable</title></head>
  <body>
    <h1>The chart page is not installed</h1>
    <p>Its files ({files}) are missing from {directory}. The package was built without its
    package data: reinstall it, or run <code>scripts/vendor_chart.sh</code> in a checkout.</p>
  </body>
</html>
"""


def _asset(name: str) -> tuple[str, str]:
    """(content-hash version, SRI value) of a file under static/chart."""
    return fingerprint(STATIC_DIR / name)


def _url(name: str, static_url: str) -> str:
    return f"{static_url}/{name}?v={_asset(name)[0]}"


def _relative_imports(name: str) -> list[str]:
    """Sibling modules a vendored module imports by relative path (graphql-ws' one chunk)."""
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    folder = name.rsplit("/", 1)[0]
    found = []
    for quote in ("'", '"'):
        marker = f"from {quote}./"
        start = text.find(marker)
        while start >= 0:
            end = text.find(quote, start + len(marker))
            found.append(f"{folder}/{text[start + len(marker) : end]}")
            start = text.find(marker, end)
    return sorted(set(found))


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def chart_html(*, static_url: str = STATIC_PREFIX, graphql_url: str = "/graphql") -> str:
    """The chart page; every module and style comes from `static_url` on this service."""
    names = [ENTRY, STYLESHEET, *IMPORTS.values()]
    missing = [name for name in names if not (STATIC_DIR / name).is_file()]
    if missing:
        return _MISSING.format(directory=html.escape(str(STATIC_DIR)), files=", ".join(missing))
    integrity = {_url(ENTRY, static_url): _asset(ENTRY)[1]}
    imports = {}
    for bare, name in IMPORTS.items():
        imports[bare] = _url(name, static_url)
        integrity[imports[bare]] = _asset(name)[1]
        # Resolved relative to the importing module, without our `?v=`: the browser asks for
        # `/chart-static/vendor/<chunk>` and checks it against this hash.
        for chunk in _relative_imports(name):
            integrity[f"{static_url}/{chunk}"] = _asset(chunk)[1]
    import_map = _script_json({"imports": imports, "integrity": integrity})
    map_hash = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    csp = "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'sha256-{map_hash}'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "object-src 'none'",
        )
    )
    # The browser learns of the vendored modules only after parsing ours: preloading them
    # saves a round trip before the first candle.
    preloads = "\n".join(
        f'    <link rel="modulepreload" href="{url}" integrity="{integrity[url]}" />'
        for url in integrity
        if url != _url(ENTRY, static_url)
    )
    return _PAGE.format(
        preloads=preloads,
        csp=csp,
        css_url=_url(STYLESHEET, static_url),
        css_integrity=_asset(STYLESHEET)[1],
        import_map=import_map,
        entry_url=_url(ENTRY, static_url),
        entry_integrity=_asset(ENTRY)[1],
        graphql_url=html.escape(graphql_url),
    )


router = APIRouter()


@router.get("/chart", include_in_schema=False)
async def chart_page() -> HTMLResponse:
    # The page is the same for every URL: ticker, interval and query are read by the script.
    return HTMLResponse(chart_html(), headers={"cache-control": "no-cache"})


def mount_chart(app: FastAPI) -> None:
    """Serve /chart and its files at /chart-static."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, VendoredFiles(directory=STATIC_DIR), name="chart-static")
