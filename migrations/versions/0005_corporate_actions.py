"""Corporate actions (splits, cash dividends), applied to bars at read time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The read path multiplies factors with a running product (core.adjustments): PostgreSQL has
# no product aggregate, and exp(sum(ln(x))) would round where plain multiplication does not.
PRODUCT = """
CREATE AGGREGATE adjustment_product(double precision) (
    SFUNC = float8mul, STYPE = double precision, INITCOND = '1'
)
"""


# Per symbol, the ex-times of the actions applied (kinds, known at as_of) and the running
# products of their factors from the newest back (core.adjustments has the formulas and how
# the read path uses the arrays). PL/pgSQL, so the planner of each bar statement sees one
# opaque call instead of planning this query's scan of every partition of bars.
FACTORS = """
CREATE FUNCTION adjustment_factors(
    sid integer, tf text, kinds text[], as_of date,
    OUT thr timestamptz[], OUT pf double precision[], OUT vf double precision[]
) LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT coalesce(array_agg(e.ex_ts ORDER BY e.ex_ts, e.id), ARRAY[]::timestamptz[]),
           coalesce(array_agg(e.pf ORDER BY e.ex_ts, e.id), ARRAY[]::float8[]) || 1.0::float8,
           coalesce(array_agg(e.vf ORDER BY e.ex_ts, e.id), ARRAY[]::float8[]) || 1.0::float8
    INTO thr, pf, vf
    FROM (
        SELECT f.id, f.ex_ts,
               adjustment_product(f.pf) OVER w AS pf, adjustment_product(f.vf) OVER w AS vf
        FROM (
            SELECT a.id, a.ex_date::timestamp AT TIME ZONE 'UTC' AS ex_ts,
                   -- A split: 1 / ratio. A dividend: 1 - amount / previous close, the
                   -- amount being per share as of the ex-date (after a split that day);
                   -- none without a close before it, or when it would not be positive.
                   CASE WHEN a.kind = 'SPLIT' THEN 1.0 / a.value
                        WHEN 1.0 - a.value * coalesce(s.value, 1.0) / p.close > 0
                        THEN 1.0 - a.value * coalesce(s.value, 1.0) / p.close
                        ELSE 1.0 END AS pf,
                   CASE WHEN a.kind = 'SPLIT' THEN a.value ELSE 1.0 END AS vf
            FROM corporate_actions a
            LEFT JOIN corporate_actions s
                   ON a.kind = 'DIVIDEND' AND s.symbol_id = a.symbol_id AND s.kind = 'SPLIT'
                  AND s.ex_date = a.ex_date
            LEFT JOIN LATERAL (
                SELECT b.close FROM bars b
                WHERE a.kind = 'DIVIDEND' AND b.symbol_id = a.symbol_id AND b.timeframe = tf
                  AND b.ts < a.ex_date::timestamp AT TIME ZONE 'UTC'
                ORDER BY b.ts DESC LIMIT 1
            ) p ON true
            WHERE a.symbol_id = sid AND a.kind = ANY(kinds) AND a.ex_date <= as_of
        ) f
        WINDOW w AS (ORDER BY f.ex_ts DESC, f.id DESC)
    ) e;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "corporate_actions",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ex_date", sa.Date(), nullable=False),
        sa.Column("value", sa.Float(53), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False, server_default="USD"),
        sa.Column("source", sa.String(64), nullable=False, server_default=""),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("symbol_id", "kind", "ex_date", name="corporate_actions_event"),
        sa.CheckConstraint("kind IN ('SPLIT', 'DIVIDEND')", name="corporate_actions_kind_known"),
        sa.CheckConstraint("value > 0", name="corporate_actions_value_positive"),
    )
    op.execute(PRODUCT)
    op.execute(FACTORS)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS adjustment_factors(integer, text, text[], date)")
    op.execute("DROP AGGREGATE IF EXISTS adjustment_product(double precision)")
    op.drop_table("corporate_actions")
