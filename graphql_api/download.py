"""Bulk download of bars for many symbols at /download/bars: Apache Arrow IPC, CSV or JSON.

A translation, like /udf (graphql_api/udf.py), not a second data path: the route composes
one `symbols(filter: {tickers}) { nodes { series(...) } }` document and runs it through
`GraphQLEndpoint.execute`, so the caller's API key (and the `read` scope where reads need
one), the cost limit, the rate limit and the response cache are those of /graphql, and the
numbers are those `Symbol.series` answers for the same arguments. docs/download.md has the
contract.

The series columns come out of the execution as numpy arrays (loaders/columns.py, collected
through `Context.column_sink`), so an Arrow batch is built without a Python object per value.
Symbols run in groups sized so that each group's document fits the cost limit; each group
is charged to the rate limit as it runs and its rows are written out before the next group
is read (memory holds one group). Whatever goes wrong before the first byte is a 4xx with a
JSON error naming the parameter; a later group that fails (the rate budget running out
part-way) ends the response without its final chunk, which HTTP clients report as an
incomplete body.
"""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from core.bar import BAR_FIELDS
from core.intervals import Interval
from core.reqstats import note_outcome
from graphql_api.context import ColumnSink
from graphql_api.http import GraphQLEndpoint, Params, RequestError, accept_ranges
from graphql_api.limits import LimitError
from graphql_api.telemetry import observe_request
from loaders.columns import Column

ARROW = "application/vnd.apache.arrow.stream"
CSV = "text/csv"
JSON = "application/json"
#: The `format` query parameter's values (an override of Accept, for browsers and
#: `pandas.read_csv(url)`), by media type.
FORMATS = {"arrow": ARROW, "csv": CSV, "json": JSON}

#: Bars per symbol when `maxPoints` is not given: a symbol whose range holds more comes at
#: the finest coarser interval that fits, as `Symbol.series` answers (column `interval`).
DEFAULT_MAX_POINTS = 100_000

SESSIONS = ("REGULAR", "EXTENDED", "ALL")
ALIGNMENTS = ("SESSION", "UTC")
ADJUSTMENTS = ("RAW", "SPLIT", "DIVIDEND", "ALL")

#: The columns of `Symbol.series` each row carries, after `ticker`.
SERIES_FIELDS = ("interval", "time", *(f.graphql for f in BAR_FIELDS), "closed")

DOCUMENT = f"""
query Download($tickers: [String!]!, $first: Int!, $interval: Interval!, $from: DateTime,
               $to: DateTime, $maxPoints: Int!, $session: Session,
               $alignment: Alignment! = SESSION, $adjustment: Adjustment! = RAW, $asOf: Date) {{
  symbols(filter: {{tickers: $tickers}}, first: $first) {{
    nodes {{
      ticker
      series(interval: $interval, from: $from, to: $to, maxPoints: $maxPoints,
             session: $session, alignment: $alignment, adjustment: $adjustment,
             asOf: $asOf) {{ {" ".join(SERIES_FIELDS)} }}
    }}
  }}
}}
"""

TICKERS = """
query DownloadTickers($tickers: [String!]!, $first: Int!) {
  symbols(filter: {tickers: $tickers}, first: $first) { nodes { ticker } }
}
"""

#: The Arrow schema of every batch: one row per bar.
ARROW_SCHEMA = pa.schema(
    [
        pa.field("ticker", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("interval", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        *(pa.field(f.graphql, pa.float64(), nullable=False) for f in BAR_FIELDS),
        pa.field("closed", pa.bool_(), nullable=False),
    ]
)


class DownloadError(Exception):
    """A request answered with a JSON error naming `parameter` (if any) and `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "BAD_USER_INPUT",
        parameter: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.parameter = parameter
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        extensions: dict[str, Any] = {"code": self.code}
        if self.parameter is not None:
            extensions["parameter"] = self.parameter
        return {"errors": [{"message": self.message, "extensions": extensions}]}


class NotModified(Exception):
    """The client's copy is current: answered 304 without a body."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("not modified")
        self.headers = headers


# --- arguments ---------------------------------------------------------------------------


def media_type(request: Request) -> str:
    """The response's media type: `format`, else the best of Accept; 406 when none fits."""
    chosen = request.query_params.get("format")
    if chosen:
        if chosen.lower() not in FORMATS:
            raise DownloadError(
                400, f"`format` must be one of {', '.join(FORMATS)}, got {chosen!r}",
                parameter="format",
            )  # fmt: skip
        return FORMATS[chosen.lower()]
    accept = request.headers.get("accept")
    if not accept:
        return JSON
    best: tuple[float, int, int, str] | None = None
    for order, (kind, q) in enumerate(accept_ranges(accept)):
        candidates = [kind] if kind in (ARROW, CSV, JSON) else []
        if kind in ("*/*", "application/*"):
            candidates = [JSON]
        elif kind == "text/*":
            candidates = [CSV]
        for candidate in candidates:
            # At equal weight a type named outright beats a wildcard, then the earlier entry.
            rank = (q, int(kind == candidate), -order, candidate)
            if q > 0 and (best is None or rank[:3] > best[:3]):
                best = rank
    if best is None:
        raise DownloadError(
            406, f"accept one of {ARROW}, {CSV} or {JSON} (or pass `format`)", "NOT_ACCEPTABLE"
        )
    return best[3]


@dataclass(frozen=True)
class DownloadArgs:
    """The request's arguments, checked."""

    tickers: list[str]
    variables: dict[str, Any]  # the document's variables but `tickers` and `first`
    max_points: int


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if value.upper() not in allowed:
        raise DownloadError(
            400, f"`{name}` must be one of {', '.join(allowed)}, got {value!r}", parameter=name
        )
    return value.upper()


def _instant(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DownloadError(
            400, f"`{name}` must be an ISO 8601 date-time, got {value!r}", parameter=name
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # as the GraphQL DateTime scalar reads it
    return parsed


def parse_args(request: Request, max_tickers: int, max_series_points: int) -> DownloadArgs:
    """The download's arguments from the query string; DownloadError naming the first bad one."""
    query = request.query_params
    known = {"tickers", "interval", "from", "to", "maxPoints", "session", "alignment",
             "adjustment", "asOf", "format"}  # fmt: skip
    unknown = sorted(set(query) - known)
    if unknown:
        raise DownloadError(
            400, f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}",
            parameter=unknown[0],
        )  # fmt: skip
    raw = ",".join(query.getlist("tickers"))
    # Matched exactly, as `symbols(filter: {tickers})` matches them; repeats count once.
    tickers = list(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    if not tickers:
        raise DownloadError(400, "`tickers` is required (comma-separated)", parameter="tickers")
    if len(tickers) > max_tickers:
        raise DownloadError(
            400, f"at most {max_tickers} tickers per download, got {len(tickers)}",
            parameter="tickers",
        )  # fmt: skip
    interval = query.get("interval") or "D1"
    if interval.upper() not in Interval.__members__:
        raise DownloadError(
            400, f"`interval` must be one of {', '.join(Interval.__members__)}, got {interval!r}",
            parameter="interval",
        )  # fmt: skip
    given = query.get("maxPoints")
    max_points = min(DEFAULT_MAX_POINTS, max_series_points)
    if given:
        try:
            max_points = int(given)
        except ValueError:
            raise DownloadError(
                400, f"`maxPoints` must be an integer, got {given!r}", parameter="maxPoints"
            ) from None
        if not 1 <= max_points <= max_series_points:
            raise DownloadError(
                400, f"`maxPoints` must be between 1 and {max_series_points}, got {max_points}",
                parameter="maxPoints",
            )  # fmt: skip
    start, end = _instant(request, "from"), _instant(request, "to")
    if start is not None and end is not None and start >= end:
        raise DownloadError(400, "`from` must be before `to`", parameter="from")
    as_of = query.get("asOf") or None
    if as_of is not None:
        try:
            as_of = date.fromisoformat(as_of).isoformat()
        except ValueError:
            raise DownloadError(
                400, f"`asOf` must be an ISO 8601 date, got {as_of!r}", parameter="asOf"
            ) from None
    variables: dict[str, Any] = {
        "interval": interval.upper(),
        "from": None if start is None else start.isoformat(),
        "to": None if end is None else end.isoformat(),
        "maxPoints": max_points,
        "session": _choice(request, "session", SESSIONS),
        "alignment": _choice(request, "alignment", ALIGNMENTS) or "SESSION",
        "adjustment": _choice(request, "adjustment", ADJUSTMENTS) or "RAW",
        "asOf": as_of,
    }
    return DownloadArgs(tickers, variables, max_points)


# --- running the document ----------------------------------------------------------------


@dataclass
class SymbolColumns:
    """One symbol's series as arrays, in SERIES_FIELDS order after `interval`."""

    ticker: str
    interval: str
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["time"])


async def _execute(
    request: Request, document: str, variables: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The `data` of a document run as a GraphQL request of this caller, and the rate
    limit's headers; DownloadError where /graphql would answer an error."""
    endpoint: GraphQLEndpoint = request.app.state.services.endpoint
    try:
        outcome = await endpoint.execute(request, Params(document, variables, None, None))
    except RequestError as exc:
        raise DownloadError(exc.status, exc.message, exc.code, headers=exc.headers) from None
    except LimitError as exc:
        raise DownloadError(exc.status, exc.message, exc.code) from None
    headers = {k: v for k, v in outcome.headers.items() if k.startswith("ratelimit-")}
    if outcome.status == 304:
        # The response cache matched the client's If-None-Match (graphql_api/http.py).
        raise NotModified(headers)
    body = outcome.body if outcome.raw is None else orjson.loads(outcome.raw)
    assert body is not None
    errors = body.get("errors") or []
    if errors:
        first = errors[0]
        code = (first.get("extensions") or {}).get("code", "INTERNAL_SERVER_ERROR")
        status = {"BAD_USER_INPUT": 400, "GRAPHQL_VALIDATION_FAILED": 400}.get(code, 500)
        if code in ("SERVICE_UNAVAILABLE", "DATABASE_UNAVAILABLE", "TIMEOUT"):
            status = 503
        raise DownloadError(status, first.get("message", "query failed"), code)
    data: dict[str, Any] = body["data"]
    return data, headers


async def known_tickers(request: Request, tickers: list[str]) -> set[str]:
    """Which of `tickers` exist (one small GraphQL request of this caller)."""
    data, _ = await _execute(request, TICKERS, {"tickers": tickers, "first": len(tickers)})
    return {node["ticker"] for node in data["symbols"]["nodes"]}


async def run_group(
    request: Request, tickers: list[str], variables: dict[str, Any]
) -> tuple[list[SymbolColumns], dict[str, str]]:
    """The series of `tickers` (known ones, in request order), run as a GraphQL request of
    this caller; and the rate limit's headers."""
    services = request.app.state.services
    # The columns' JSON is needed only by a response cache and by the fast path's check.
    sink = ColumnSink(json=services.cache is not None or services.settings.verify_fast_path)
    request.state.columns = sink
    try:
        data, headers = await _execute(
            request, DOCUMENT, {**variables, "tickers": tickers, "first": len(tickers)}
        )
    finally:
        request.state.columns = None
    found: dict[str, SymbolColumns] = {}
    for i, node in enumerate(data["symbols"]["nodes"]):
        series = node["series"]
        path = ("symbols", "nodes", i, "series")
        columns = {
            name: _array(sink.get((*path, name)), series[name], name)
            for name in SERIES_FIELDS
            if name != "interval"
        }
        found[node["ticker"]] = SymbolColumns(node["ticker"], series["interval"], columns)
    return [found[t] for t in tickers if t in found], headers


def _refuse_unknown(tickers: list[str], known: set[str]) -> None:
    missing = [t for t in tickers if t not in known]
    if missing:
        raise DownloadError(404, f"unknown tickers: {', '.join(missing)}", "NOT_FOUND", "tickers")


_KINDS = {"time": "M", "closed": "b"}


def _array(column: Column | None, value: Any, name: str) -> np.ndarray:
    """A column's array: the one execution collected, else from its JSON (a response cache
    hit, or a path that produced lists)."""
    if column is not None:
        return column.array
    if isinstance(value, orjson.Fragment):
        value = orjson.loads(value.contents)
    kind = _KINDS.get(name, "f")
    if kind == "M":
        value = [datetime.fromisoformat(v) for v in value]
    return Column.of(value, kind).array


# --- encoding ----------------------------------------------------------------------------


def arrow_batch(symbol: SymbolColumns) -> pa.RecordBatch:
    """One symbol's bars as a record batch of ARROW_SCHEMA (the arrays are not copied)."""
    n = len(symbol)
    zeros = pa.array(np.zeros(n, dtype=np.int32))
    cols = symbol.columns
    arrays = [
        pa.DictionaryArray.from_arrays(zeros, pa.array([symbol.ticker])),
        pa.DictionaryArray.from_arrays(zeros, pa.array([symbol.interval])),
        pa.array(cols["time"], type=pa.timestamp("us", tz="UTC")),
        *(pa.array(cols[f.graphql], type=pa.float64()) for f in BAR_FIELDS),
        pa.array(cols["closed"], type=pa.bool_()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=ARROW_SCHEMA)


class ArrowEncoder:
    """An IPC stream: the schema, then a record batch per symbol, then end-of-stream."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        # A symbol's batch brings its own one-entry dictionaries: replacements, which the
        # stream format (not the file format) allows.
        self.writer = pa.ipc.new_stream(self.buffer, ARROW_SCHEMA)

    def _take(self) -> bytes:
        out = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return out

    def start(self) -> bytes:
        return self._take()

    def symbol(self, symbol: SymbolColumns) -> bytes:
        self.writer.write_batch(arrow_batch(symbol))
        return self._take()

    def end(self) -> bytes:
        self.writer.close()
        return self._take()


class CsvEncoder:
    """CSV with a header row; times in ISO 8601 (UTC)."""

    def __init__(self) -> None:
        self.first = True

    def start(self) -> bytes:
        return b""

    def symbol(self, symbol: SymbolColumns) -> bytes:
        sink = io.BytesIO()
        options = pa_csv.WriteOptions(include_header=self.first)
        self.first = False
        pa_csv.write_csv(arrow_batch(symbol), sink, options)
        return sink.getvalue()

    def end(self) -> bytes:
        return b""


class JsonEncoder:
    """`{"series": [{"ticker", "interval", "time", "open", …}, …]}`: each symbol's columns
    as `Symbol.series` writes them."""

    def __init__(self) -> None:
        self.first = True

    def start(self) -> bytes:
        return b'{"series":['

    def symbol(self, symbol: SymbolColumns) -> bytes:
        item: dict[str, Any] = {"ticker": symbol.ticker, "interval": symbol.interval}
        for name, array in symbol.columns.items():
            encoded = Column(array).json()
            item[name] = orjson.Fragment(encoded) if encoded is not None else None
        out = (b"" if self.first else b",") + orjson.dumps(item)
        self.first = False
        return out

    def end(self) -> bytes:
        return b"]}"


ENCODERS: dict[str, Callable[[], ArrowEncoder | CsvEncoder | JsonEncoder]] = {
    ARROW: ArrowEncoder,
    CSV: CsvEncoder,
    JSON: JsonEncoder,
}


# --- the route ---------------------------------------------------------------------------

router = APIRouter()


def group_size(endpoint: GraphQLEndpoint, variables: dict[str, Any], tickers: int) -> int:
    """Symbols per document: as many as fit the cost limit (at least one; a single symbol
    over the limit is refused by it, as on /graphql)."""
    share = endpoint.limits.share_of_cost_limit(
        DOCUMENT, {**variables, "tickers": ["X"], "first": 1}
    )
    return max(1, min(tickers, math.floor(1 / share) if share > 0 else tickers))


def _error_response(exc: DownloadError) -> Response:
    note_outcome(exc.status, exc.body())
    return Response(
        orjson.dumps(exc.body()), status_code=exc.status, media_type=JSON, headers=exc.headers
    )


@router.get("/download/bars", include_in_schema=False)
async def download_bars(request: Request) -> Response:
    """Bars of many symbols as Arrow IPC, CSV or JSON (docs/download.md)."""

    async def run(request: Request) -> Response:
        try:
            return await _download(request)
        except DownloadError as exc:
            return _error_response(exc)
        except NotModified as exc:
            note_outcome(304, None)
            return Response(status_code=304, headers=exc.headers)

    return await observe_request(request, run)


async def _download(request: Request) -> Response:
    kind = media_type(request)
    services = request.app.state.services
    settings = services.settings
    args = parse_args(request, settings.max_page_size_symbols, settings.max_series_points)
    endpoint: GraphQLEndpoint = services.endpoint
    size = group_size(endpoint, args.variables, len(args.tickers))
    groups = [args.tickers[i : i + size] for i in range(0, len(args.tickers), size)]
    if len(groups) > 1:
        _refuse_unknown(args.tickers, await known_tickers(request, args.tickers))
    # The first group runs before the response starts: its errors (key, scope, limits,
    # rate limit, bad arguments) are answered with their status.
    first, headers = await run_group(request, groups[0], args.variables)
    if len(groups) == 1:
        _refuse_unknown(args.tickers, {s.ticker for s in first})
    encoder = ENCODERS[kind]()

    async def body() -> AsyncIterator[bytes]:
        yield encoder.start()
        for symbol in first:
            yield encoder.symbol(symbol)
        for group in groups[1:]:
            loaded, _ = await run_group(request, group, args.variables)
            for symbol in loaded:
                yield encoder.symbol(symbol)
        yield encoder.end()

    filename = "bars." + {ARROW: "arrows", CSV: "csv", JSON: "json"}[kind]
    headers = {
        **headers,
        "content-disposition": f'inline; filename="{filename}"',
        "vary": "accept",
    }
    return StreamingResponse(body(), media_type=kind, headers=headers)
