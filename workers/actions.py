"""Corporate actions: reading and validating action files, and writing actions as ingest events.

A file (CSV, optionally gzipped, or Parquet) has one action a row: a ticker (`ticker` or
`symbol`), a kind (`kind` or `type`: split or dividend, any case; `cash` and `cd` mean a
dividend), an ex-date (`ex_date`, `ex-date`, `exdate` or `date`; ISO dates) and a value: a
split ratio as `ratio` (a number of new shares per old share, or `to:from` such as `3:2`),
or a dividend as `amount` (cash per share); a `value` column serves either. `currency`
(default USD) is optional. Every row is checked; rejects are reported by line and reason and
nothing good is dropped; a repeated (ticker, kind, ex-date) keeps its first good row.

Writing is an upsert on (symbol, kind, ex-date), so re-ingesting a file changes nothing and a
corrected value replaces the old one. A new or changed action changes the adjusted bars of
its symbol before the ex-date, so it is recorded like a bar revision (core.events): one
`bar_changes` row per stored timeframe of the symbol over the bars it adjusts, in the same
transaction. That moves the series' data version (which every cache key carries) and
notifies live clients and `ingestEvents`, as a write of bars would.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd

from core.events import BarChange, record_changes
from core.tickers import ticker_problem
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import series_lock_key

KINDS = {"split": "SPLIT", "dividend": "DIVIDEND", "cash": "DIVIDEND", "cd": "DIVIDEND"}
_HEADERS = {
    "ticker": ("ticker", "symbol"),
    "kind": ("kind", "type", "action"),
    "ex_date": ("ex_date", "ex-date", "exdate", "date"),
    "ratio": ("ratio", "split_ratio"),
    "amount": ("amount", "cash_amount", "dividend"),
    "value": ("value",),
    "currency": ("currency",),
}
#: Columns of the reject file.
REJECT_COLUMNS = ("file", "line", "reason", "ticker", "kind", "ex_date", "value")
_RATIO = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*[:/]\s*([0-9]*\.?[0-9]+)\s*$")
_SOURCE_MAX = 64  # corporate_actions.source and bar_changes.source are varchar(64)
MAX_EXAMPLES = 20


class NotActionsError(ValueError):
    """The file is not a table of corporate actions (a required column is missing)."""


@dataclass
class ActionsReport:
    """What an ingest of one actions file did."""

    path: Path
    rows_read: int = 0
    rows_accepted: int = 0
    rows_written: int = 0  # actions new or changed
    rows_rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)
    changes: list[BarChange] = field(default_factory=list)


def read_actions_file(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The file's rows as text, and their line numbers (CSV: the header is line 1; Parquet:
    1-based row numbers). Raises NotActionsError when a required column is missing."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        raw = pd.read_parquet(path).astype("string")
        lines = np.arange(1, len(raw) + 1, dtype=np.int64)
    else:
        raw = pd.read_csv(path, dtype="string", keep_default_na=False, skip_blank_lines=False)
        lines = np.arange(2, len(raw) + 2, dtype=np.int64)
        blank = raw.isna().all(axis=1).to_numpy() | (raw.fillna("") == "").all(axis=1).to_numpy()
        raw, lines = raw[~blank].reset_index(drop=True), lines[~blank]
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    mapped: dict[str, str] = {}
    for name, options in _HEADERS.items():
        found = next((o for o in options if o in raw.columns), None)
        if found is not None:
            mapped[name] = found
    missing = [n for n in ("ticker", "kind", "ex_date") if n not in mapped]
    if not ({"ratio", "amount", "value"} & mapped.keys()):
        missing.append("ratio/amount/value")
    if missing:
        raise NotActionsError(f"{path}: not an actions table: no {', '.join(missing)} column")
    out = pd.DataFrame({name: raw[col] for name, col in mapped.items()})
    return out, lines


def _number(text: object) -> float:
    """A positive finite number from a value cell (`2`, `0.5`, `3:2`), or NaN."""
    if text is None or text is pd.NA:
        return float("nan")
    s = str(text).strip()
    m = _RATIO.match(s)
    try:
        value = float(m.group(1)) / float(m.group(2)) if m else float(s)
    except (ValueError, ZeroDivisionError):
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def validate_actions(raw: pd.DataFrame, lines: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(good actions: ticker, kind, ex_date, value, currency; rejects: line, reason, cells)."""
    n = len(raw)
    reasons: list[list[str]] = [[] for _ in range(n)]
    col = {c: raw[c].astype("string").fillna("").str.strip() for c in raw.columns}
    tickers = col["ticker"].str.upper().tolist()
    kinds = [KINDS.get(k.lower()) for k in col["kind"].tolist()]
    dates = pd.to_datetime(col["ex_date"], errors="coerce", format="ISO8601")
    values = []
    for i in range(n):
        kind = kinds[i]
        cell = ""
        if kind == "SPLIT":
            cell = col["ratio"].iloc[i] if "ratio" in col else ""
        elif kind == "DIVIDEND":
            cell = col["amount"].iloc[i] if "amount" in col else ""
        if not cell and "value" in col:
            cell = col["value"].iloc[i]
        values.append((cell, _number(cell) if cell else float("nan")))
    currency = col["currency"].str.upper().tolist() if "currency" in col else ["USD"] * n
    for i in range(n):
        problem = ticker_problem(tickers[i])
        if problem:
            reasons[i].append(problem)
        if kinds[i] is None:
            reasons[i].append(f"unknown kind {col['kind'].iloc[i]!r} (split or dividend)")
        if pd.isna(dates.iloc[i]):
            reasons[i].append("unparseable ex-date")
        cell, value = values[i]
        if kinds[i] is not None:
            what = "ratio" if kinds[i] == "SPLIT" else "amount"
            if not cell:
                reasons[i].append(f"missing {what}")
            elif value != value:
                reasons[i].append(f"{what} is not a number")
            elif value <= 0:
                reasons[i].append(f"{what} is not positive")
            elif kinds[i] == "SPLIT" and value == 1:
                reasons[i].append("ratio is 1 (not a split)")
        if len(currency[i] or "USD") > 8:
            reasons[i].append("currency too long")
    first: dict[tuple[str, str | None, object], int] = {}
    for i in range(n):
        if reasons[i]:
            continue
        key = (tickers[i], kinds[i], dates.iloc[i].date())
        if key in first:
            reasons[i].append(f"duplicate action (first on line {first[key]})")
        else:
            first[key] = int(lines[i])
    good = np.array([not r for r in reasons], dtype=bool)
    idx = np.flatnonzero(good)
    actions = pd.DataFrame(
        {
            "ticker": [tickers[i] for i in idx],
            "kind": [kinds[i] for i in idx],
            "ex_date": [dates.iloc[i].date() for i in idx],
            "value": [values[i][1] for i in idx],
            "currency": [currency[i] or "USD" for i in idx],
        }
    )
    bad = np.flatnonzero(~good)
    rejected = pd.DataFrame(
        {
            "line": lines[bad],
            "reason": ["; ".join(reasons[i]) for i in bad],
            "ticker": [col["ticker"].iloc[i] for i in bad],
            "kind": [col["kind"].iloc[i] for i in bad],
            "ex_date": [col["ex_date"].iloc[i] for i in bad],
            "value": [values[i][0] for i in bad],
        }
    )
    return actions, rejected


@dataclass(frozen=True)
class Action:
    """One corporate action to store (a split ratio or a cash amount per share)."""

    ticker: str
    kind: str  # SPLIT or DIVIDEND
    ex_date: date
    value: float
    currency: str = "USD"


_UPSERT = """
WITH u AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::date[], $4::float8[], $5::text[])
             AS u(symbol_id, kind, ex_date, value, currency)
)
INSERT INTO corporate_actions AS a (symbol_id, kind, ex_date, value, currency, source)
SELECT symbol_id, kind, ex_date, value, currency, $6 FROM u
ORDER BY symbol_id, kind, ex_date
ON CONFLICT (symbol_id, kind, ex_date) DO UPDATE SET
    value = EXCLUDED.value, currency = EXCLUDED.currency, source = EXCLUDED.source,
    updated_at = now()
WHERE (a.value, a.currency) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.currency)
RETURNING symbol_id, ex_date
"""

# Per stored series of the changed symbols: the bars the changed actions adjust (those
# before the latest changed ex-date), as a change event's range and row count.
_AFFECTED = """
SELECT s.symbol_id, s.timeframe, s.first_ts, b.last_ts, b.n
FROM unnest($1::int[], $2::date[]) AS c(symbol_id, ex_date)
JOIN bar_series s ON s.symbol_id = c.symbol_id
CROSS JOIN LATERAL (
    SELECT max(ts) AS last_ts, count(*)::int AS n FROM bars
    WHERE symbol_id = s.symbol_id AND timeframe = s.timeframe
      AND ts < c.ex_date::timestamp AT TIME ZONE 'UTC'
) b
WHERE b.n > 0
ORDER BY s.symbol_id, s.timeframe
"""


async def write_actions(
    conn: asyncpg.Connection, actions: Sequence[Action], *, source: str = ""
) -> tuple[int, list[BarChange]]:
    """Upsert actions in one transaction; returns (actions new or changed, change events).

    Symbols are created when unknown (an action may arrive before the symbol's bars).
    """
    if not actions:
        return 0, []
    source = source[:_SOURCE_MAX]
    async with conn.transaction():
        tickers = sorted({a.ticker for a in actions})
        ids = await upsert_symbols(conn, [SymbolInfo(t) for t in tickers])
        rows = sorted(actions, key=lambda a: (ids[a.ticker.upper()], a.kind, a.ex_date))
        changed = await conn.fetch(
            _UPSERT,
            [ids[a.ticker.upper()] for a in rows],
            [a.kind for a in rows],
            [a.ex_date for a in rows],
            [float(a.value) for a in rows],
            [a.currency for a in rows],
            source,
        )
        if not changed:
            return 0, []
        latest: dict[int, date] = {}
        for r in changed:
            latest[r["symbol_id"]] = max(r["ex_date"], latest.get(r["symbol_id"], r["ex_date"]))
        sids = sorted(latest)
        series = await conn.fetch(
            "SELECT symbol_id, timeframe FROM bar_series WHERE symbol_id = ANY($1::int[])", sids
        )
        # The lock bar writers take per series (workers.upsert), so versions keep commit order.
        keys = sorted(series_lock_key(r["symbol_id"], r["timeframe"]) for r in series)
        await conn.execute(
            "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k", keys
        )
        affected = await conn.fetch(_AFFECTED, sids, [latest[s] for s in sids])
        events = [
            BarChange(r["symbol_id"], r["timeframe"], r["first_ts"], r["last_ts"], r["n"])
            for r in affected
        ]
        recorded = await record_changes(conn, events, source=source)
    return len(changed), recorded


def frame_actions(frame: pd.DataFrame) -> list[Action]:
    """Validated rows (from `validate_actions`) as actions."""
    return [
        Action(t, k, d, float(v), c)
        for t, k, d, v, c in zip(
            frame["ticker"],
            frame["kind"],
            frame["ex_date"],
            frame["value"],
            frame["currency"],
            strict=True,
        )
    ]


def check_actions_file(
    path: Path, *, rejects: Path | None = None
) -> tuple[ActionsReport, list[Action]]:
    """Read and validate one actions file; rejects are counted (and appended to `rejects`)."""
    raw, lines = read_actions_file(path)
    good, rejected = validate_actions(raw, lines)
    report = ActionsReport(path, rows_read=len(raw), rows_accepted=len(good))
    report.rows_rejected = len(rejected)
    report.reasons.update(rejected["reason"].tolist())
    report.examples = list(
        zip(
            rejected["line"].head(MAX_EXAMPLES).tolist(),
            rejected["reason"].head(MAX_EXAMPLES).tolist(),
            strict=True,
        )
    )
    if rejects is not None and not rejected.empty:
        out = rejected.assign(file=str(path)).reindex(columns=list(REJECT_COLUMNS))
        header = not rejects.exists() or rejects.stat().st_size == 0
        out.to_csv(rejects, mode="a", header=header, index=False)
    return report, frame_actions(good)


async def ingest_actions_file(
    conn: asyncpg.Connection, path: Path, *, rejects: Path | None = None
) -> ActionsReport:
    """Read, validate and write one actions file (one transaction); rejects are reported."""
    report, actions = await asyncio.to_thread(check_actions_file, path, rejects=rejects)
    report.rows_written, report.changes = await write_actions(
        conn, actions, source=f"actions:{path.name}"
    )
    return report
