"""Symbols, range-partitioned bars, change log, and the partition maintenance function.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMEFRAMES = "'M1', 'M5', 'M15', 'M30', 'H1', 'H4', 'D1', 'W1', 'MN1'"

# Yearly partitions keep the partition count small for queries that span all time (a
# symbol's newest bars) while still pruning by year; creation takes an advisory lock so
# concurrent ingest workers cannot race on CREATE TABLE.
ENSURE_PARTITIONS = """
CREATE FUNCTION ensure_bar_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    y integer;
    created integer := 0;
    part text;
BEGIN
    IF from_ts IS NULL OR to_ts IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('ensure_bar_partitions'));
    FOR y IN extract(year FROM from_ts AT TIME ZONE 'UTC')::int
             .. extract(year FROM to_ts AT TIME ZONE 'UTC')::int LOOP
        part := format('bars_y%s', y);
        IF to_regclass(format('public.%I', part)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF bars FOR VALUES FROM (%L) TO (%L)',
                part,
                make_timestamptz(y, 1, 1, 0, 0, 0, 'UTC'),
                make_timestamptz(y + 1, 1, 1, 0, 0, 0, 'UTC'));
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;
"""


# Every write to bars records a bar_changes row in the same transaction; this trigger folds it
# into bar_series, so readers learn a symbol's stored timeframes, their time range and a data
# version from one small table instead of probing every partition of bars.
TRACK_SERIES = """
CREATE FUNCTION track_bar_series() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bar_series AS s (symbol_id, timeframe, first_ts, last_ts, version, updated_at)
    VALUES (NEW.symbol_id, NEW.timeframe, NEW.first_ts, NEW.last_ts, 1, now())
    ON CONFLICT (symbol_id, timeframe) DO UPDATE SET
        first_ts = least(s.first_ts, EXCLUDED.first_ts),
        last_ts = greatest(s.last_ts, EXCLUDED.last_ts),
        -- A counter, not the change id: ids are handed out before commit, so a later
        -- commit can carry a smaller id; +1 under the row lock orders versions by commit.
        version = s.version + 1,
        updated_at = now();
    RETURN NULL;
END $$
"""
TRACK_SERIES_TRIGGER = """
CREATE TRIGGER bar_changes_track_series AFTER INSERT ON bar_changes
    FOR EACH ROW EXECUTE FUNCTION track_bar_series()
"""


def upgrade() -> None:
    op.create_table(
        "symbols",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticker", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.Text(), nullable=False, server_default=""),
        sa.Column("exchange", sa.String(32), nullable=False, server_default=""),
        sa.Column("asset_class", sa.String(16), nullable=False, server_default="equity"),
        sa.Column("currency", sa.String(8), nullable=False, server_default="USD"),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("ticker <> ''", name="symbols_ticker_not_empty"),
    )
    op.create_table(
        "bars",
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Float(53), nullable=False),
        sa.Column("high", sa.Float(53), nullable=False),
        sa.Column("low", sa.Float(53), nullable=False),
        sa.Column("close", sa.Float(53), nullable=False),
        sa.Column("volume", sa.Float(53), nullable=False),
        sa.PrimaryKeyConstraint("symbol_id", "timeframe", "ts", name="bars_pkey"),
        sa.CheckConstraint(f"timeframe IN ({TIMEFRAMES})", name="bars_timeframe_known"),
        sa.CheckConstraint(
            "open > 0 AND high > 0 AND low > 0 AND close > 0", name="bars_prices_positive"
        ),
        sa.CheckConstraint(
            "high >= open AND high >= close AND high >= low", name="bars_high_is_max"
        ),
        sa.CheckConstraint("low <= open AND low <= close", name="bars_low_is_min"),
        sa.CheckConstraint("volume >= 0", name="bars_volume_non_negative"),
        postgresql_partition_by="RANGE (ts)",
    )
    op.create_table(
        "bar_changes",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("first_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False, server_default=""),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("bar_changes_symbol_idx", "bar_changes", ["symbol_id", "id"])
    op.create_table(
        "bar_series",
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("first_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("symbol_id", "timeframe", name="bar_series_pkey"),
    )
    op.execute(TRACK_SERIES)
    op.execute(TRACK_SERIES_TRIGGER)
    op.execute(ENSURE_PARTITIONS)
    # Enough partitions for the demo data (2000 onwards) and a little ahead; the worker's
    # periodic job keeps creating them ahead of time after that.
    op.execute("SELECT ensure_bar_partitions('2000-01-01Z', '2027-12-31Z')")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ensure_bar_partitions(timestamptz, timestamptz)")
    op.drop_table("bar_series")
    op.execute("DROP TRIGGER IF EXISTS bar_changes_track_series ON bar_changes")
    op.execute("DROP FUNCTION IF EXISTS track_bar_series()")
    op.drop_index("bar_changes_symbol_idx", table_name="bar_changes")
    op.drop_table("bar_changes")
    op.drop_table("bars")  # drops its partitions with it
    op.drop_table("symbols")
