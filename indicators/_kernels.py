"""Vectorised building blocks: windowed reductions, first-order recursions, cumulative sums.

Windowed sums are computed as binary trees (sums of 1, 2, 4, ... values, then the powers of two
that make up the window), not as differences of one long cumulative sum: a cumulative sum grows
with the series and its rounding error grows with it (about 1e-10 relative after a million
points), whereas a tree sum of n values is accurate to about log2(n) ulps wherever it sits.
The work is done in chunks so the temporaries stay in cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

from indicators._common import FloatArray
from indicators._loops import extreme_window

#: Outputs per chunk: large enough to amortise the per-call overhead, small enough for L2/L3.
CHUNK = 65536

BinaryUfunc = Callable[..., FloatArray]


def mean_of(x: FloatArray) -> float:
    """Mean of a short array as a Python float (np.mean costs several times more per call)."""
    return float(x.sum()) / len(x)


def _chunks(m: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, m, CHUNK):
        yield lo, min(m, lo + CHUNK)


def window_sum(
    x: FloatArray, n: int, scale: float = 1.0, out: FloatArray | None = None
) -> FloatArray:
    """Sum of every run of n consecutive values times `scale`; element k covers x[k:k+n]."""
    m = len(x) - n + 1
    if out is None:
        out = np.empty(max(m, 0))
    if m <= 0:
        return out
    bufs = np.empty((2, min(CHUNK, m) + n))
    for lo, hi in _chunks(m):
        mc = hi - lo
        oc = out[lo:hi]
        level: FloatArray = x[lo : hi + n - 1]
        # The first block waits (as a view) for a second one to be added to it straight into
        # `oc`, saving a copy, unless the buffer it lives in is about to be reused.
        pending: FloatArray | None = None
        pending_buf, started = -1, False
        level_buf, width, offset, remaining, which = -1, 1, 0, n, 0
        while True:
            if remaining & 1:
                block = level[offset : offset + mc]
                if started:
                    np.add(oc, block, out=oc)
                elif pending is None:
                    pending, pending_buf = block, level_buf
                else:
                    np.add(pending, block, out=oc)
                    started = True
                offset += width
            remaining >>= 1
            if not remaining:
                break
            if pending is not None and not started and pending_buf == which:
                np.copyto(oc, pending)
                started = True
            size = len(level) - width
            nxt = bufs[which, :size]
            level_buf, which = which, which ^ 1
            np.add(level[:size], level[width:], out=nxt)
            level, width = nxt, width * 2
        if not started:  # n is a power of two: one block, scaled on the way out
            assert pending is not None
            np.multiply(pending, scale, out=oc)
        elif scale != 1.0:
            np.multiply(oc, scale, out=oc)
    return out


def window_extreme(
    x: FloatArray, n: int, op: BinaryUfunc, out: FloatArray | None = None
) -> FloatArray:
    """Running max or min (`op` is np.maximum or np.minimum) of every n consecutive values."""
    m = len(x) - n + 1
    if out is None:
        out = np.empty(max(m, 0))
    if m > 0:
        extreme_window(np.ascontiguousarray(x), n, op is np.maximum, out)
    return out


def window_mean_var(
    x: FloatArray, n: int, mean_out: FloatArray | None = None, var_out: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """Mean and population variance of every n consecutive values (Chan's pairwise update).

    Blocks carry (mean, sum of squared deviations) and are merged with Chan et al.'s formula,
    so no E[x^2] - E[x]^2 cancellation: a flat window gives exactly 0 even at prices of 1e9.
    """
    m = len(x) - n + 1
    if mean_out is None:
        mean_out = np.empty(max(m, 0))
    if var_out is None:
        var_out = np.empty(max(m, 0))
    if m <= 0:
        return mean_out, var_out
    for lo, hi in _chunks(m):
        mc = hi - lo
        mean: FloatArray = x[lo : hi + n - 1]
        m2: FloatArray = np.zeros(len(mean))
        width, offset, remaining = 1, 0, n
        acc_mean: FloatArray | None = None
        acc_m2: FloatArray = np.zeros(0)
        while True:
            if remaining & 1:
                b_mean = mean[offset : offset + mc]
                b_m2 = m2[offset : offset + mc]
                if acc_mean is None:
                    acc_mean, acc_m2 = b_mean.copy(), b_m2.copy()
                else:
                    total = offset + width
                    delta = b_mean - acc_mean
                    acc_mean += delta * (width / total)
                    acc_m2 += b_m2
                    acc_m2 += delta * delta * (offset * width / total)
                offset += width
            remaining >>= 1
            if not remaining:
                break
            delta = mean[width:] - mean[:-width]
            new_mean = mean[:-width] + 0.5 * delta
            new_m2 = m2[:-width] + m2[width:]
            new_m2 += delta * delta * (width / 2.0)
            mean, m2, width = new_mean, new_m2, width * 2
        assert acc_mean is not None
        mean_out[lo:hi] = acc_mean
        np.multiply(acc_m2, 1.0 / n, out=var_out[lo:hi])
    return mean_out, var_out


#: Width of the blocks a recursion is evaluated in (see `Smoother`).
BLOCK = 16

#: lfilter numerator for "the previous input": y[t] = A * y[t-1] + e[t-1].
_LAG = np.array([0.0, 1.0])


#: Rows per matrix product: m * n * k = 1008 * 16 * 16 stays under OpenBLAS's threading
#: threshold (65536 * 4), so BLAS never wakes worker threads (whose spinning after each call
#: cost more CPU than the whole product on a 2-core machine).
_GEMM_ROWS = 1008


class Smoother:
    """Exponential smoothing y[t] = a * y[t-1] + k * x[t] (a = 1 - k), fed chunk by chunk.

    lfilter evaluates the recursion one bar after another at ~5 ns a bar (its inner loop goes
    through memory on every step). Here the bars are cut into blocks of BLOCK, and

    * the value y had before each block follows the same recursion one level up, with
      factor a**BLOCK and the block's own contribution (its last value if y started from 0
      there, one small matrix product for all blocks) as input: one lfilter call over BLOCK
      times fewer points;
    * that value enters the block as an extra input on its first bar (times a / k), and
      y[r] = sum(k * a**(r - s) * x[s], s <= r) within each block is then one matrix product
      (blocks x BLOCK) @ (BLOCK x BLOCK), by BLAS.

    Every coefficient is the exact power, so the result differs from the plain recursion by
    rounding only. A NaN in x reaches every later value (and, through the zeros of the
    triangular matrix, the earlier values of its block: cores run on NaN-free spans, see
    `_common.apply`). With k = 1 (a = 0) the result is x itself. `scale` multiplies the
    output (and the seed) at no cost.
    """

    def __init__(self, k: float, seed: float, scale: float = 1.0) -> None:
        """Start from `seed`, the (unscaled) value on the bar before the first chunk."""
        a = 1.0 - k
        self._k = k * scale
        self._lift = a / self._k  # previous value -> extra input on a block's first bar
        r = np.arange(BLOCK, dtype=np.float64)
        lag = r[None, :] - r[:, None]  # [s, r] -> r - s
        self._within: FloatArray = np.where(lag >= 0, self._k * a ** np.maximum(lag, 0.0), 0.0)
        self._power: FloatArray = a ** (r + 1.0)  # a**width
        self._state: FloatArray = np.array([seed * scale])

    def feed(
        self, x: FloatArray, out: FloatArray | None = None, overwrite_x: bool = False
    ) -> FloatArray:
        """Smoothed values for the next len(x) bars (1-D, contiguous; out must not overlap x).

        x is left untouched unless overwrite_x, which saves a copy.
        """
        m = len(x)
        if out is None:
            out = np.empty(m)
        elif not out.flags.c_contiguous:  # the block views below must not be copies
            raise ValueError("out must be contiguous")
        if self._power[0] == 0.0:
            np.multiply(x, self._k, out=out)
            return out
        full = m - m % BLOCK
        if full:
            self._blocks(x[:full].reshape(-1, BLOCK), out[:full].reshape(-1, BLOCK), overwrite_x)
        if full < m:
            self._blocks(x[full:].reshape(1, -1), out[full:].reshape(1, -1), overwrite_x)
        return out

    def _blocks(self, x: FloatArray, out: FloatArray, overwrite_x: bool) -> None:
        rows, width = x.shape
        within = self._within[:width, :width]
        # What each block would end on from 0 (two columns: never a matrix-vector product,
        # 8 * _GEMM_ROWS rows at a time: one call for a CHUNK, under the threading threshold).
        last = within[:, width - 2 :] if width > 1 else within
        step = 8 * _GEMM_ROWS
        ends = np.concatenate(
            [np.matmul(x[lo : lo + step], last)[:, -1] for lo in range(0, rows, step)]
        )
        den = np.array([1.0, -self._power[width - 1]])
        prev, self._state = lfilter(_LAG, den, ends, zi=self._state)
        lifted = x if overwrite_x else x.copy()
        prev *= self._lift
        lifted[:, 0] += prev
        for lo in range(0, rows, _GEMM_ROWS):
            hi = min(rows, lo + _GEMM_ROWS)
            np.matmul(lifted[lo:hi], within, out=out[lo:hi])


def smooth(
    x: FloatArray, k: float, seed_at: int, seed: float, out: FloatArray | None = None
) -> FloatArray:
    """Exponential smoothing: y[seed_at] = seed, then y += k * (x - y); NaN before seed_at.

    Bars before seed_at are not read (the seed stands for them), so a NaN there only shows in
    the result through the seed: every caller's seed is the mean of those bars.
    """
    n = len(x)
    if out is None:
        out = np.empty(n)
    if seed_at >= n:
        out[:] = np.nan
        return out
    out[:seed_at] = np.nan
    out[seed_at] = seed
    smoother = Smoother(k, seed)
    for lo in range(seed_at + 1, n, CHUNK):
        hi = min(n, lo + CHUNK)
        smoother.feed(x[lo:hi], out[lo:hi])
    return out


def cumsum_blocked(x: FloatArray, out: FloatArray | None = None, block: int = 4096) -> FloatArray:
    """Cumulative sum with block-local partial sums, so rounding grows with the block, not n.

    `out` may be `x` itself.
    """
    n = len(x)
    nb = n // block
    full = nb * block
    if out is None:
        out = np.empty(n)
    if nb:
        grid = out[:full].reshape(nb, block)
        np.cumsum(x[:full].reshape(nb, block), axis=1, out=grid)
        offsets = np.cumsum(grid[:, -1])
        grid[1:] += offsets[:-1, None]
    tail = out[full:]
    np.cumsum(x[full:], out=tail)
    if nb and len(tail):
        tail += out[full - 1]
    return out


def segmented_cumsum(x: FloatArray, starts: NDArray[np.intp]) -> FloatArray:
    """Cumulative sums of x (shape (k, n)) restarting at each index in `starts` (sorted, from 0).

    Subtracting the running total at each restart would lose the small sums that follow a big
    segment (a day with 1 share traded after a year of millions): the running total carries
    rounding of the size of everything before. Instead the previous segment's total is taken
    off the first value of each segment, so the running sum drops back to about zero; what is
    left over there (the residual: accumulated rounding, about eps times the sums so far) is
    read at the segment start and subtracted, which costs only rounding of the residual's own
    size. Meant for non-negative values (volumes, price times volume).
    """
    n = x.shape[1]
    lengths = np.diff(np.append(starts, n))
    totals = np.add.reduceat(x, starts, axis=1)
    y = x.copy()
    y[:, starts[1:]] -= totals[:, :-1]
    np.cumsum(y, axis=1, out=y)
    residual = y[:, starts] - x[:, starts]
    y -= np.repeat(residual, lengths, axis=1)
    return y
