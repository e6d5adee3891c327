"""Command functions for `market-graphql worker`, `ingest` and `export` (registered in
graphql_api.cli)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from core.errors import ConfigError
from core.settings import Settings, load_settings

if TYPE_CHECKING:
    from workers.actions import ActionsReport
    from workers.file_ingest import FileReport, ProgressCallback, RejectWriter
    from workers.files import OhlcvFile

console = Console(stderr=True, soft_wrap=True)

# `ingest` exit statuses for rejected rows, so a scheduler can tell a failed load from a good
# one: click itself exits 1 (a failure) and 2 (a usage error), so these start at 3.
EXIT_SOME_REJECTED = 3
EXIT_ALL_REJECTED = 4


def _settings() -> Settings:
    settings = load_settings()
    if settings.database_url is None:
        raise ConfigError("DATABASE_URL is not set (only `serve` starts an embedded server)")
    return settings


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once (default: WORKER_CONCURRENCY).")
    ] = None,
    queue: Annotated[
        list[str] | None, typer.Option(help="Only take jobs from this queue (repeatable).")
    ] = None,
) -> None:
    """Run a job worker: ingest jobs, periodic refreshes and maintenance, until stopped."""
    settings = _settings()
    asyncio.run(_run_worker(settings, concurrency or settings.worker_concurrency, queue))


async def _run_worker(settings: Settings, concurrency: int, queues: list[str] | None) -> None:
    from procrastinate.app import WorkerOptions

    from core.logging_setup import configure_logging
    from core.metrics import start_worker_server
    from workers.queue import create_app

    configure_logging(settings)  # JSON lines (or console) like the API's
    start_worker_server(settings)  # ingest counters on WORKER_METRICS_PORT, when set
    app = create_app(settings)
    options: WorkerOptions = {
        "concurrency": concurrency,
        "fetch_job_polling_interval": settings.worker_poll_seconds,
        "update_heartbeat_interval": settings.worker_heartbeat_seconds,
        "stalled_worker_timeout": settings.worker_stalled_after_seconds,
        "additional_context": {"settings": settings},
        "install_signal_handlers": True,
    }
    if queues:
        options["queues"] = queues
    console.print(f"worker started (concurrency {concurrency}); Ctrl-C stops it")
    async with app.open_async():
        await app.run_worker_async(**options)


def ingest(
    files: Annotated[list[Path], typer.Argument(help="CSV (optionally .gz) or Parquet files.")],
    timeframe: Annotated[str, typer.Option(help="Interval of the bars: M1, M5 … D1, W1, MN1.")],
    ticker: Annotated[
        str | None,
        typer.Option(help="Ticker of every row (overrides a ticker/symbol column)."),
    ] = None,
    tz: Annotated[str, typer.Option(help="Time zone of times written without an offset.")] = "UTC",
    reject_file: Annotated[
        Path | None, typer.Option(help="Write rejected rows (line, reason, values) here.")
    ] = None,
    batch_rows: Annotated[
        int | None, typer.Option(help="Rows per transaction (default: INGEST_BATCH_ROWS).")
    ] = None,
    connections: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="Database connections writing at once (a local ingest): batches of "
            "different tickers go in parallel, each series still in file order.",
        ),
    ] = 2,
    enqueue: Annotated[
        bool,
        typer.Option(
            "--enqueue",
            help="Upload each file into the database and queue a job for any worker "
            "(on any host) instead of ingesting here; prints the job ids.",
        ),
    ] = False,
) -> None:
    """Ingest OHLCV files: every row validated, good rows written, rejects reported.

    With --enqueue the files are checked (readable OHLCV tables), uploaded in chunks as
    PostgreSQL large objects and queued as `ingest:ingest_upload` jobs; a worker ingests
    each one, and `ingestJobs` (GraphQL) shows how it went.

    Exit status, counted over the rows of all FILES:

    0  every row accepted (also a file with a header and no rows: nothing was refused)
    1  the load failed: a file is not an OHLCV table, or the database failed
    2  usage or configuration error
    3  some rows rejected; the others were written
    4  every row rejected; nothing written
    """
    # Imported here: pandas and numpy would slow down every other command's start.
    from core.intervals import parse_timeframe
    from workers.file_ingest import RejectWriter, open_files
    from workers.validation import NotOhlcvError, check_timezone

    settings = _settings()
    try:
        check_timezone(tz)
        timeframe = parse_timeframe(timeframe)
        opened = open_files(files, ticker=ticker)
    except FileNotFoundError as exc:
        raise _fail(f"no such file: {exc.filename}") from None
    except (NotOhlcvError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if enqueue:
        if reject_file is not None or batch_rows is not None:
            raise _fail("--reject-file and --batch-rows apply to a local ingest, not --enqueue")
        _enqueue(settings, [f.path for f in opened], timeframe, tz, ticker)
        return
    rejects = RejectWriter(reject_file) if reject_file is not None else None
    try:
        reports = asyncio.run(
            _ingest(settings, opened, timeframe, tz, ticker, batch_rows, rejects, connections)
        )
    finally:
        if rejects is not None:
            rejects.close()
    for report in reports:
        _print_report(report)
    if reject_file is not None and any(r.rows_rejected for r in reports):
        console.print(f"rejected rows written to {reject_file}")
    status = ingest_exit_status(reports)
    if status != 0:
        read = sum(r.rows_read for r in reports)
        rejected = sum(r.rows_rejected for r in reports)
        if status == EXIT_ALL_REJECTED:
            console.print(
                f"[red]error:[/] every row was rejected ({rejected:,}); nothing written",
                highlight=False,
            )
        else:
            console.print(
                f"[yellow]warning:[/] {rejected:,} of {read:,} rows rejected; "
                f"the other {read - rejected:,} accepted",
                highlight=False,
            )
        raise typer.Exit(status)


def actions(
    files: Annotated[
        list[Path], typer.Argument(help="CSV (optionally .gz) or Parquet files of actions.")
    ],
    reject_file: Annotated[
        Path | None, typer.Option(help="Write rejected rows (line, reason, values) here.")
    ] = None,
) -> None:
    """Ingest corporate actions (splits, cash dividends): every row validated, good rows
    upserted on (ticker, kind, ex-date), rejects reported; exit statuses as for `ingest`.

    Columns: ticker, kind (split | dividend), ex_date, ratio (splits: new shares per old,
    or to:from like 3:2) or amount (dividends: cash per share), optional currency.
    """
    from workers.actions import NotActionsError, read_actions_file

    settings = _settings()
    for path in files:  # every file is checked before anything is written
        try:
            read_actions_file(path)
        except FileNotFoundError as exc:
            raise _fail(f"no such file: {exc.filename}") from None
        except (NotActionsError, ValueError) as exc:
            raise _fail(str(exc)) from None
    if reject_file is not None:
        reject_file.write_text("")
    reports = asyncio.run(_ingest_actions(settings, files, reject_file))
    for report in reports:
        console.print(
            f"{report.path}: {report.rows_read:,} actions read, {report.rows_accepted:,} "
            f"accepted ({report.rows_written:,} new or changed), {report.rows_rejected:,} "
            f"rejected; {len(report.changes)} series re-versioned",
            highlight=False,
        )
        for line, reason in report.examples[:10]:
            console.print(f"  line {line}: {reason}", highlight=False)
    status = ingest_exit_status(reports)
    if status != 0:
        raise typer.Exit(status)


async def _ingest_actions(
    settings: Settings, files: list[Path], reject_file: Path | None
) -> list[ActionsReport]:
    import asyncpg

    from workers.actions import ingest_actions_file

    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return [await ingest_actions_file(conn, p, rejects=reject_file) for p in files]
    finally:
        await conn.close()


def _enqueue(
    settings: Settings, paths: list[Path], timeframe: str, tz: str, ticker: str | None
) -> None:
    from workers.uploads import enqueue_files

    queued = asyncio.run(enqueue_files(settings, paths, timeframe=timeframe, tz=tz, ticker=ticker))
    for item in queued:
        console.print(
            f"{item.path}: {item.size:,} bytes uploaded, job {item.job_id} queued",
            highlight=False,
        )
        print(item.job_id)  # stdout: the job ids alone, for scripts


def ingest_exit_status(reports: Sequence[FileReport | ActionsReport]) -> int:
    """`ingest`'s exit status for these reports: 0, EXIT_SOME_REJECTED or EXIT_ALL_REJECTED."""
    rejected = sum(r.rows_rejected for r in reports)
    if rejected == 0:
        # Also when no rows were read: an empty delta (a holiday) is a normal day for a feed,
        # and a file without even a header already fails (exit 1) as not a table.
        return 0
    accepted = sum(r.rows_accepted for r in reports)
    return EXIT_ALL_REJECTED if accepted == 0 else EXIT_SOME_REJECTED


async def _ingest(
    settings: Settings,
    opened: list[OhlcvFile],
    timeframe: str,
    tz: str,
    ticker: str | None,
    batch_rows: int | None,
    rejects: RejectWriter | None,
    connections: int = 1,
) -> list[FileReport]:
    import asyncpg

    from workers.file_ingest import ingest_file

    conn, *more = await asyncio.gather(
        *(asyncpg.connect(settings.asyncpg_dsn) for _ in range(connections))
    )
    reports = []
    try:
        for file in opened:
            with _progress(file.path.name) as on_progress:
                reports.append(
                    await ingest_file(
                        conn,
                        file,
                        timeframe=timeframe,
                        tz=tz,
                        ticker=ticker,
                        batch_rows=batch_rows or settings.ingest_batch_rows,
                        rejects=rejects,
                        on_progress=on_progress,
                        more_connections=more,
                    )
                )
    finally:
        for c in (conn, *more):
            await c.close()
    return reports


@contextmanager
def _progress(label: str) -> Iterator[ProgressCallback | None]:
    """A rich progress bar with rows/s on a terminal; nothing when output is captured (CI)."""
    if not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TextColumn("{task.fields[rate]:>10,.0f} rows/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=None, rows=0, rate=0.0)

        def update(position: int, size: int, rows: int) -> None:
            elapsed = progress.tasks[0].elapsed or 0.0
            rate = rows / elapsed if elapsed > 0 else 0.0
            progress.update(task, completed=position, total=size, rows=rows, rate=rate)

        yield update


def _print_report(report: FileReport) -> None:
    rate = report.rows_read / report.seconds if report.seconds > 0 else 0.0
    console.print(
        f"{report.path}: {report.rows_read:,} rows read, {report.rows_accepted:,} accepted "
        f"({report.rows_written:,} new or revised), {report.rows_rejected:,} rejected "
        f"in {report.seconds:.1f} s ({rate:,.0f} rows/s)",
        highlight=False,
    )
    for reason, count in report.reasons.most_common(10):
        console.print(f"  {count:>10,}  {reason}", highlight=False)
    for line, reason in report.examples[:10]:
        console.print(f"  line {line}: {reason}", highlight=False)


def _parse_when(value: str | None) -> datetime | None:
    if value is None:
        return None
    when = datetime.fromisoformat(value)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def export(
    ticker: Annotated[str, typer.Argument(help="The symbol's ticker.")],
    timeframe: Annotated[str, typer.Option(help="Interval of the stored bars.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV file (default: stdout).")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="First bar time (ISO).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last bar time (ISO).")] = None,
) -> None:
    """Export a series' stored bars as CSV (the format `ingest` reads back)."""
    import asyncpg

    from workers.export import export_bars

    settings = _settings()

    async def run() -> int:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            return await export_bars(
                conn,
                ticker,
                timeframe,
                output if output is not None else sys.stdout.buffer,
                start=_parse_when(start),
                end=_parse_when(end),
            )
        finally:
            await conn.close()

    try:
        rows = asyncio.run(run())
    except (LookupError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if output is not None:
        console.print(f"{rows:,} bars written to {output}")
