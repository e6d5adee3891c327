"""Compile every indicator kernel once, filling numba's cache (`python -m indicators.warm`).

The Docker build runs this so that a new container's first indicator requests do not pay
numba's compile time (about 9 s over all kernels, 0.7 s from the cache; issue 19's note).
Anchored indicators get their anchor at the first bar.
"""

from __future__ import annotations

import numpy as np

from indicators.registry import INDICATORS


def main() -> None:
    n = 300
    close = 100.0 + np.cumsum(np.random.default_rng(1).normal(0.0, 1.0, n))
    data = {
        "open": close,
        "high": close + 1.0,
        "low": close - 1.0,
        "close": close,
        "volume": np.full(n, 1_000.0),
        "time": np.arange(n, dtype=np.int64) * 86_400_000_000,
    }
    for spec in INDICATORS.values():
        params: dict[str, object] = {}
        try:
            spec.compute(data, params)
        except (ValueError, TypeError):
            continue  # needs an argument without a default (an anchor): compiled on first use
    print(f"compiled {len(INDICATORS)} indicators")


if __name__ == "__main__":
    main()
