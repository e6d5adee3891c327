"""TradingView's UDF datafeed protocol (the Charting Library's `UDFCompatibleDatafeed`) at /udf.

A translation, not a second data path: every endpoint that reads market data composes a fixed
GraphQL document and runs it through `GraphQLEndpoint.execute` (graphql_api/http.py), which
applies the caller's API key, authorization, cost limits, the rate limit and the response cache
exactly as a request to /graphql does, then reshapes the answer. So `/udf/history` returns the
numbers `Symbol.bars` returns for the same range. docs/tradingview.md has the contract table.

- Times are Unix seconds; `from` is inclusive and `to` exclusive (bars starting in
  [from, to)), as in `Symbol.bars`. With `countback`, the newest `countback` bars starting
  before `to` are returned whatever `from` says.
- An empty range answers `{"s": "no_data", "nextTime": t}` with `t` the start of the newest bar
  before the range, or `{"s": "no_data"}` when nothing older exists.
- Bars are the session-aligned buckets of `Symbol.bars` (intraday from the session open in
  the exchange's time zone; D1/W1/MN1 stamped 00:00 UTC of their trading date, as the library
  expects); `/udf/symbols` describes that session and zone from `Symbol.tradingHours`.
- `/udf/history` also takes `session` and `adjustment` (ours, optional, as on `bars`), and
  `/udf/marks` and `/udf/timescale_marks` answer the symbol's corporate actions.
- Errors answer `{"s": "error", "errmsg": ...}` with a 4xx status (401/403/429 as /graphql).
- `/udf/config` and `/udf/time` hold no market data and answer without a key, like /healthz.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from core.calendars import default_session, sessions
from core.intervals import Interval
from core.reqstats import note_outcome
from graphql_api.http import GraphQLEndpoint, Params, RequestError
from graphql_api.limits import LimitError
from graphql_api.telemetry import observe_request

#: TradingView resolution -> our interval. The first spelling of each is the one we advertise.
RESOLUTIONS: dict[str, Interval] = {
    "1": Interval.M1,
    "5": Interval.M5,
    "15": Interval.M15,
    "30": Interval.M30,
    "60": Interval.H1,
    "240": Interval.H4,
    "1D": Interval.D1,
    "D": Interval.D1,
    "1W": Interval.W1,
    "W": Interval.W1,
    "1M": Interval.MN1,
    "M": Interval.MN1,
}
SUPPORTED_RESOLUTIONS = ["1", "5", "15", "30", "60", "240", "1D", "1W", "1M"]
INTRADAY_MULTIPLIERS = ["1", "5", "15", "30", "60", "240"]

#: Pages of `Symbol.bars` one `/udf/history` request may read (each page is charged, like a
#: GraphQL request); a range holding more bars is refused with a hint to use `countback`.
MAX_HISTORY_PAGES = 10

#: `marks` and `timescale_marks` answer the symbol's corporate actions.
SUPPORTS_MARKS = True

#: Mark colours by action kind (the library draws marks as coloured circles and flags).
MARK_COLORS = {"SPLIT": "#1565c0", "DIVIDEND": "#2e7d32"}
MARK_LABELS = {"SPLIT": "S", "DIVIDEND": "D"}

BAR_FIELDS = "time open high low close volume"

#: `session` and `adjustment` of `Symbol.bars`, as `/udf/history` takes them (optional query
#: parameters; absent means the symbol's default session and RAW, as in GraphQL).
BAR_OPTIONS = "session: $session, adjustment: $adjustment"
BAR_VARIABLES = "$session: Session, $adjustment: Adjustment! = RAW"
SESSIONS = ("REGULAR", "EXTENDED", "ALL")
ADJUSTMENTS = ("RAW", "SPLIT", "DIVIDEND", "ALL")

HISTORY_RANGE = f"""
query UdfHistory($ticker: String!, $interval: Interval!, $from: DateTime!, $to: DateTime!,
                 $first: Int!, $after: String, {BAR_VARIABLES}) {{
  symbol(ticker: $ticker) {{
    bars(interval: $interval, from: $from, to: $to, first: $first, after: $after,
         order: OLDEST_FIRST, {BAR_OPTIONS}) {{
      nodes {{ {BAR_FIELDS} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
    older: bars(interval: $interval, to: $from, first: 1, {BAR_OPTIONS}) {{ nodes {{ time }} }}
  }}
}}
"""

HISTORY_COUNTBACK = f"""
query UdfCountback($ticker: String!, $interval: Interval!, $to: DateTime!, $first: Int!,
                   {BAR_VARIABLES}) {{
  symbol(ticker: $ticker) {{
    bars(interval: $interval, to: $to, first: $first, {BAR_OPTIONS}) {{
      nodes {{ {BAR_FIELDS} }}
    }}
  }}
}}
"""

MARKS = """
query UdfMarks($ticker: String!, $from: Date!, $to: Date!) {
  symbol(ticker: $ticker) {
    calendar
    corporateActions(from: $from, to: $to) { kind exDate ratio amount currency }
  }
}
"""

SYMBOL = """
query UdfSymbol($ticker: String!) {
  symbol(ticker: $ticker) {
    ticker
    name
    exchange
    assetClass
    currency
    active
    tradingHours { timezone regular extended }
    storedTimeframes { interval }
    recent: bars(interval: D1, first: 50) { nodes { open high low close volume } }
  }
}
"""

SEARCH = """
query UdfSearch($first: Int!, $filter: SymbolFilter) {
  symbols(first: $first, filter: $filter) {
    nodes { ticker name exchange assetClass }
  }
}
"""


class UdfError(Exception):
    """A request answered with `{"s": "error", "errmsg": message}` and `status`."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers or {}


class NotModified(Exception):
    """The client's cached answer is current (the response cache's ETag matched)."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("not modified")
        self.headers = headers


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


#: Headers of the GraphQL answer worth passing on: caching and the rate limit's state.
_PASSED_HEADERS = ("etag", "cache-control", "ratelimit-limit", "ratelimit-remaining")


class Reply:
    """Headers collected from the documents one UDF request ran."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}


async def _run(
    request: Request, reply: Reply, document: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """The `data` of a document run as a GraphQL request of this caller; UdfError otherwise."""
    endpoint: GraphQLEndpoint = request.app.state.services.endpoint
    try:
        outcome = await endpoint.execute(request, Params(document, variables, None, None))
    except RequestError as exc:
        raise UdfError(exc.message, exc.status, exc.headers) from None
    except LimitError as exc:
        raise UdfError(exc.message, exc.status) from None
    for name in _PASSED_HEADERS:
        if name in outcome.headers and name not in reply.headers:
            reply.headers[name] = outcome.headers[name]
    if outcome.status == 304:
        raise NotModified(reply.headers)
    body = outcome.body if outcome.raw is None else orjson.loads(outcome.raw)
    assert body is not None
    errors = body.get("errors") or []
    if errors:
        first = errors[0]
        code = (first.get("extensions") or {}).get("code", "")
        status = 400 if code in ("BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED") else 500
        if code in ("SERVICE_UNAVAILABLE", "DATABASE_UNAVAILABLE", "TIMEOUT"):
            status = 503
        raise UdfError(first.get("message", "query failed"), status)
    data: dict[str, Any] = body["data"]
    return data


Handler = Callable[[Request, Reply], Awaitable[Response]]


async def _answer(request: Request, handler: Handler) -> Response:
    """Run a UDF handler under the app's telemetry; errors as the protocol spells them."""

    async def run(request: Request) -> Response:
        reply = Reply()
        try:
            response = await handler(request, reply)
        except NotModified as exc:
            return Response(status_code=304, headers=exc.headers)
        except UdfError as exc:
            headers = {**reply.headers, **exc.headers}
            headers.pop("etag", None)
            headers.pop("cache-control", None)
            note_outcome(exc.status, {"errors": [{"message": exc.message}]})
            return _json({"s": "error", "errmsg": exc.message}, exc.status, headers)
        response.headers.update(reply.headers)
        return response

    return await observe_request(request, run)


# --- arguments ---------------------------------------------------------------------------


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if value is None or value == "":
        raise UdfError(f"`{name}` is required")
    return value


def _integer(request: Request, name: str, *, required: bool = True) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        if required:
            raise UdfError(f"`{name}` is required (Unix seconds)")
        return None
    try:
        number = int(value)
    except ValueError:
        raise UdfError(f"`{name}` must be an integer, got {value!r}") from None
    return number


def interval_of(resolution: str) -> Interval:
    """Our interval for a TradingView resolution; UdfError for one we do not serve."""
    interval = RESOLUTIONS.get(resolution.strip().upper() if resolution else "")
    if interval is None:
        raise UdfError(
            f"unsupported resolution {resolution!r}; supported: " + ", ".join(SUPPORTED_RESOLUTIONS)
        )
    return interval


def ticker_of(symbol: str) -> str:
    """The ticker of `TICKER` or `EXCHANGE:TICKER` (the library may send either)."""
    return symbol.rsplit(":", 1)[-1].strip()


_MIN_SECONDS = int(datetime(1, 1, 2, tzinfo=UTC).timestamp())
_MAX_SECONDS = int(datetime(9999, 12, 30, tzinfo=UTC).timestamp())


def _iso(seconds: int, name: str) -> str:
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise UdfError(f"`{name}` is out of range: {seconds}")
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def stamp(iso: str, interval: Interval) -> int:
    """Unix seconds of a bar's start; daily and coarser bars at 00:00 UTC of their date."""
    start = datetime.fromisoformat(iso)
    if interval.is_intraday:
        return int(start.timestamp())
    day: date = start.astimezone(UTC).date()
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _decimals(values: list[float], most: int) -> int:
    """The fewest decimals that write every value exactly (at most `most`)."""
    needed = 0
    for value in values:
        if not math.isfinite(value):
            continue
        while needed < most and abs(round(value * 10**needed) - value * 10**needed) > 1e-6:
            needed += 1
    return needed


# --- endpoints ---------------------------------------------------------------------------

router = APIRouter(prefix="/udf")


def config_body() -> dict[str, Any]:
    """What `/udf/config` answers."""
    return {
        "supported_resolutions": SUPPORTED_RESOLUTIONS,
        "supports_group_request": False,
        "supports_search": True,
        "supports_marks": SUPPORTS_MARKS,
        "supports_timescale_marks": SUPPORTS_MARKS,
        "supports_time": True,
        "exchanges": [],
        "symbols_types": [],
    }


@router.get("/config", include_in_schema=False)
async def config(request: Request) -> Response:
    async def handler(request: Request, reply: Reply) -> Response:
        return _json(config_body())

    return await _answer(request, handler)


@router.get("/time", include_in_schema=False)
async def server_time(request: Request) -> Response:
    async def handler(request: Request, reply: Reply) -> Response:
        return PlainTextResponse(str(int(time.time())), headers={"cache-control": "no-store"})

    return await _answer(request, handler)


@router.get("/symbols", include_in_schema=False)
async def symbols(request: Request) -> Response:
    async def handler(request: Request, reply: Reply) -> Response:
        ticker = ticker_of(_required(request, "symbol"))
        data = await _run(request, reply, SYMBOL, {"ticker": ticker})
        return _json(symbol_info(data["symbol"], ticker))

    return await _answer(request, handler)


def symbol_info(symbol: dict[str, Any] | None, ticker: str) -> dict[str, Any]:
    """The library's symbol information for a `UdfSymbol` result."""
    if symbol is None:
        raise UdfError(f"unknown symbol {ticker!r}", 404)
    stored = [Interval[t["interval"]] for t in symbol["storedTimeframes"]]
    finest = min(stored, key=lambda i: i.seconds) if stored else Interval.D1
    resolutions = [r for r in SUPPORTED_RESOLUTIONS if finest.divides(RESOLUTIONS[r])]
    recent = symbol["recent"]["nodes"]
    prices = [bar[k] for bar in recent for k in ("open", "high", "low", "close")]
    # At least cents: a series of whole numbers still moves in cents on the price scale.
    price_decimals = max(_decimals(prices, 8), 2)
    return {
        "name": symbol["ticker"],
        "ticker": symbol["ticker"],
        "full_name": f"{symbol['exchange']}:{symbol['ticker']}",
        "description": symbol["name"],
        "type": symbol["assetClass"],
        "exchange": symbol["exchange"],
        "listed_exchange": symbol["exchange"],
        "currency_code": symbol["currency"],
        **session_fields(symbol["tradingHours"]),
        "minmov": 1,
        "pricescale": 10**price_decimals,
        "format": "price",
        "has_intraday": finest.is_intraday,
        "has_daily": True,
        "has_weekly_and_monthly": True,
        "supported_resolutions": resolutions,
        "intraday_multipliers": [r for r in INTRADAY_MULTIPLIERS if r in resolutions],
        "daily_multipliers": ["1"],
        "weekly_multipliers": ["1"],
        "monthly_multipliers": ["1"],
        "volume_precision": _decimals([bar["volume"] for bar in recent], 8),
        "data_status": "streaming" if symbol["active"] else "endofday",
    }


def session_fields(hours: dict[str, Any]) -> dict[str, Any]:
    """The library's session fields for a symbol's `tradingHours` (core/calendars.py
    `trading_hours`): the regular session, and the extended one as a subsession the chart's
    session switch offers. The stock UDF client does not tell `/udf/history` which one is
    shown; a client that does passes `session=extended` there."""
    fields: dict[str, Any] = {"session": hours["regular"], "timezone": hours["timezone"]}
    if hours["extended"]:
        fields["subsession_id"] = "regular"
        fields["subsessions"] = [
            {"id": "regular", "description": "Regular Trading Hours", "session": hours["regular"]},
            {
                "id": "extended",
                "description": "Extended Trading Hours",
                "session": hours["extended"],
            },
        ]
    return fields


@router.get("/search", include_in_schema=False)
async def search(request: Request) -> Response:
    async def handler(request: Request, reply: Reply) -> Response:
        given = _integer(request, "limit", required=False)
        limit = 30 if given is None else given
        if limit < 1:
            raise UdfError(f"`limit` must be positive, got {limit}")
        services = request.app.state.services
        limit = min(limit, services.settings.max_page_size_symbols)
        query_params = request.query_params
        search_filter: dict[str, Any] = {}
        if query_params.get("query"):
            search_filter["search"] = ticker_of(query_params["query"])
        if query_params.get("exchange"):
            search_filter["exchange"] = query_params["exchange"]
        if query_params.get("type"):
            search_filter["assetClass"] = query_params["type"]
        data = await _run(request, reply, SEARCH, {"first": limit, "filter": search_filter})
        return _json(
            [
                {
                    "symbol": s["ticker"],
                    "full_name": f"{s['exchange']}:{s['ticker']}",
                    "description": s["name"],
                    "exchange": s["exchange"],
                    "ticker": s["ticker"],
                    "type": s["assetClass"],
                }
                for s in data["symbols"]["nodes"]
            ]
        )

    return await _answer(request, handler)


@router.get("/history", include_in_schema=False)
async def history(request: Request) -> Response:
    async def handler(request: Request, reply: Reply) -> Response:
        return _json(await history_body(request, reply))

    return await _answer(request, handler)


def _columns(nodes: list[dict[str, Any]], interval: Interval) -> dict[str, Any]:
    return {
        "s": "ok",
        "t": [stamp(n["time"], interval) for n in nodes],
        "o": [n["open"] for n in nodes],
        "h": [n["high"] for n in nodes],
        "l": [n["low"] for n in nodes],
        "c": [n["close"] for n in nodes],
        "v": [n["volume"] for n in nodes],
    }


async def history_body(request: Request, reply: Reply) -> dict[str, Any]:
    """What `/udf/history` answers for this request's arguments."""
    ticker = ticker_of(_required(request, "symbol"))
    interval = interval_of(_required(request, "resolution"))
    end = _integer(request, "to")
    start = _integer(request, "from", required=countback_missing(request))
    countback = _integer(request, "countback", required=False)
    assert end is not None
    page_size: int = request.app.state.services.settings.max_page_size_bars
    base = {
        "ticker": ticker,
        "interval": interval.name,
        "to": _iso(end, "to"),
        **bar_options(request),
    }
    if countback is not None:
        # countback wins over `from`: the newest `countback` bars before `to`.
        if not 1 <= countback <= page_size:
            raise UdfError(f"`countback` must be between 1 and {page_size}, got {countback}")
        data = await _run(request, reply, HISTORY_COUNTBACK, {**base, "first": countback})
        if data["symbol"] is None:
            raise UdfError(f"unknown symbol {ticker!r}", 404)
        nodes = list(reversed(data["symbol"]["bars"]["nodes"]))
        # Nothing before `to` at all: nothing older exists either.
        return _columns(nodes, interval) if nodes else {"s": "no_data"}
    assert start is not None
    if start >= end:
        raise UdfError(f"`from` ({start}) must be before `to` ({end})")
    # Pages no larger than the range can hold: the cost charged follows `first`.
    first = min(page_size, (end - start) // interval.seconds + 2)
    variables = {**base, "from": _iso(start, "from"), "first": first, "after": None}
    nodes = []
    older: list[dict[str, Any]] = []
    for _ in range(MAX_HISTORY_PAGES):
        data = await _run(request, reply, HISTORY_RANGE, variables)
        if data["symbol"] is None:
            raise UdfError(f"unknown symbol {ticker!r}", 404)
        page = data["symbol"]["bars"]
        nodes.extend(page["nodes"])
        older = data["symbol"]["older"]["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        variables["after"] = page["pageInfo"]["endCursor"]
    else:
        raise UdfError(
            f"the range holds more than {MAX_HISTORY_PAGES * first} bars; "
            "ask for a shorter range or use `countback`",
            413,
        )
    if nodes:
        return _columns(nodes, interval)
    if older:
        return {"s": "no_data", "nextTime": stamp(older[0]["time"], interval)}
    return {"s": "no_data"}


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    # Case-insensitive: the library's subsession ids are lower case (`regular`, `extended`).
    if value.upper() not in allowed:
        raise UdfError(f"`{name}` must be one of {', '.join(allowed)}, got {value!r}")
    return value.upper()


def bar_options(request: Request) -> dict[str, str]:
    """The optional `session` and `adjustment` of a history request, as `bars` variables
    (absent ones are left to GraphQL's defaults: the symbol's session, RAW)."""
    options = {}
    session = _choice(request, "session", SESSIONS)
    if session is not None:
        options["session"] = session
    adjustment = _choice(request, "adjustment", ADJUSTMENTS)
    if adjustment is not None:
        options["adjustment"] = adjustment
    return options


def countback_missing(request: Request) -> bool:
    """`from` is required unless `countback` is given."""
    return not request.query_params.get("countback")


def _day_index(seconds: int) -> date:
    """The first date whose 00:00 UTC is at or after `seconds`."""
    return date.fromordinal(_EPOCH_ORDINAL + -(-seconds // 86400))


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _ratio_text(ratio: float) -> str:
    """`2:1` for a 2-for-1 split, `1:10` for a 1-for-10 reverse split."""
    share = Fraction(ratio).limit_denominator(1000)
    return f"{share.numerator}:{share.denominator}"


def action_text(action: dict[str, Any]) -> str:
    """One line describing a corporate action (the mark's tooltip)."""
    if action["kind"] == "SPLIT":
        what = f"Split {_ratio_text(action['ratio'])}"
    else:
        what = f"Dividend {action['amount']:g} {action['currency']}"
    return f"{what}, ex-date {action['exDate']}"


def action_time(action: dict[str, Any], interval: Interval, calendar: str) -> int:
    """Unix seconds a mark is drawn at: 00:00 UTC of the ex-date on daily and coarser bars
    (how those bars are stamped), the ex-date's regular open on intraday ones (so the mark
    sits on the session's first bar, not on the previous evening's)."""
    day = date.fromisoformat(action["exDate"])
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    if not interval.is_intraday:
        return midnight
    parts = sessions(calendar).parts(day, default_session(calendar))
    return int(parts[0].start.timestamp()) if parts else midnight


async def _actions(request: Request, reply: Reply) -> tuple[Interval, str, list[dict[str, Any]]]:
    ticker = ticker_of(_required(request, "symbol"))
    interval = interval_of(_required(request, "resolution"))
    start, end = _integer(request, "from"), _integer(request, "to")
    assert start is not None and end is not None
    for seconds_, name in ((start, "from"), (end, "to")):
        _iso(seconds_, name)  # the same range check as history
    if start > end:
        raise UdfError(f"`from` ({start}) must not be after `to` ({end})")
    # Ex-dates whose 00:00 UTC lies in [from, to).
    variables = {
        "ticker": ticker,
        "from": _day_index(start).isoformat(),
        "to": _day_index(end).isoformat(),
    }
    data = await _run(request, reply, MARKS, variables)
    if data["symbol"] is None:
        raise UdfError(f"unknown symbol {ticker!r}", 404)
    return interval, data["symbol"]["calendar"], data["symbol"]["corporateActions"]


def _mark_id(action: dict[str, Any]) -> str:
    return f"{action['kind'].lower()}-{action['exDate']}"


async def _marks(request: Request, reply: Reply) -> Response:
    interval, calendar, actions = await _actions(request, reply)
    return _json(
        [
            {
                "id": _mark_id(a),
                "time": action_time(a, interval, calendar),
                "color": MARK_COLORS[a["kind"]],
                "text": action_text(a),
                "label": MARK_LABELS[a["kind"]],
                "labelFontColor": "#ffffff",
                "minSize": 14,
            }
            for a in actions
        ]
    )


async def _timescale_marks(request: Request, reply: Reply) -> Response:
    interval, calendar, actions = await _actions(request, reply)
    return _json(
        [
            {
                "id": _mark_id(a),
                "time": action_time(a, interval, calendar),
                "color": MARK_COLORS[a["kind"]],
                "label": MARK_LABELS[a["kind"]],
                "tooltip": [action_text(a)],
            }
            for a in actions
        ]
    )


@router.get("/marks", include_in_schema=False)
async def marks(request: Request) -> Response:
    return await _answer(request, _marks)


@router.get("/timescale_marks", include_in_schema=False)
async def timescale_marks(request: Request) -> Response:
    return await _answer(request, _timescale_marks)
