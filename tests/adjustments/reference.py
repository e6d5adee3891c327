"""Corporate actions derived from the bokeh-sampledata stocks file's `Adj Close` column.

The file's `Adj Close` is Quandl's adjustment of the same (raw) bars: close times a factor
that is constant between actions and steps at each ex-date. Per ticker:

1. r = Adj Close / Close per bar; a new stretch starts where r moves by more than JUMP
   relative (Adj Close has 11 to 13 significant digits, so within a stretch r wanders by
   ~1e-13 relative; the smallest dividend in the file moves it by ~1e-3).
2. Each stretch's factor is the least-squares r over its bars (sum adj*close / sum close^2),
   which averages the rounding of the last digit out.
3. At each boundary, f = r(before) / r(after): within SPLIT_TOLERANCE of 1 / n for a split
   ratio n of SPLIT_RATIOS it is that split (ratios are exact in the real world); otherwise a
   cash dividend with amount (1 - f) x the close before the ex-date, so that the service's
   dividend factor 1 - amount / previous close gives f back.
4. What lies after the file's last bar (e.g. AAPL's 2014 7-for-1 split and later dividends)
   is one factor the bars cannot resolve: one cash dividend the day after the last bar with
   amount (1 - r(last)) x the last close.

`derive_actions` is the derivation; tests/fixtures/bokeh_adjustments.csv is its output
(`python -m tests.adjustments.reference` writes it), and the reference test checks both agree.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

JUMP = 2e-5
SPLIT_RATIOS = (2.0, 3.0, 1.5, 4.0, 5.0, 7.0, 10.0, 0.5, 0.1)
SPLIT_TOLERANCE = 1e-4
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "bokeh_adjustments.csv"


def stocks() -> pd.DataFrame:
    """The stocks file as shipped in bokeh-sampledata."""
    path = resources.files("bokeh_sampledata") / "_data" / "stocks.csv.gz"
    with resources.as_file(path) as file:
        return pd.read_csv(file)


def derive_actions(raw: pd.DataFrame) -> pd.DataFrame:
    """Actions (ticker, kind, ex_date, value) whose back-adjustment gives `Adj Close`."""
    out: list[tuple[str, str, str, float]] = []
    for ticker, g in raw.groupby("Ticker", sort=True):
        g = g.sort_values("Date").reset_index(drop=True)
        close = g["Close"].to_numpy(float)
        adj = g["Adj Close"].to_numpy(float)
        r = adj / close
        starts = [0, *(np.flatnonzero(np.abs(r[1:] / r[:-1] - 1) > JUMP) + 1).tolist()]
        ends = [*starts[1:], len(r)]
        factors = [
            float(np.sum(adj[a:b] * close[a:b]) / np.sum(close[a:b] ** 2))
            for a, b in zip(starts, ends, strict=True)
        ]
        for k in range(1, len(starts)):
            f = factors[k - 1] / factors[k]
            ex = str(g["Date"].iloc[starts[k]])
            split = next((n for n in SPLIT_RATIOS if abs(f * n - 1) < SPLIT_TOLERANCE), None)
            if split is not None:
                out.append((str(ticker), "split", ex, split))
            else:
                out.append((str(ticker), "dividend", ex, (1 - f) * close[starts[k] - 1]))
        tail = factors[-1]
        if abs(tail - 1) > JUMP:
            after = (pd.Timestamp(g["Date"].iloc[-1]) + pd.Timedelta(days=1)).date().isoformat()
            out.append((str(ticker), "dividend", after, (1 - tail) * close[-1]))
    return pd.DataFrame(out, columns=["ticker", "kind", "ex_date", "value"])


if __name__ == "__main__":
    actions = derive_actions(stocks())
    actions.to_csv(FIXTURE, index=False, float_format="%.17g")
    print(f"{len(actions)} actions written to {FIXTURE}", file=sys.stderr)
