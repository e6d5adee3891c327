"""Ingest benchmark: the bulk write path against plain COPY of the same rows, in one run.

    .venv/bin/python benchmarks/ingest.py               # 1,000,000 bars (a few minutes)
    .venv/bin/python benchmarks/ingest.py --rows 50000  # quick run

What it does, on a database of its own (created on the server at `--admin-url`, dropped at
the end) migrated to head:

1. Builds `--rows` deterministic one-minute bars (a seeded random walk) over `--symbols`
   tickers, and their revision (every close and high moved by a cent).
2. Times, in alternating rounds so that load from elsewhere on a shared machine falls on
   all alike, each in batches of `--batch-rows` rows, one transaction per batch:
   - copy (bare): binary COPY into an empty unpartitioned table without keys or checks;
   - copy (keyed): the same into an empty unpartitioned table with the primary key and checks
     of `bars` (what any bulk load into that schema must pay);
   - stage upsert: COPY into a temp table plus one INSERT … ON CONFLICT DO UPDATE per batch,
     into an empty keyed table (the reference method, ~136k rows/s in the field guide);
   - (a) fresh: `upsert_columns` into the empty partitioned `bars` (the append path);
   - stage upsert of the revision over those rows (every row changes), the same method;
   - (b) revised: `upsert_columns` of the revision over the fresh bars (every row changes);
   - re-run: the same revision again (nothing changes, nothing is written).
   Copies use the same numpy-built binary payload as the ingest, so the ratios measure what
   happens in the database, not how tuples are encoded.
3. (c) csv via CLI: the bars written as one CSV, then `market-graphql ingest` in a
   subprocess into an empty `bars` (wall time, process start-up included).
4. (d) CLI vs `\\copy` (`--cli-rounds`, alternating): the same CSV loaded by psql's `\\copy`
   into an empty table with the bars' key (`ticker, time` primary key, NOT NULL, the values
   as float8), and by `market-graphql ingest` into an empty `bars`, each as a subprocess
   (wall time, start-up included), in alternating order; medians and their ratio (issue 17,
   item 5: goal >= 1.0). The CLI runs with its default `--connections` (2) and with 1;
   `--compare-root DIR` adds the CLI of another checkout (e.g. `git archive` of the code
   before a change) to the same alternation. `--only-cli` runs just this part (and (c) is
   then skipped).
5. Prints rows/s (median of the rounds), peak memory, and the ratios against the goals:
   fresh ≥ 0.8 x plain COPY (both ceilings shown: the bare table and the keyed one),
   revisions ≥ the stage upsert of the same revisions (the same work; the stage upsert of
   new rows, which inserts instead of updating, is shown too).

Peak memory: for the in-process steps, the most memory allocated while the step ran
(tracemalloc, above what was held before it); for the CLI, the subprocess's peak resident
set size (the interpreter and its libraries included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import db  # noqa: E402
from core.settings import load_settings  # noqa: E402
from workers.pgcopy import PRICE_COLUMNS, copy_series, split_series  # noqa: E402
from workers.symbols import SymbolInfo, upsert_symbols  # noqa: E402
from workers.upsert import upsert_columns  # noqa: E402

# The field guide's stage upsert when every row exists (136k rows/s when none does).
FIELD_GUIDE_STAGE_UPSERT_EXISTING = 84_000


@dataclass
class Dataset:
    """Bars as columns: one batch per (symbol, slice), the way ingest batches arrive."""

    tickers: list[str]
    codes: np.ndarray  # per row, the index of its ticker
    ts: pd.DatetimeIndex
    values: list[np.ndarray]
    revised: list[np.ndarray]
    symbol_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def rows(self) -> int:
        return len(self.ts)

    def ids_of(self, cut: slice) -> np.ndarray:
        """Database symbol ids of a slice of rows."""
        return self.symbol_ids[self.codes[cut]]

    def batches(
        self, size: int, *, revised: bool = False
    ) -> Iterator[tuple[slice, list[np.ndarray]]]:
        values = self.revised if revised else self.values
        for start in range(0, self.rows, size):
            cut = slice(start, min(start + size, self.rows))
            yield cut, [v[cut] for v in values]


def make_dataset(rows: int, symbols: int) -> Dataset:
    """Deterministic bars: each ticker a seeded random walk of rows/symbols minutes."""
    per = rows // symbols
    rng = np.random.default_rng(20240101)
    ts = pd.date_range("2021-01-04", periods=per, freq="min", tz="UTC")
    ids, cols = [], [[] for _ in PRICE_COLUMNS]
    for n in range(symbols):
        close = 50.0 * (n + 1) * np.exp(np.cumsum(rng.normal(0, 8e-4, per)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        wiggle = np.abs(rng.normal(0, 5e-4, (2, per))) * close
        high = np.maximum(open_, close) + wiggle[0]
        low = np.minimum(open_, close) - wiggle[1]
        volume = rng.integers(100, 5_000, per).astype(float)
        for target, column in zip(cols, (open_, high, low, close, volume), strict=True):
            target.append(np.round(column, 4))
        ids.append(np.full(per, n))
    values = [np.concatenate(c) for c in cols]
    revised = [v.copy() for v in values]
    revised[1] += 0.01  # high
    revised[3] += 0.01  # close (still <= the new high)
    return Dataset(
        tickers=[f"BENCH{n:02d}" for n in range(symbols)],
        codes=np.concatenate(ids),
        ts=pd.DatetimeIndex(np.tile(ts.tz_localize(None).to_numpy(), symbols)).tz_localize("UTC"),
        values=values,
        revised=revised,
    )


class PeakMemory:
    """Peak memory allocated while the block runs (tracemalloc: Python objects and numpy
    arrays, not the C buffers of the database driver), in MB above what was held before."""

    def __enter__(self) -> PeakMemory:
        tracemalloc.start()
        tracemalloc.reset_peak()
        self._start = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_mb = (tracemalloc.get_traced_memory()[1] - self._start) / 2**20
        tracemalloc.stop()


@dataclass
class Result:
    name: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.rows / statistics.median(self.seconds)


async def timed(result: Result, step: Callable[[], Awaitable[None]]) -> None:
    with PeakMemory() as memory:
        started = time.perf_counter()
        await step()
        result.seconds.append(time.perf_counter() - started)
    result.peak_mb.append(memory.peak_mb)


async def copy_into(conn: asyncpg.Connection, data: Dataset, table: str, batch: int) -> None:
    for cut, values in data.batches(batch):
        series = split_series(data.ids_of(cut), "M1", data.ts[cut], values)
        async with conn.transaction():
            await copy_series(conn, table, series)


async def stage_upsert(
    conn: asyncpg.Connection, data: Dataset, table: str, batch: int, revised: bool = False
) -> None:
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bench_stage (LIKE bars INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    for cut, values in data.batches(batch, revised=revised):
        series = split_series(data.ids_of(cut), "M1", data.ts[cut], values)
        async with conn.transaction():
            await copy_series(conn, "bench_stage", series)
            await conn.execute(
                f"INSERT INTO {table} AS b SELECT * FROM bench_stage "
                "ON CONFLICT (symbol_id, timeframe, ts) DO UPDATE SET open = EXCLUDED.open, "
                "high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, "
                "volume = EXCLUDED.volume"
            )


async def ingest(
    conn: asyncpg.Connection, data: Dataset, batch: int, written: list[int], revised: bool
) -> None:
    """The ingest write path over every batch; appends the rows it changed to `written`."""
    total = 0
    for cut, values in data.batches(batch, revised=revised):
        changes = await upsert_columns(conn, data.ids_of(cut), "M1", data.ts[cut], values)
        total += sum(c.rows for c in changes)
    written.append(total)


def run_cli_ingest(
    url: str, path: Path, root: Path = ROOT, extra: tuple[str, ...] = ()
) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stderr of `market-graphql ingest` on the file, with
    the code of the checkout at `root` and the `extra` arguments."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(root)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphql_api", "ingest", str(path), "--timeframe", "M1", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=root,
    )
    assert proc.stderr is not None
    # wait4 gives this child's own peak RSS; read stderr first so the pipe cannot fill.
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"ingest failed: {err.decode()}")
    return seconds, usage.ru_maxrss / 1024, err.decode()


async def main_async(args: argparse.Namespace) -> None:
    admin = args.admin_url
    name = f"mg_bench_ingest_{secrets.token_hex(3)}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        await run(url, args)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(url: str, args: argparse.Namespace) -> None:
    settings = load_settings(database_url=url)
    await asyncio.to_thread(db.upgrade, settings)
    print(f"generating {args.rows:,} bars over {args.symbols} tickers …", flush=True)
    data = make_dataset(args.rows, args.symbols)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        ids = await upsert_symbols(conn, [SymbolInfo(t) for t in data.tickers])
        data.symbol_ids = np.array([ids[t] for t in data.tickers], dtype=np.int64)
        await conn.execute("CREATE TABLE bench_bare (LIKE bars)")
        await conn.execute("CREATE TABLE bench_keyed (LIKE bars INCLUDING ALL)")
        await conn.execute("CREATE TABLE bench_staged (LIKE bars INCLUDING ALL)")
        if args.only_cli:
            results: dict[str, Result] = {}
            csv = None
        else:
            results, csv = await write_path(conn, url, data, args)
        versus = await cli_versus_copy(conn, url, data, args) if args.cli_rounds else None
    finally:
        await conn.close()
    report(results, csv, versus, args)


async def write_path(
    conn: asyncpg.Connection, url: str, data: Dataset, args: argparse.Namespace
) -> tuple[dict[str, Result], Result]:
    """Steps 2 and 3: the write path against COPY, then one CLI ingest of the CSV."""
    rows = data.rows
    results = {
        key: Result(label, rows)
        for key, label in (
            ("bare", "plain COPY, table without keys"),
            ("keyed", "plain COPY, table with bars' key and checks"),
            ("stage", "stage upsert (COPY to temp + ON CONFLICT)"),
            ("stage_revised", "stage upsert, every row revised"),
            ("fresh", "(a) fresh: upsert into bars"),
            ("revised", "(b) revised: every row changes"),
            ("rerun", "    re-run: nothing changes"),
        )
    }
    batch = args.batch_rows
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}/{args.rounds} …", flush=True)
        await conn.execute("TRUNCATE bench_bare, bench_keyed, bench_staged, bars, bar_changes")
        written: list[int] = []
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("bare", partial(copy_into, conn, data, "bench_bare", batch)),
            ("keyed", partial(copy_into, conn, data, "bench_keyed", batch)),
            ("fresh", partial(ingest, conn, data, batch, written, False)),
            ("stage", partial(stage_upsert, conn, data, "bench_staged", batch)),
            ("revised", partial(ingest, conn, data, batch, written, True)),
            ("stage_revised", partial(stage_upsert, conn, data, "bench_staged", batch, True)),
            ("rerun", partial(ingest, conn, data, batch, written, True)),
        ]
        for key, step in steps:
            # Each step starts without the previous one's checkpoint debt.
            await conn.execute("CHECKPOINT")
            await timed(results[key], step)
        assert written == [rows, rows, 0], written
        assert await conn.fetchval("SELECT count(*) FROM bars") == rows

    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(data, Path(tmp) / "bars.csv")
        size_mb = path.stat().st_size / 2**20
        await conn.execute("TRUNCATE bars, bar_changes")
        await conn.execute("CHECKPOINT")
        seconds, cli_peak, stderr = await asyncio.to_thread(run_cli_ingest, url, path)
        assert await conn.fetchval("SELECT count(*) FROM bars") == rows, stderr
    csv = Result(f"(c) CSV via CLI ({size_mb:,.0f} MB file)", rows, [seconds], [cli_peak])
    return results, csv


def write_csv(data: Dataset, path: Path) -> Path:
    """The bars as one CSV file (ticker, time, open … volume), as a user would have them."""
    print("writing the CSV …", flush=True)
    pd.DataFrame(
        {
            "ticker": np.array(data.tickers)[data.codes],
            "time": data.ts,
            **{c: v for c, v in zip(PRICE_COLUMNS, data.values, strict=True)},
        }
    ).to_csv(path, index=False)
    return path


@dataclass
class Versus:
    """(d): `market-graphql ingest` of the CSV against psql's `\\copy` of it, alternating."""

    size_mb: float
    copy: Result
    cli: Result
    single: Result  # the CLI writing over one connection (--connections 1)
    other: Result | None  # the CLI of another checkout (--compare-root), e.g. before a change
    #: Where the time goes, seconds per round: the CLI on a one-bar file (start-up), per
    #: checkout; reading and validating the file in one process, per reader.
    parts: dict[str, list[float]] = field(default_factory=dict)


def run_psql_copy(admin_url: str, database: str, path: Path) -> float:
    """Wall seconds of psql's `\\copy` of the CSV into `bench_csv` (psql's start included)."""
    url = make_url(admin_url).set(database=database)
    command = [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
        "-d",
        database,
        "-c",
        f"\\copy bench_csv FROM '{path}' WITH (FORMAT csv, HEADER true)",
    ]
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = url.password
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    return time.perf_counter() - started


async def cli_versus_copy(
    conn: asyncpg.Connection, url: str, data: Dataset, args: argparse.Namespace
) -> Versus:
    """(d): `\\copy` and the CLI in alternating order, each into an empty table."""
    rows = data.rows
    await conn.execute(
        "CREATE TABLE bench_csv (ticker text NOT NULL, time timestamptz NOT NULL, "
        + ", ".join(f"{c} double precision NOT NULL" for c in PRICE_COLUMNS)
        + ", PRIMARY KEY (ticker, time))"
    )
    database = make_url(url).database or ""
    copy = Result("psql \\copy into a table with the bars' key", rows)
    cli = Result("market-graphql ingest (start-up included)", rows)
    single = Result("  the same, --connections 1", rows)
    roots: dict[str, tuple[Path, Result, tuple[str, ...]]] = {
        "cli": (ROOT, cli, ()),
        "single": (ROOT, single, ("--connections", "1")),
    }
    other = None
    if args.compare_root is not None:
        other = Result(f"  the same, code at {args.compare_root}", rows)
        roots["other"] = (args.compare_root, other, ())
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(data, Path(tmp) / "bars.csv")
        size_mb = path.stat().st_size / 2**20
        for round_ in range(1, args.cli_rounds + 1):
            print(f"\\copy vs CLI, round {round_}/{args.cli_rounds} …", flush=True)
            order = ["copy", *roots]
            shift = (round_ - 1) % len(order)
            for which in order[shift:] + order[:shift]:
                await conn.execute("TRUNCATE bench_csv, bars, bar_changes")
                await conn.execute("CHECKPOINT")
                if which == "copy":
                    seconds = await asyncio.to_thread(run_psql_copy, args.admin_url, database, path)
                    copy.seconds.append(seconds)
                    copy.peak_mb.append(0.0)
                    assert await conn.fetchval("SELECT count(*) FROM bench_csv") == rows
                else:
                    root, result, extra = roots[which]
                    seconds, peak, stderr = await asyncio.to_thread(
                        run_cli_ingest, url, path, root, extra
                    )
                    result.seconds.append(seconds)
                    result.peak_mb.append(peak)
                    assert await conn.fetchval("SELECT count(*) FROM bars") == rows, stderr
        parts = await asyncio.to_thread(time_parts, url, path, args)
    return Versus(size_mb, copy, cli, single, other, parts)


def time_parts(url: str, path: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    """The CLI's start-up (a file of one bar of a known ticker: imports, settings,
    connections, the symbol's look-up) per checkout, and read + validate of the file in this
    process per reader, alternating, `--cli-rounds` times."""
    from workers.files import OhlcvFile
    from workers.validation import validate_chunk

    one_bar = path.with_name("one-bar.csv")
    with path.open() as fh:
        one_bar.write_text(fh.readline() + fh.readline())
    roots = {"start-up, this code": ROOT}
    if args.compare_root is not None:
        roots[f"start-up, code at {args.compare_root}"] = args.compare_root
    parts: dict[str, list[float]] = {}
    for _ in range(args.cli_rounds):
        for label, root in roots.items():
            parts.setdefault(label, []).append(run_cli_ingest(url, one_bar, root)[0])
        for engine in ("arrow", "pandas"):
            started = time.perf_counter()
            file = OhlcvFile(path)
            for chunk in file.chunks(args.batch_rows, engine=engine):
                validate_chunk(chunk.frame, file.columns, chunk.lines, text=chunk.text)
            label = f"read + validate in-process, {engine} reader"
            parts.setdefault(label, []).append(time.perf_counter() - started)
    return parts


def report(
    results: dict[str, Result], csv: Result | None, versus: Versus | None, args: argparse.Namespace
) -> None:
    if results and csv is not None:
        report_write_path(results, csv, args)
    if versus is not None:
        print()
        print(
            f"(d) {args.rows:,} bars as CSV ({versus.size_mb:,.0f} MB), {args.cli_rounds} "
            "alternating round(s), wall time of each process"
        )
        print(f"{'':<48}{'rows/s':>12}{'median s':>10}{'peak MB':>10}  all s")
        shown = [versus.copy, versus.cli, versus.single]
        shown += [versus.other] if versus.other else []
        for result in shown:
            every = " ".join(f"{s:.2f}" for s in result.seconds)
            peak = f"{max(result.peak_mb):>10.0f}" if any(result.peak_mb) else f"{'-':>10}"
            print(
                f"{result.name:<48}{result.rate:>12,.0f}"
                f"{statistics.median(result.seconds):>10.2f}{peak}  {every}"
            )
        ratios = [c / i for c, i in zip(versus.copy.seconds, versus.cli.seconds, strict=True)]
        print(
            f"\nCLI / \\copy (rate, medians):            "
            f"{versus.cli.rate / versus.copy.rate:6.2f}  goal >= 1.0"
        )
        print("per round:                               " + " ".join(f"{r:.2f}" for r in ratios))
        print()
        print("where the time goes (medians, seconds):")
        for label, seconds in versus.parts.items():
            print(f"  {label:<54}{statistics.median(seconds):>8.2f}")
        single = versus.single.rate / versus.copy.rate
        print(f"CLI --connections 1 / \\copy:            {single:6.2f}")
        if versus.other is not None:
            print(
                f"CLI at {args.compare_root} / \\copy:  {versus.other.rate / versus.copy.rate:6.2f}"
            )


def report_write_path(results: dict[str, Result], csv: Result, args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.rows:,} one-minute bars, {args.symbols} tickers, batches of "
        f"{args.batch_rows:,} rows, median of {args.rounds} round(s)"
    )
    print(f"{'':<48}{'rows/s':>12}{'seconds':>10}{'peak MB':>10}")
    for result in [*results.values(), csv]:
        print(
            f"{result.name:<48}{result.rate:>12,.0f}{statistics.median(result.seconds):>10.2f}"
            f"{max(result.peak_mb):>10.0f}"
        )
    rate = {key: result.rate for key, result in results.items()}
    lines = [
        ("fresh / plain COPY (keyed table)", rate["fresh"] / rate["keyed"], "goal >= 0.8"),
        ("fresh / plain COPY (bare table)", rate["fresh"] / rate["bare"], ""),
        (
            "revised / stage upsert of the revisions",
            rate["revised"] / rate["stage_revised"],
            "goal >= 1",
        ),
        ("revised / stage upsert of new rows", rate["revised"] / rate["stage"], ""),
        (
            "revised / field guide's 84k rows/s",
            rate["revised"] / FIELD_GUIDE_STAGE_UPSERT_EXISTING,
            "",
        ),
        ("re-run / stage upsert of new rows", rate["rerun"] / rate["stage"], ""),
        ("CSV via CLI / fresh", csv.rate / rate["fresh"], ""),
    ]
    print()
    for label, ratio, goal in lines:
        print(f"{label + ':':<42}{ratio:>6.2f}  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--cli-rounds",
        type=int,
        default=5,
        help="Rounds of (d), psql's \\copy against the CLI (0: skip it).",
    )
    parser.add_argument(
        "--compare-root",
        type=Path,
        help="In (d), also time the CLI of the checkout at this path (e.g. the code before "
        "a change), in the same alternation.",
    )
    parser.add_argument(
        "--only-cli", action="store_true", help="Only (d): skip the write-path steps and (c)."
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="A superuser URL; the benchmark creates and drops a database of its own there.",
    )
    args = parser.parse_args()
    if args.rows < args.symbols:
        parser.error("--rows must be at least --symbols")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
