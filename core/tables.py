"""Database tables: the SQLAlchemy metadata that the migrations must match."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

from core.bar import BAR_FIELDS
from core.intervals import Interval

metadata = MetaData()

TIMEFRAME_CODES = tuple(i.value for i in Interval)
_timeframe_list = ", ".join(f"'{code}'" for code in TIMEFRAME_CODES)

symbols = Table(
    "symbols",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticker", String(32), nullable=False, unique=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("exchange", String(32), nullable=False, server_default=""),
    Column("asset_class", String(16), nullable=False, server_default="equity"),
    Column("currency", String(8), nullable=False, server_default="USD"),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    # Exchange calendar (core.calendars): sessions, holidays and early closes come from it.
    Column("calendar", String(32), nullable=False, server_default="24/7"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("ticker <> ''", name="symbols_ticker_not_empty"),
)

# One row per trading day of each calendar in use, written by core.calendars.sync_sessions
# from pandas-market-calendars; the read path joins it to bucket and filter intraday bars.
trading_sessions = Table(
    "trading_sessions",
    metadata,
    Column("calendar", String(32), nullable=False),
    Column("day", Date, nullable=False),
    Column("pre_open", DateTime(timezone=True), nullable=False),
    Column("open", DateTime(timezone=True), nullable=False),
    Column("close", DateTime(timezone=True), nullable=False),
    Column("post_close", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("calendar", "day", name="trading_sessions_pkey"),
)

#: SQLAlchemy type of each core.bar SQL type.
_SQL_TYPES = {"double precision": Float(53)}

# Range-partitioned on time (yearly partitions, created ahead by `ensure_bar_partitions`).
# No foreign key to symbols: it would add a trigger per row to bulk ingest, which already
# resolves symbol ids against `symbols` before it writes.
bars = Table(
    "bars",
    metadata,
    Column("symbol_id", Integer, nullable=False),
    Column("timeframe", String(4), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    # The value columns, from core.bar (a new one still needs its migration).
    *(Column(f.name, _SQL_TYPES[f.sql_type], nullable=False) for f in BAR_FIELDS),
    PrimaryKeyConstraint("symbol_id", "timeframe", "ts", name="bars_pkey"),
    CheckConstraint(f"timeframe IN ({_timeframe_list})", name="bars_timeframe_known"),
    CheckConstraint("open > 0 AND high > 0 AND low > 0 AND close > 0", name="bars_prices_positive"),
    CheckConstraint("high >= open AND high >= close AND high >= low", name="bars_high_is_max"),
    CheckConstraint("low <= open AND low <= close", name="bars_low_is_min"),
    CheckConstraint("volume >= 0", name="bars_volume_non_negative"),
    postgresql_partition_by="RANGE (ts)",
)

# One row per committed write: what changed, for cache invalidation and live updates.
bar_changes = Table(
    "bar_changes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("symbol_id", Integer, nullable=False),
    Column("timeframe", String(4), nullable=False),
    Column("first_ts", DateTime(timezone=True), nullable=False),
    Column("last_ts", DateTime(timezone=True), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("source", String(64), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("bar_changes_symbol_idx", bar_changes.c.symbol_id, bar_changes.c.id)

# Per symbol and stored timeframe: the time range of its bars and a data version (a counter
# bumped by every committed change), maintained by a trigger on bar_changes.
bar_series = Table(
    "bar_series",
    metadata,
    Column("symbol_id", Integer, nullable=False),
    Column("timeframe", String(4), nullable=False),
    Column("first_ts", DateTime(timezone=True), nullable=False),
    Column("last_ts", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("symbol_id", "timeframe", name="bar_series_pkey"),
)

#: Name prefix of the partitions of `bars`; migrations and autogenerate skip them.
BAR_PARTITION_PREFIX = "bars_y"

# Per ingest job (keyed by procrastinate's job id): what it wrote and rejected, its last error.
# rows_written counts rows that changed (inserted or revised) over all attempts, so a re-run
# of the same data reports 0; rows_rejected and error describe the latest attempt.
ingest_runs = Table(
    "ingest_runs",
    metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("task", String(128), nullable=False),
    Column("rows_written", BigInteger, nullable=False, server_default="0"),
    Column("rows_rejected", BigInteger, nullable=False, server_default="0"),
    Column("error", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate filter: bar partitions and the job queue's tables are not in the metadata."""
    if type_ == "table" and name is not None:
        return not (name.startswith(BAR_PARTITION_PREFIX) or name.startswith("procrastinate"))
    return True


# API keys: only a SHA-256 of the secret part is stored (keys are 256-bit random, so a
# slow hash buys nothing); the public prefix finds the row without revealing the key.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("scopes", ARRAY(String(16)), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)


#: Kinds of corporate action the read path knows how to apply (core.adjustments).
ACTION_KINDS = ("SPLIT", "DIVIDEND")
_kind_list = ", ".join(f"'{k}'" for k in ACTION_KINDS)

# Corporate actions, applied at read time (core.adjustments); stored bars stay raw. One
# action per (symbol, kind, ex-date): a provider's or file's correction of the same event is
# an update of that row, so re-ingesting the same actions changes nothing.
# `value` is the split ratio (new shares per old share: 2 for a 2-for-1 split, 0.1 for a
# 1-for-10 reverse split) or the cash dividend per share, in `currency`, as of the ex-date.
corporate_actions = Table(
    "corporate_actions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("symbol_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("ex_date", Date, nullable=False),
    Column("value", Float(53), nullable=False),
    Column("currency", String(8), nullable=False, server_default="USD"),
    Column("source", String(64), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("symbol_id", "kind", "ex_date", name="corporate_actions_event"),
    CheckConstraint(f"kind IN ({_kind_list})", name="corporate_actions_kind_known"),
    CheckConstraint("value > 0", name="corporate_actions_value_positive"),
)
