"""Writing validated bars (by ticker) for one timeframe: symbols resolved, batches upserted."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
import numpy as np
import numpy.typing as npt
import pandas as pd

from core.events import BarChange
from core.intervals import parse_timeframe
from workers.runs import RunRecorder
from workers.symbols import SymbolInfo, upsert_symbols
from workers.upsert import PRICE_COLUMNS, upsert_columns

_SOURCE_MAX = 64  # bar_changes.source is varchar(64)


@dataclass
class WriteTotals:
    """Running totals: rows accepted (stored, changed or not) and rows that changed."""

    accepted: int = 0
    written: int = 0
    changes: list[BarChange] = field(default_factory=list)


class BarWriter:
    """Writes frames of (ticker, ts, open … volume) as bars of one timeframe, batch by batch.

    Symbols are created on first sight (with whatever name/exchange/currency columns the
    frame carries) and their ids cached; each `write` is one transaction.
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        timeframe: str,
        *,
        source: str = "",
        recorder: RunRecorder | None = None,
    ) -> None:
        self.conn = conn
        self.recorder = recorder
        self.timeframe = parse_timeframe(timeframe)
        self.source = source[:_SOURCE_MAX]
        self.ids: dict[str, int] = {}
        self.totals = WriteTotals()

    async def write(self, bars: pd.DataFrame, *, rejected: int = 0) -> int:
        """Write one batch in one transaction; returns how many rows changed.

        `rejected` (rows of this batch that failed validation) goes to the job's record in the
        same transaction as the bars.
        """
        if bars.empty and not (rejected and self.recorder):
            return 0
        written = 0
        if not bars.empty:
            await self._resolve_symbols(bars)
        symbol_ids = self._symbol_ids(bars["ticker"])
        values = [bars[c].to_numpy(dtype=np.float64) for c in PRICE_COLUMNS]
        ts = pd.DatetimeIndex(bars["ts"])
        async with self.conn.transaction():
            changes = await upsert_columns(
                self.conn, symbol_ids, self.timeframe, ts, values, source=self.source
            )
            written = sum(c.rows for c in changes)
            if self.recorder is not None:
                await self.recorder.add(written, rejected)
        self.totals.accepted += len(bars)
        self.totals.written += written
        self.totals.changes.extend(changes)
        return written

    def _symbol_ids(self, tickers: pd.Series) -> npt.NDArray[np.int64]:
        if isinstance(tickers.dtype, pd.CategoricalDtype):
            # Looked up once per distinct ticker, then spread by the codes.
            per_category = np.array(
                [self.ids.get(t, -1) for t in tickers.cat.categories], dtype=np.int64
            )
            return per_category[tickers.cat.codes.to_numpy()]
        return np.array([self.ids[t] for t in tickers], dtype=np.int64)

    async def _resolve_symbols(self, bars: pd.DataFrame) -> None:
        tickers = bars["ticker"]
        distinct = (
            tickers.cat.categories if isinstance(tickers.dtype, pd.CategoricalDtype) else None
        )
        if distinct is not None and all(t in self.ids for t in distinct):
            return
        if distinct is not None:
            # The first row of each new ticker, found from the codes (no copy of the batch).
            codes = tickers.cat.codes.to_numpy()
            wanted = np.flatnonzero([t not in self.ids for t in distinct])
            present, first_rows = np.unique(codes, return_index=True)
            firsts = bars.iloc[np.sort(first_rows[np.isin(present, wanted)])]
        else:
            new = bars[~tickers.isin(list(self.ids))]
            firsts = new.drop_duplicates("ticker")
        if firsts.empty:
            return
        infos = [
            SymbolInfo(
                str(row["ticker"]),
                name=str(row.get("name", "") or ""),
                exchange=str(row.get("exchange", "") or ""),
                currency=str(row.get("currency", "") or ""),
                asset_class=str(row.get("asset_class", "") or ""),
                calendar=str(row.get("calendar", "") or ""),
            )
            for row in firsts.to_dict("records")
        ]
        self.ids.update(await upsert_symbols(self.conn, infos))
