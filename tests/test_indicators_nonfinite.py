"""No indicator looks ahead, even across a non-finite input.

The blockwise smoothing kernels work on 16-bar blocks at once; a NaN or an infinity must not
leak into the values of earlier bars of its block. Every output before a bad bar equals the
output computed on the bars before it alone, the bad bar has no value, and no output is ever
infinite: an infinity is a missing value, like NaN (`_common.valid_span`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from indicators import INDICATORS

N = 200


def inputs(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = np.abs(rng.normal(0, 0.5, n))
    start_ms = 1_709_510_400_000  # 2024-03-04 00:00 UTC: a day boundary inside the data
    return {
        "open": close * (1 + rng.normal(0, 0.002, n)),
        "high": close + spread + 0.5,
        "low": close - spread - 0.5,
        "close": close,
        "volume": rng.integers(100, 10_000, n).astype(np.float64),
        "time": start_ms + np.arange(n, dtype=np.int64) * 60_000 * 10,
    }


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("at", [100, 103, 111, 127])
@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_a_bad_bar_changes_nothing_before_it(name: str, at: int, bad: float) -> None:
    spec = INDICATORS[name]
    data = inputs(N)
    prefix = {k: v[:at].copy() for k, v in data.items()}
    spoiled = {k: v.copy() for k, v in data.items()}
    # TRANGE reads the previous close, not this bar's: spoil what it reads on this bar.
    order = ("high",) if name == "TRANGE" else ("close", "volume", "high")
    field = next(f for f in order if f in spec.inputs)
    spoiled[field][at] = bad
    # Anchored VWAP: anchored on the first bar, so it has values from the start.
    params = {"anchor": datetime(2024, 3, 3, 12, tzinfo=UTC)} if name == "ANCHORED_VWAP" else {}
    whole = spec.compute(spoiled, params)
    before = spec.compute(prefix, params)
    for out in spec.outputs:
        # Equal up to rounding (blocks fall differently on a shorter input), NaN where NaN.
        np.testing.assert_allclose(
            whole[out][:at], before[out], rtol=1e-12, atol=0, err_msg=f"{name}.{out}"
        )
        assert not np.isinf(whole[out]).any(), f"{name}.{out}: a bad input came out infinite"
        assert np.isnan(whole[out][at]), f"{name}.{out} has a value on the bad bar"
