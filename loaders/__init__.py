"""DataLoaders: each batch function turns many keys into one SQL statement."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from core.cache import FieldCache
from loaders.actions import CorporateActionsLoader
from loaders.bars import BarCountLoader, BarPageLoader, BucketCountLoader, SeriesLoader
from loaders.indicators import IndicatorLoader
from loaders.symbols import SymbolByIdLoader, SymbolByTickerLoader


@dataclass
class Loaders:
    """The loaders of one request (built per request: aiodataloader binds to the running loop)."""

    symbol_by_ticker: SymbolByTickerLoader
    symbol_by_id: SymbolByIdLoader
    bar_page: BarPageLoader
    bar_count: BarCountLoader
    series: SeriesLoader
    bucket_count: BucketCountLoader
    indicators: IndicatorLoader
    corporate_actions: CorporateActionsLoader

    @classmethod
    def create(cls, engine: AsyncEngine, cache: FieldCache | None = None) -> Loaders:
        """Fresh loaders for one request (sharing the process's field cache)."""
        return cls(
            symbol_by_ticker=SymbolByTickerLoader(engine),
            symbol_by_id=SymbolByIdLoader(engine),
            bar_page=BarPageLoader(engine, cache),
            bar_count=BarCountLoader(engine),
            series=SeriesLoader(engine, cache),
            bucket_count=BucketCountLoader(engine),
            indicators=IndicatorLoader(engine),
            corporate_actions=CorporateActionsLoader(engine),
        )
