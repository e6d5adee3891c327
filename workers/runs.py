"""Recording what each ingest job did (`ingest_runs`): rows written and rejected, last error."""

from __future__ import annotations

import asyncpg

_ERROR_MAX = 2_000


class RunRecorder:
    """Keeps a job's `ingest_runs` row current.

    `add` runs inside each batch's transaction (see workers.writer), so the counts match
    what committed even when the worker is killed between two batches; `start` and `fail`
    run outside any transaction and commit on their own.
    """

    def __init__(self, conn: asyncpg.Connection, job_id: int, task: str) -> None:
        self.conn = conn
        self.job_id = job_id
        self.task = task

    async def start(self) -> None:
        """Begin an attempt: rejects and error describe the latest attempt only.

        Written rows add up over attempts: a retry re-writes nothing that already landed.
        """
        await self.conn.execute(
            """
            INSERT INTO ingest_runs (job_id, task) VALUES ($1, $2)
            ON CONFLICT (job_id) DO UPDATE
                SET rows_rejected = 0, error = NULL, updated_at = now()
            """,
            self.job_id,
            self.task,
        )

    async def add(self, written: int, rejected: int) -> None:
        """Count one committed batch."""
        if not written and not rejected:
            return
        await self.conn.execute(
            "UPDATE ingest_runs SET rows_written = rows_written + $2, "
            "rows_rejected = rows_rejected + $3, updated_at = now() WHERE job_id = $1",
            self.job_id,
            written,
            rejected,
        )

    async def fail(self, error: BaseException) -> None:
        """Record the error that ended this attempt."""
        text = f"{type(error).__name__}: {error}"[:_ERROR_MAX]
        await self.conn.execute(
            "UPDATE ingest_runs SET error = $2, updated_at = now() WHERE job_id = $1",
            self.job_id,
            text,
        )
