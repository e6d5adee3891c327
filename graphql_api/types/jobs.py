"""Ingest jobs: their visibility (`ingestJobs`) and the `requestIngest` mutation."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, cast

import strawberry

from core.errors import BadUserInput, Forbidden, Unauthenticated
from core.providers import names_in_words
from graphql_api.auth import Principal, Scope
from graphql_api.context import Info
from graphql_api.cursors import job_cursor, parse_job_cursor
from graphql_api.relay import PageArgs, page_info, probe
from graphql_api.types.common import Interval, PageInfo
from graphql_api.validation import time_range


@strawberry.enum(description="State of a job in the queue.")
class JobStatus(enum.Enum):
    TODO = strawberry.enum_value("todo", description="Waiting for a worker.")
    DOING = strawberry.enum_value("doing", description="Running on a worker.")
    SUCCEEDED = strawberry.enum_value("succeeded", description="Finished without error.")
    FAILED = strawberry.enum_value("failed", description="Gave up after its retries.")
    CANCELLED = strawberry.enum_value("cancelled", description="Cancelled before it ran.")
    ABORTING = strawberry.enum_value("aborting", description="Asked to stop while running.")
    ABORTED = strawberry.enum_value("aborted", description="Stopped while running.")


@strawberry.type(description="One ingest job and what it wrote.")
class IngestJob:
    job_id: strawberry.ID = strawberry.field(description="The job queue's id of the job.")
    task: str = strawberry.field(description="Task name, e.g. ingest:ingest_provider.")
    status: JobStatus = strawberry.field(description="Queue state.")
    attempts: int = strawberry.field(description="How many times a worker started it.")
    provider: str | None = strawberry.field(description="Market-data provider, if any.")
    tickers: list[str] = strawberry.field(description="Tickers the job ingests.")
    timeframe: str | None = strawberry.field(description="Stored timeframe it writes.")
    rows_written: float = strawberry.field(description="Bars inserted or revised, all attempts.")
    rows_rejected: float = strawberry.field(description="Rows rejected by validation.")
    error: str | None = strawberry.field(description="Last error, if any.")
    queued_at: datetime | None = strawberry.field(description="When it was queued.")
    started_at: datetime | None = strawberry.field(description="When its last attempt started.")
    finished_at: datetime | None = strawberry.field(description="When it finished.")


@strawberry.type(description="An ingest job and its cursor.")
class IngestJobEdge:
    node: IngestJob = strawberry.field(description="The job.")
    cursor: str = strawberry.field(description="Opaque cursor for `after`.")


@strawberry.type(description="A page of ingest jobs, newest first.")
class IngestJobConnection:
    edges: list[IngestJobEdge] = strawberry.field(description="Jobs with cursors.")
    page_info: PageInfo = strawberry.field(description="Paging information.")


@strawberry.type(description="The result of requestIngest.")
class RequestIngestPayload:
    job_id: strawberry.ID = strawberry.field(description="Id of the queued job.")


def require_ingest(info: Info) -> Principal:
    """The caller, if it may see or start ingest jobs (`ingest` or `admin` scope)."""
    principal: Principal | None = info.context.extras.get("principal")
    if info.context.settings.allow_anonymous_ingest:
        return principal  # type: ignore[return-value]
    if principal is None or not principal.authenticated:
        raise Unauthenticated("ingest jobs need an API key with the `ingest` scope")
    if not principal.has(Scope.INGEST):
        raise Forbidden("this API key lacks the `ingest` scope")
    return principal


async def ingest_jobs(
    info: Info,
    status: Annotated[
        JobStatus | None, strawberry.argument(description="Only jobs in this state.")
    ] = None,
    first: Annotated[int, strawberry.argument(description="Page size (max 500).")] = 50,
    after: Annotated[str | None, strawberry.argument(description="Cursor to start after.")] = None,
) -> IngestJobConnection:
    """Resolver of Query.ingestJobs."""
    from core.jobs import list_jobs

    require_ingest(info)
    if not 0 <= first <= 500:
        raise BadUserInput(f"`first` must be between 0 and 500, got {first}")
    after_id = parse_job_cursor(after) if after else None
    async with info.context.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        jobs = await list_jobs(
            raw.driver_connection,
            cast(str, status.value) if status else None,
            first + 1,
            after_id,
        )
    jobs, more = probe(jobs, first)
    edges = [
        IngestJobEdge(
            node=IngestJob(
                job_id=strawberry.ID(str(j.id)),
                task=j.task,
                status=JobStatus(j.status),
                attempts=j.attempts,
                provider=j.args.get("provider"),
                tickers=list(
                    j.args.get("tickers") or ([j.args["ticker"]] if j.args.get("ticker") else [])
                ),
                timeframe=j.args.get("timeframe"),
                rows_written=j.rows_written,
                rows_rejected=j.rows_rejected,
                error=j.error,
                queued_at=j.queued_at,
                started_at=j.started_at,
                finished_at=j.finished_at,
            ),
            cursor=job_cursor(j.id),
        )
        for j in jobs
    ]
    # Newest first, paged forward only: `first`/`after` are this connection's arguments.
    page = PageArgs(first, from_end=False, after=after, before=None)
    return IngestJobConnection(
        edges=edges, page_info=page_info(page, more, edges, lambda e: e.cursor)
    )


@strawberry.type(description="Start work: ingest jobs (needs an API key with `ingest`).")
class Mutation:
    @strawberry.mutation(
        description="Queue a provider ingest job; without `from` it is incremental (from the "
        "newest stored bar, with a small overlap for revised bars)."
    )
    async def request_ingest(
        self,
        info: Info,
        provider: Annotated[str, strawberry.argument(description=names_in_words())],
        tickers: Annotated[list[str], strawberry.argument(description="Tickers to ingest.")],
        timeframe: Annotated[
            Interval, strawberry.argument(description="Timeframe to store (default M1).")
        ] = Interval.M1,
        from_: Annotated[
            datetime | None, strawberry.argument(name="from", description="Range start.")
        ] = None,
        to: Annotated[datetime | None, strawberry.argument(description="Range end.")] = None,
    ) -> RequestIngestPayload:
        from core.jobs import enqueue_ingest

        require_ingest(info)
        if len(tickers) > 500:
            raise BadUserInput(f"`tickers` may hold at most 500 tickers, got {len(tickers)}")
        # The read API's checks of `from`/`to`, so both ends of the API word them alike.
        time_range(from_, to)
        try:
            job_id = await enqueue_ingest(
                info.context.settings, provider, tickers, timeframe.core.value, from_, to
            )
        except ValueError as exc:
            raise BadUserInput(str(exc)) from None
        return RequestIngestPayload(job_id=strawberry.ID(str(job_id)))
