"""Job queue: procrastinate's schema (from the installed package) and the ingest_runs table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Functions are dropped by looking them up, so the downgrade keeps working when a newer
# procrastinate adds or renames functions (its schema names them procrastinate_*).
DROP_PROCRASTINATE_FUNCTIONS = r"""
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', fn);
    END LOOP;
END $$;
"""


def _procrastinate_schema() -> str:
    from procrastinate.schema import SchemaManager

    return SchemaManager.get_schema()


def _execute_script(sql: str) -> None:
    """Run a multi-statement SQL script inside the migration's transaction."""
    if context.is_offline_mode():
        op.execute(sql)
        return
    bind = op.get_bind()
    # The first statement through SQLAlchemy opens the migration's transaction (asyncpg's
    # adapter begins lazily), so the raw script below runs inside it; the lock also keeps two
    # deployments migrating at once from interleaving.
    op.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('procrastinate_schema'))"))
    driver = bind.connection.driver_connection
    if bind.dialect.driver == "asyncpg":
        from sqlalchemy.util import await_only

        # asyncpg prepares every statement SQLAlchemy sends, and a prepared statement holds one
        # command; its own execute() without arguments takes a whole script.
        await_only(driver.execute(sql))  # type: ignore[union-attr]
    else:
        cursor = driver.cursor()  # type: ignore[union-attr]
        cursor.execute(sql)  # no parameters: psycopg leaves % alone
        cursor.close()


def upgrade() -> None:
    _execute_script(_procrastinate_schema())
    op.create_table(
        "ingest_runs",
        sa.Column("job_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("task", sa.String(128), nullable=False),
        sa.Column("rows_written", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("ingest_runs")
    op.execute(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, "
        "procrastinate_jobs, procrastinate_workers CASCADE"
    )
    op.execute(DROP_PROCRASTINATE_FUNCTIONS)
    op.execute(
        "DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type, "
        "procrastinate_job_status CASCADE"
    )
