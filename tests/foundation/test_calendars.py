"""core.calendars: the slot arithmetic agrees with listing the slots one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.calendars import SessionKind, default_calendar, normalize_calendar, sessions
from core.intervals import Interval

INTRADAY = [Interval.M1, Interval.M5, Interval.M30, Interval.H1, Interval.H4]
START = datetime(2023, 1, 1, tzinfo=UTC)


@settings(max_examples=40, deadline=None)
@given(
    offset=st.integers(0, 500 * 24 * 60),
    length=st.integers(0, 120 * 24 * 60),
    interval=st.sampled_from([*INTRADAY, Interval.D1, Interval.W1]),
    kind=st.sampled_from(list(SessionKind)),
    aligned=st.booleans(),
    count=st.integers(0, 60),
)
def test_counting_and_the_newest_slots_equal_the_full_list(
    offset: int, length: int, interval: Interval, kind: SessionKind, aligned: bool, count: int
) -> None:
    cal = sessions("XNYS")
    lo = START + timedelta(minutes=offset)
    hi = lo + timedelta(minutes=length)
    every = cal.slots(interval, kind, lo, hi, aligned)
    assert cal.count_slots(interval, kind, lo, hi, aligned) == len(every)
    newest = every[-count:] if count else []
    assert cal.slots_before(interval, kind, lo, hi, aligned, count) == newest
    assert every == sorted(set(every))  # oldest first, each once


def test_defaults_and_codes() -> None:
    assert default_calendar("equity", "NASDAQ") == "XNAS"
    assert default_calendar("crypto") == "24/7"
    assert default_calendar("fx") == "FX"
    assert default_calendar("", "") == "24/7"
    assert normalize_calendar("xnys") == "XNYS"
    assert normalize_calendar("XLON") == "XLON"  # any pandas-market-calendars name
    try:
        normalize_calendar("NOPE")
    except ValueError as exc:
        assert "unknown calendar" in str(exc)
    else:
        raise AssertionError("an unknown calendar must be refused")


def test_the_cost_of_sessions_grows_with_the_days_asked_for() -> None:
    import graphql

    from graphql_api.cost import CostRules, query_cost

    query = (
        'query($f: Date!, $t: Date!) { symbol(ticker: "X") { '
        "sessions(from: $f, to: $t) { open close } } }"
    )
    document = graphql.parse(query)
    operation = graphql.get_operation_ast(document)
    assert operation is not None
    rules = CostRules(default_page_size=100)

    def cost(start: str, end: str) -> int:
        return query_cost(document, operation, {"f": start, "t": end}, rules)

    week, year = cost("2024-01-01", "2024-01-08"), cost("2024-01-01", "2025-01-01")
    assert year - week == (366 - 7) * 2  # two fields per session, one session a day at most
    assert cost("2024-01-08", "2024-01-01") == cost("2024-01-01", "2024-01-02")
