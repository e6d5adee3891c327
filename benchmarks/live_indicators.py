"""Live indicators: the cost of one update (a forming bar) against a full recomputation.

    .venv/bin/python benchmarks/live_indicators.py            # 100,000 bars of history
    .venv/bin/python benchmarks/live_indicators.py --bars 20000

For each indicator of the registry at its defaults, with `--bars` bars of history: the CPU time
(time.process_time, best of several repeats) of what graphql_api/live/indicators.py computes
when the newest bar changes (the indicator over its own warm-up window of the kept bars) and of
a recomputation over the whole history (what a client re-querying `Symbol.indicators` from
the first bar would cost), and their ratio, measured in the same run. Indicators whose value
depends on the whole history (OBV, AD, SAR, Supertrend, cumulative VWAP and bands, anchored
VWAP) compute over everything kept in both cases: their ratio is about 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphql_api.live.indicators import _compute, _Tail
from indicators import INDICATORS
from loaders.buckets import NO_SPAN


def _best(fn: object, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()  # type: ignore[operator]
        best = min(best, time.process_time() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = args.bars
    rng = np.random.default_rng(19)
    close = 100.0 + np.cumsum(rng.normal(0.0, 0.2, n))
    start = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    columns = {
        "time": start + np.arange(n, dtype=np.int64) * 60_000_000,
        "open": close + rng.normal(0.0, 0.05, n),
        "high": close + 0.3,
        "low": close - 0.3,
        "close": close,
        "volume": rng.integers(100, 5_000, n).astype(np.float64),
    }
    anchor = datetime.fromtimestamp(int(columns["time"][n // 2]) / 1e6, UTC)
    tail = _Tail(columns, datetime(1970, 1, 1, tzinfo=UTC), True, 0, True, None, None, NO_SPAN)
    print(f"{n:,} bars of history; CPU ms per update, best of {args.repeats}")
    print(f"{'indicator':<16}{'live':>10}{'full':>10}{'full/live':>11}")
    totals = [0.0, 0.0]
    for name, spec in INDICATORS.items():
        params = {"anchor": anchor} if name == "ANCHORED_VWAP" else spec.defaults()
        key = (name, tuple(sorted(spec.validate(params).items())))
        data = {k: v for k, v in columns.items()}
        data["time"] = data["time"] // 1000
        _compute(tail, [key], n - 1)  # compile
        live = _best(lambda key=key: _compute(tail, [key], n - 1), args.repeats)
        full = _best(lambda p=params, s=spec, d=data: s.compute(d, p), args.repeats)
        totals[0] += live
        totals[1] += full
        print(f"{name:<16}{live * 1e3:>10.3f}{full * 1e3:>10.3f}{full / max(live, 1e-9):>11.1f}")
    live, full = totals
    print(f"{'all 52':<16}{live * 1e3:>10.3f}{full * 1e3:>10.3f}{full / live:>11.1f}")


if __name__ == "__main__":
    main()
