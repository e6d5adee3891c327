"""Corporate actions (splits, cash dividends), applied to bars at read time.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03

`down_revision` is "0003" on the issue 16 branch; 0004 (trading sessions) lands on another
branch, and this one is re-pointed at it when both are merged.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The read path multiplies factors with a running product (core.adjustments): PostgreSQL has
# no product aggregate, and exp(sum(ln(x))) would round where plain multiplication does not.
PRODUCT = """
CREATE AGGREGATE adjustment_product(double precision) (
    SFUNC = float8mul, STYPE = double precision, INITCOND = '1'
)
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


def downgrade() -> None:
    op.execute("DROP AGGREGATE IF EXISTS adjustment_product(double precision)")
    op.drop_table("corporate_actions")
