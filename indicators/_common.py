"""Shared plumbing: array and parameter checks, and the NaN policy every indicator follows.

NaN policy (what `apply` implements):

* Leading bars where any input is NaN are skipped, as TA-Lib's Python wrapper does: the
  indicator starts at the first bar where every input is a number, and its lookback counts
  from there.
* From the first NaN after that start, every output is NaN ("poisoned"). TA-Lib does the same
  for SMA, EMA, BBANDS, MACD, STOCH (NaN close), ATR (NaN high/low) and OBV (NaN volume): its
  running sums and recursions carry the NaN forward. Elsewhere TA-Lib's result is an artefact:
  NaN comparisons are false, so RSI turns into 0 for ever and ATR (NaN close), STOCH (NaN
  high/low) and OBV (NaN close) skip the bar or go NaN some bars later depending on the data;
  TA-Lib 0.6's WMA resynchronises its running sums and resumes some bars later; STOCH never
  reads its first fastk_period-1 closes. We poison those too, so a missing value never turns
  into a plausible number.
* Indicators that are pointwise in their inputs (ROC) skip leading NaN but are not poisoned:
  a NaN only affects the outputs that read it, exactly like TA-Lib.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

#: Largest window any period parameter accepts. TA-Lib allows 100000; for a service a
#: period of 1000 already means a warm-up of tens of thousands of bars for the recursive ones.
MAX_PERIOD = 1000


def check_int(name: str, value: object, low: int, high: int = MAX_PERIOD) -> int:
    """Return `value` as an int, or raise ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    result = int(value)
    if not low <= result <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {result}")
    return result


def check_float(name: str, value: object, low: float, high: float) -> float:
    """Return `value` as a finite float, or raise ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    result = float(value)
    if not low <= result <= high:  # also rejects NaN
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {result!r}")
    return result


def as_series(*arrays: ArrayLike, names: Sequence[str]) -> list[FloatArray]:
    """Convert inputs to contiguous 1-D float64 arrays of one common length."""
    out: list[FloatArray] = []
    for name, arr in zip(names, arrays, strict=True):
        a = np.ascontiguousarray(arr, dtype=np.float64)
        if a.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
        out.append(a)
    lengths = {len(a) for a in out}
    if len(lengths) > 1:
        detail = ", ".join(f"{n}={len(a)}" for n, a in zip(names, out, strict=True))
        raise ValueError(f"inputs must have the same length, got {detail}")
    return out


def valid_span(arrays: Sequence[FloatArray]) -> tuple[int, int]:
    """First bar where every input is finite, and the first later bar with a NaN or an
    infinity (or n). An infinity counts as a missing value: no price or volume is infinite,
    and the blockwise kernels must never see one (see `_kernels.Smoother`)."""
    n = len(arrays[0])
    # A finite total proves there is no NaN or infinity without allocating a mask (the
    # common case); a total that overflows only costs the exact check below.
    if all(np.isfinite(a.sum()) for a in arrays):
        return 0, n
    bad = np.zeros(n, dtype=bool)
    for a in arrays:
        bad |= ~np.isfinite(a)
    good = np.flatnonzero(~bad)
    if len(good) == 0:
        return n, n
    start = int(good[0])
    later_bad = np.flatnonzero(bad[start:])
    stop = start + int(later_bad[0]) if len(later_bad) else n
    return start, stop


def nans(n: int) -> FloatArray:
    """A float64 array of NaN."""
    return np.full(n, np.nan)


Core = Callable[..., tuple[FloatArray, ...]]


def apply(
    core: Core, arrays: Sequence[FloatArray], *, poison: bool = True, propagates: bool = False
) -> tuple[FloatArray, ...]:
    """Run `core` on the NaN-free span of the inputs and place its outputs in full-length arrays.

    `propagates` says the core's last output is NaN whenever any input but the last bar's is
    NaN (recursions and running sums that read every bar): then the core runs on the raw
    inputs first, and the NaN scan is only needed when that last value is NaN, which saves a
    pass over the inputs in the common case.
    """
    n = len(arrays[0])
    if propagates and n and all(np.isfinite(a[-1]) for a in arrays):
        first = core(*arrays)
        # A NaN or an infinity anywhere makes the last output of such a core non-finite.
        if all(np.isfinite(part[-1]) for part in first):
            return first
    start, stop = valid_span(arrays)
    if not poison and start < n:
        if stop < n:
            # The core reads past a bad bar: it sees NaN there (its gap), never an infinity.
            arrays = [np.where(np.isinf(a), np.nan, a) for a in arrays]
        stop = n
    if start == 0 and stop == n:
        return core(*arrays)
    parts = core(*(a[start:stop] for a in arrays)) if stop > start else None
    results = []
    n_out = len(parts) if parts is not None else len(core(*(a[:0] for a in arrays)))
    for i in range(n_out):
        full = nans(n)
        if parts is not None:
            full[start:stop] = parts[i]
        results.append(full)
    return tuple(results)


#: TA-Lib's TA_EPSILON (src/ta_func/ta_utility.h of TA-Lib 0.6): a sum or a divisor strictly
#: between -EPSILON and EPSILON counts as zero (TA_IS_ZERO), below EPSILON as zero or negative
#: (TA_IS_ZERO_OR_NEG). Absolute, not relative: it matters for prices near 1e-6.
EPSILON = 1e-14


def is_zero(x: FloatArray) -> NDArray[np.bool_]:
    """TA-Lib's TA_IS_ZERO, elementwise."""
    return np.abs(x) < EPSILON


def forward_fill_invalid(values: FloatArray, invalid: NDArray[np.bool_], first: float) -> None:
    """In place: each invalid element takes the last valid value before it (or `first`)."""
    if not invalid.any():
        return
    idx = np.where(invalid, 0, np.arange(len(values)))
    np.maximum.accumulate(idx, out=idx)
    filled = values[idx]
    head = invalid & (idx == 0) & invalid[0]
    filled[head] = first
    values[:] = filled
