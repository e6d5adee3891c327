"""Recursions that no array operation expresses, compiled with numba.

Each one is a state machine or a recursion whose coefficient changes every bar (Parabolic SAR,
Supertrend's ratcheting bands, KAMA's adaptive factor): numpy would evaluate them one Python
step per bar, hundreds of times slower than TA-Lib's C at 1,000,000 bars
(benchmarks/indicators.py measures the compiled versions). Everything around them stays numpy.
Functions are compiled on first use and cached on disk next to this file when it is writable.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from indicators._common import FloatArray


@njit(cache=True, nogil=True)
def parabolic_sar(
    high: FloatArray, low: FloatArray, acceleration: float, maximum: float
) -> FloatArray:
    """Wilder's Parabolic SAR stepped as TA-Lib's ta_SAR.c steps it (output from bar 1)."""
    n = len(high)
    out = np.empty(n)
    out[:] = np.nan
    if n < 2:
        return out
    if acceleration > maximum:
        acceleration = maximum
    af = acceleration
    # Direction from the -DM of the first two bars: short when the low fell more than the
    # high rose.
    diff_m = low[0] - low[1]
    diff_p = high[1] - high[0]
    is_long = not (diff_m > 0 and diff_p < diff_m)
    if is_long:
        ep = high[1]
        sar = low[0]
    else:
        ep = low[1]
        sar = high[0]
    new_low = low[1]
    new_high = high[1]
    for t in range(1, n):
        prev_low = new_low
        prev_high = new_high
        new_low = low[t]
        new_high = high[t]
        if is_long:
            if new_low <= sar:
                is_long = False
                sar = max(ep, prev_high, new_high)
                out[t] = sar
                af = acceleration
                ep = new_low
                sar = sar + af * (ep - sar)
                sar = max(sar, prev_high, new_high)
            else:
                out[t] = sar
                if new_high > ep:
                    ep = new_high
                    af = min(af + acceleration, maximum)
                sar = sar + af * (ep - sar)
                sar = min(sar, prev_low, new_low)
        elif new_high >= sar:
            is_long = True
            sar = min(ep, prev_low, new_low)
            out[t] = sar
            af = acceleration
            ep = new_high
            sar = sar + af * (ep - sar)
            sar = min(sar, prev_low, new_low)
        else:
            out[t] = sar
            if new_low < ep:
                ep = new_low
                af = min(af + acceleration, maximum)
            sar = sar + af * (ep - sar)
            sar = max(sar, prev_high, new_high)
    return out


@njit(cache=True, nogil=True)
def supertrend_bands(
    close: FloatArray, upper: FloatArray, lower: FloatArray, start: int
) -> tuple[FloatArray, FloatArray]:
    """Supertrend line and direction (+1 up, -1 down) from the basic bands, from `start` on.

    The ratchet (see `indicators.channels.supertrend`): the upper band only falls, and the
    lower band only rises, while the previous close stays inside them; a downtrend turns up
    when the close ends above this bar's final upper band, an uptrend down when it ends below
    the final lower band.
    """
    n = len(close)
    line = np.empty(n)
    direction = np.empty(n)
    line[:] = np.nan
    direction[:] = np.nan
    if start >= n:
        return line, direction
    fu = upper[start]
    fl = lower[start]
    trend = -1.0  # the first bar is a downtrend: the reference starts there
    line[start] = fu
    direction[start] = trend
    for t in range(start + 1, n):
        prev_close = close[t - 1]
        upper_t = upper[t] if (upper[t] < fu or prev_close > fu) else fu
        lower_t = lower[t] if (lower[t] > fl or prev_close < fl) else fl
        if trend < 0:
            trend = 1.0 if close[t] > upper_t else -1.0
        else:
            trend = -1.0 if close[t] < lower_t else 1.0
        fu = upper_t
        fl = lower_t
        line[t] = fl if trend > 0 else fu
        direction[t] = trend
    return line, direction


@njit(cache=True, nogil=True)
def wilder_skipping(x: FloatArray, valid: np.ndarray, n: int, seed_at: int) -> FloatArray:
    """TA-Lib ADX's smoothing of DX: the seed is the mean of x[seed_at-n+1 .. seed_at] (invalid
    values count as 0), then y = (y (n-1) + x) / n on valid bars and y unchanged on the others.
    """
    m = len(x)
    out = np.empty(m)
    out[:] = np.nan
    if seed_at >= m:
        return out
    total = 0.0
    for t in range(seed_at - n + 1, seed_at + 1):
        if valid[t]:
            total += x[t]
    y = total / n
    out[seed_at] = y
    for t in range(seed_at + 1, m):
        if valid[t]:
            y = (y * (n - 1) + x[t]) / n
        out[t] = y
    return out


#: Running window sums are summed afresh every RESYNC bars, so their rounding error stays that
#: of at most RESYNC updates however long the series (the weighted sum is about n^2/2 times the
#: prices, so each update's rounding is that large: 64 keeps a WMA-based APO on volatile data
#: inside the 1e-9 tolerance of tests/test_indicators_catalogue.py's warm-up test).
RESYNC = 64


@njit(cache=True, nogil=True)
def weighted_window(x: FloatArray, n: int, scale: float, out: FloatArray) -> None:
    """out[k] = scale * sum((u + 1) * x[k + u], u < n), for every k (len(out) = len(x) - n + 1).

    Running sums as TA-Lib's WMA keeps them (plain sum S and weighted sum T; the next window
    adds n * x_new to T and takes S off it), summed afresh every RESYNC windows.
    """
    m = len(x) - n + 1
    s = 0.0
    t = 0.0
    for k in range(m):
        if k % RESYNC == 0:
            s = 0.0
            t = 0.0
            for u in range(n):
                v = x[k + u]
                s += v
                t += (u + 1) * v
        else:
            new = x[k + n - 1]
            t += n * new - s
            s += new - x[k - 1]
        out[k] = t * scale


@njit(cache=True, nogil=True, inline="always")
def natr_of(atr: float, close: float) -> float:
    return atr / close * 100.0 if not (-1e-14 < close < 1e-14) else 0.0


@njit(cache=True, nogil=True)
def wilder_true_range(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    n: int,
    out: FloatArray,
    percent: bool = False,
) -> None:
    """TA-Lib's ATR: the mean true range of bars 1..n at bar n, then (prev (n-1) + tr) / n;
    with `percent`, NATR: 100 ATR / close (0 where the close is "zero")."""
    m = len(close)
    total = 0.0
    for t in range(1, n + 1):
        pc = close[t - 1]
        total += max(high[t] - low[t], abs(high[t] - pc), abs(low[t] - pc))
    y = total / n
    out[n] = y
    if percent:
        out[n] = natr_of(y, close[n])
    # (y (n-1) + tr) / n with the division taken out of the loop-carried chain (a divide's
    # latency would set the pace); the results differ from TA-Lib's by rounding only.
    keep = (n - 1) / n
    k = 1.0 / n
    for t in range(n + 1, m):
        pc = close[t - 1]
        tr = max(high[t] - low[t], abs(high[t] - pc), abs(low[t] - pc))
        y = y * keep + tr * k
        out[t] = natr_of(y, close[t]) if percent else y


@njit(cache=True, nogil=True)
def ema_chain(x: FloatArray, n: int, coef: FloatArray, rate: bool = False) -> FloatArray:
    """sum(coef[i] * E_i) where E_0 = EMA(x, n), E_i = EMA(E_{i-1}, n), each seeded with the
    mean of its input's first n values (TA-Lib's DEMA, TEMA, T3, TRIX chains), in one pass.
    NaN until the deepest EMA has a value (bar depth * (n - 1)). With `rate`, the one-bar
    rate of change of that sum in percent instead (TRIX; 0 on a zero base), from one bar
    later."""
    m = len(x)
    depth = len(coef)
    out = np.empty(m)
    out[:] = np.nan
    k = 2.0 / (n + 1)
    e = np.zeros(depth)
    s = np.zeros(depth)
    last = depth * (n - 1)
    prev = 0.0
    for t in range(m):
        v = x[t]
        total = 0.0
        for i in range(depth):
            start = i * (n - 1)
            if t < start:
                break
            seed_at = start + n - 1
            if t < seed_at:
                s[i] += v
                break
            if t == seed_at:
                s[i] += v
                e[i] = s[i] / n
            else:
                e[i] = (v - e[i]) * k + e[i]  # TA-Lib's operation order
            v = e[i]
            total += coef[i] * v
        if t >= last:
            if not rate:
                out[t] = total
            elif t > last:
                out[t] = (total / prev - 1.0) * 100.0 if prev != 0.0 else 0.0
            prev = total
    return out


@njit(cache=True, nogil=True)
def extreme_window(x: FloatArray, n: int, highest: bool, out: FloatArray) -> None:
    """out[k] = max (or min) of x[k : k + n]: the extreme's index is kept and the window is
    rescanned only when that index leaves it (TA-Lib's MAX/MIN/WILLR/AROON scheme). Exact."""
    m = len(x) - n + 1
    idx = -1
    best = 0.0
    for k in range(m):
        end = k + n - 1
        if idx < k:
            idx = k
            best = x[k]
            for j in range(k + 1, end + 1):
                v = x[j]
                if (v >= best) if highest else (v <= best):
                    idx = j
                    best = v
        else:
            v = x[end]
            if (v >= best) if highest else (v <= best):
                idx = end
                best = v
        out[k] = best


@njit(cache=True, nogil=True)
def extreme_age(x: FloatArray, n: int, highest: bool, out: FloatArray) -> None:
    """Bars since the latest max (or min) of each window of n + 1 bars ending at bar k + n,
    ties going to the latest bar, as TA-Lib's AROON finds them."""
    m = len(x) - n
    idx = -1
    best = 0.0
    for k in range(m):
        end = k + n
        if idx < k:
            idx = k
            best = x[k]
            for j in range(k + 1, end + 1):
                v = x[j]
                if (v >= best) if highest else (v <= best):
                    idx = j
                    best = v
        else:
            v = x[end]
            if (v >= best) if highest else (v <= best):
                idx = end
                best = v
        out[k] = end - idx


@njit(cache=True, nogil=True)
def true_range(high: FloatArray, low: FloatArray, close: FloatArray, out: FloatArray) -> None:
    """out[t] = TA-Lib's true range of bar t (t >= 1)."""
    for t in range(1, len(close)):
        pc = close[t - 1]
        out[t] = max(high[t] - low[t], abs(high[t] - pc), abs(low[t] - pc))


@njit(cache=True, nogil=True)
def linear_fit(x: FloatArray, n: int, what: int, out: FloatArray) -> None:
    """Least-squares line through each window of n values (positions 0..n-1, oldest first):
    out[k] = its end point (what = 0) or its slope (what = 1). The sums are running sums of
    x minus the window's first value at the last resynchronisation, summed afresh every
    RESYNC windows (see `weighted_window`)."""
    m = len(x) - n + 1
    sum_u = n * (n - 1) / 2.0
    sum_uu = n * (n - 1) * (2 * n - 1) / 6.0
    den = n * sum_uu - sum_u * sum_u
    s = 0.0
    t = 0.0
    ref = 0.0
    for k in range(m):
        if k % RESYNC == 0:
            ref = x[k]
            s = 0.0
            t = 0.0
            for u in range(n):
                v = x[k + u] - ref
                s += v
                t += u * v
        else:
            new = x[k + n - 1] - ref
            old = x[k - 1] - ref
            s_prev = s
            s += new - old
            # Every remaining value moves one position older: T - (S_prev - old) + (n-1) new.
            t += (n - 1) * new - (s_prev - old)
        slope = (n * t - sum_u * s) / den
        if what == 1:
            out[k] = slope
        else:
            out[k] = (s - slope * sum_u) / n + slope * (n - 1) + ref


@njit(cache=True, nogil=True)
def chaikin(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    fast: int,
    slow: int,
    oscillator: bool,
    out: FloatArray,
) -> None:
    """TA-Lib's AD line (oscillator False) or ADOSC (fast EMA - slow EMA of it, both seeded
    with the first A/D value; values from bar max(fast, slow) - 1). The running A/D sum is
    kept as a base plus a block-local part restarted every 4096 bars, so its rounding grows
    with the block, not the series (as `_kernels.cumsum_blocked`)."""
    m = len(close)
    base = 0.0
    local = 0.0
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    ef = 0.0
    es = 0.0
    first = max(fast, slow) - 1
    for t in range(m):
        span = high[t] - low[t]
        if span > 0.0:
            local += ((close[t] - low[t]) - (high[t] - close[t])) / span * volume[t]
        ad = base + local
        if t % 4096 == 4095:
            base = ad
            local = 0.0
        if not oscillator:
            out[t] = ad
            continue
        if t == 0:
            ef = ad
            es = ad
        else:
            ef = (ad - ef) * kf + ef
            es = (ad - es) * ks + es
        out[t] = ef - es if t >= first else np.nan


@njit(cache=True, nogil=True)
def ultimate(
    high: FloatArray, low: FloatArray, close: FloatArray, p1: int, p2: int, p3: int, out: FloatArray
) -> None:
    """TA-Lib's ULTOSC with sorted periods p1 <= p2 <= p3 (weights 4, 2, 1): running sums of
    buying pressure and true range over each period, summed afresh every RESYNC bars."""
    m = len(close)
    periods = (p1, p2, p3)
    weights = (4.0, 2.0, 1.0)
    bp_sum = np.zeros(3)
    tr_sum = np.zeros(3)
    for t in range(p3, m):
        resync = (t - p3) % RESYNC == 0
        total = 0.0
        for i in range(3):
            p = periods[i]
            if resync:
                a = 0.0
                b = 0.0
                for j in range(t - p + 1, t + 1):
                    pc = close[j - 1]
                    tl = min(low[j], pc)
                    a += close[j] - tl
                    b += max(high[j], pc) - tl
                bp_sum[i] = a
                tr_sum[i] = b
            else:
                pc = close[t - 1]
                tl = min(low[t], pc)
                j = t - p
                pco = close[j - 1]
                tlo = min(low[j], pco)
                bp_sum[i] += (close[t] - tl) - (close[j] - tlo)
                tr_sum[i] += (max(high[t], pc) - tl) - (max(high[j], pco) - tlo)
            b = tr_sum[i]
            if not (-1e-14 < b < 1e-14):
                total += weights[i] * (bp_sum[i] / b)
        out[t] = 100.0 * (total / 7.0)


@njit(cache=True, nogil=True)
def kaufman(x: FloatArray, n: int, fast: float, slow: float, out: FloatArray) -> None:
    """TA-Lib's KAMA from bar n on: efficiency = |x[t] - x[t-n]| / (sum of |moves| over the
    n moves into bar t), 1 when that path is not longer than the signed change or is zero;
    factor = (efficiency (fast - slow) + slow)^2; y = (x - y) factor + y from y = x[n-1].
    The path is a running sum, summed afresh every RESYNC bars."""
    m = len(x)
    path = 0.0
    y = x[n - 1]
    for t in range(n, m):
        if (t - n) % RESYNC == 0:
            path = 0.0
            for j in range(t - n + 1, t + 1):
                path += abs(x[j] - x[j - 1])
        else:
            path += abs(x[t] - x[t - 1]) - abs(x[t - n] - x[t - n - 1])
        change = x[t] - x[t - n]
        er = 1.0 if path <= change or -1e-14 < path < 1e-14 else abs(change / path)
        sc = er * (fast - slow) + slow
        sc *= sc
        y = (x[t] - y) * sc + y
        out[t] = y


@njit(cache=True, nogil=True)
def rolling_variance(x: FloatArray, n: int, out: FloatArray) -> None:
    """Population variance of each window of n values, from running sums of x - r and
    (x - r)^2 (r: the window's first value at the last resynchronisation, every RESYNC
    windows)."""
    m = len(x) - n + 1
    s = 0.0
    q = 0.0
    ref = 0.0
    # Values equal to their predecessor, counted back from the window's end: a window of one
    # value gives exactly 0 (running sums could leave rounding, which a square root shows).
    same = 0
    for j in range(1, n - 1):
        same = same + 1 if x[j] == x[j - 1] else 0
    for k in range(m):
        end = k + n - 1
        if end >= 1:
            same = same + 1 if x[end] == x[end - 1] else 0
        if k % RESYNC == 0:
            ref = x[k]
            s = 0.0
            q = 0.0
            for u in range(n):
                d = x[k + u] - ref
                s += d
                q += d * d
        else:
            d_new = x[k + n - 1] - ref
            d_old = x[k - 1] - ref
            s += d_new - d_old
            q += d_new * d_new - d_old * d_old
        if same >= n - 1:
            out[k] = 0.0
            continue
        mean = s / n
        v = q / n - mean * mean
        out[k] = v if v > 0.0 else 0.0


@njit(cache=True, nogil=True)
def window_high_low(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int, mode: int, out: FloatArray
) -> None:
    """For each window of n bars ending at bar k + n - 1 (H highest high, L lowest low):
    mode 0: (H + L) / 2 (MIDPOINT, MIDPRICE); mode 1: Williams' %R as TA-Lib computes it
    (0 on a flat window).

    Van Herk / Gil-Werman: the bars are cut into blocks of n; a window starting inside block
    b covers a suffix of b and a prefix of b + 1, so its extremes are those of the two
    running extremes. One backward pass over each block (the suffixes, kept in a buffer of n)
    and one forward pass over the next (the prefixes, combined as they are made): about three
    comparisons a bar whatever n, where rescanning every window costs n and tracking the
    extreme's index (TA-Lib) branches unpredictably on prices. Max and min are exact, so the
    values are TA-Lib's whatever the order of the comparisons."""
    m = len(high) - n + 1
    suffix_high = np.empty(n)
    suffix_low = np.empty(n)
    for b in range(0, m, n):
        end = b + n - 1  # the block's last bar, inside the input as b < m
        hi = high[end]
        lo = low[end]
        suffix_high[n - 1] = hi
        suffix_low[n - 1] = lo
        for j in range(n - 2, -1, -1):
            hi = max(hi, high[b + j])
            lo = min(lo, low[b + j])
            suffix_high[j] = hi
            suffix_low[j] = lo
        # The window starting at b is the block itself; window b + j (j >= 1) ends at end + j,
        # so it is the suffix from b + j and the prefix of the next block up to end + j.
        _high_low_out(hi, lo, close[end], mode, out, b)
        if m - b > 1:
            prefix_high = high[end + 1]
            prefix_low = low[end + 1]
            for j in range(1, min(n, m - b)):
                prefix_high = max(prefix_high, high[end + j])
                prefix_low = min(prefix_low, low[end + j])
                hi = max(suffix_high[j], prefix_high)
                lo = min(suffix_low[j], prefix_low)
                _high_low_out(hi, lo, close[end + j], mode, out, b + j)


@njit(inline="always")
def _high_low_out(hi: float, lo: float, close: float, mode: int, out: FloatArray, k: int) -> None:
    if mode == 0:
        out[k] = (hi + lo) / 2.0
    else:
        span = (hi - lo) / -100.0
        out[k] = (hi - close) / span if span != 0.0 else 0.0


@njit(cache=True, nogil=True)
def directional_index(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int, mode: int
) -> tuple[FloatArray, np.ndarray]:
    """From bar n on (index t - n): mode 0 +DI, mode 1 -DI (0 where the TR sum is "zero"),
    mode 2 DX and whether it is defined (TR sum and +DI + -DI not "zero", TA_IS_ZERO).
    The sums are stepped as in ta_DX.c: summed over the first n-1 moves, then S(1 - 1/n) + v."""
    m = len(close)
    out = np.empty(m - n)
    valid = np.ones(m - n, dtype=np.bool_)
    sp = 0.0
    sm = 0.0
    st = 0.0
    keep = 1.0 - 1.0 / n
    for t in range(1, m):
        diff_p = high[t] - high[t - 1]
        diff_m = low[t - 1] - low[t]
        dp = 0.0
        dm = 0.0
        if diff_m > 0 and diff_p < diff_m:
            dm = diff_m
        elif diff_p > 0 and diff_p > diff_m:
            dp = diff_p
        pc = close[t - 1]
        tr = max(high[t] - low[t], abs(high[t] - pc), abs(low[t] - pc))
        if t < n:
            sp += dp
            sm += dm
            st += tr
            continue
        sp = sp * keep + dp
        sm = sm * keep + dm
        st = st * keep + tr
        i = t - n
        if -1e-14 < st < 1e-14:
            out[i] = 0.0
            valid[i] = False
            continue
        p = 100.0 * (sp / st)
        q = 100.0 * (sm / st)
        if mode == 0:
            out[i] = p
        elif mode == 1:
            out[i] = q
        else:
            total = q + p
            if -1e-14 < total < 1e-14:
                out[i] = 0.0
                valid[i] = False
            else:
                out[i] = 100.0 * (abs(q - p) / total)
    return out, valid


@njit(cache=True, nogil=True)
def macd_lines(
    x: FloatArray, fast: int, slow: int, signal: int, line: FloatArray, sig: FloatArray
) -> None:
    """TA-Lib's MACD in one pass: both EMAs seeded on bar slow-1 (the fast one with the mean
    of the fast bars before it, the slow one with the mean of the first slow bars), the line
    their difference, the signal an EMA of the line seeded with its first `signal` values.
    Writes from bar slow-1 (line) and slow+signal-2 (signal); earlier entries untouched."""
    m = len(x)
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    kg = 2.0 / (signal + 1)
    ef = 0.0
    for t in range(slow - fast, slow):
        ef += x[t]
    ef /= fast
    es = 0.0
    for t in range(slow):
        es += x[t]
    es /= slow
    total = 0.0
    g = 0.0
    first = slow - 1
    for t in range(first, m):
        if t > first:
            ef = (x[t] - ef) * kf + ef
            es = (x[t] - es) * ks + es
        v = ef - es
        line[t] = v
        j = t - first
        if j < signal - 1:
            total += v
        elif j == signal - 1:
            total += v
            g = total / signal
            sig[t] = g
        else:
            g = (v - g) * kg + g
            sig[t] = g


@njit(cache=True, nogil=True)
def balance_of_power(
    open_: FloatArray, high: FloatArray, low: FloatArray, close: FloatArray, out: FloatArray
) -> None:
    """TA-Lib's BOP: (close - open) / (high - low), 0 where high - low is below 1e-14."""
    for t in range(len(close)):
        span = high[t] - low[t]
        out[t] = (close[t] - open_[t]) / span if span >= 1e-14 else 0.0


@njit(cache=True, nogil=True)
def chande(x: FloatArray, n: int, out: FloatArray) -> None:
    """TA-Lib's CMO from bar n on: Wilder averages G of the gains and A of the absolute moves
    (G + L = A), seeded with the means of the first n moves; 100 (2G - A) / A, 0 where A is
    "zero"."""
    g = 0.0
    a = 0.0
    for t in range(1, n + 1):
        move = x[t] - x[t - 1]
        g += move if move > 0.0 else 0.0
        a += abs(move)
    g /= n
    a /= n
    keep = (n - 1) / n
    k = 1.0 / n
    for t in range(n, len(x)):
        if t > n:
            move = x[t] - x[t - 1]
            g = g * keep + (move if move > 0.0 else 0.0) * k
            a = a * keep + abs(move) * k
        out[t] = 100.0 * ((2.0 * g - a) / a) if not (-1e-14 < a < 1e-14) else 0.0
