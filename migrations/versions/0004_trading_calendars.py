"""Trading calendars: each symbol's exchange calendar and the sessions the read path joins.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same rules as core.calendars.default_calendar, in SQL, for symbols that exist already
# (a migration must not depend on code that may change after it).
BACKFILL = """
UPDATE symbols SET calendar = CASE
    WHEN upper(exchange) IN ('NASDAQ', 'XNAS') THEN 'XNAS'
    WHEN upper(exchange) IN ('NYSE', 'XNYS', 'ARCA', 'NYSEARCA', 'AMEX', 'NYSEAMERICAN',
                             'BATS', 'IEX', 'OTC') THEN 'XNYS'
    WHEN lower(asset_class) IN ('crypto', 'cryptocurrency') THEN '24/7'
    WHEN lower(asset_class) IN ('fx', 'forex', 'currency') THEN 'FX'
    WHEN lower(asset_class) IN ('equity', 'us_equity', 'etf', 'stock', 'index') THEN 'XNYS'
    ELSE '24/7'
END
"""


def upgrade() -> None:
    op.add_column(
        "symbols",
        sa.Column("calendar", sa.String(32), nullable=False, server_default="24/7"),
    )
    op.execute(BACKFILL)
    op.create_table(
        "trading_sessions",
        sa.Column("calendar", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("pre_open", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.DateTime(timezone=True), nullable=False),
        sa.Column("close", sa.DateTime(timezone=True), nullable=False),
        sa.Column("post_close", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("calendar", "day", name="trading_sessions_pkey"),
    )


def downgrade() -> None:
    op.drop_table("trading_sessions")
    op.drop_column("symbols", "calendar")
